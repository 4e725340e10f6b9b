"""train(n_envs=N): N sub-envs stepped together in a Gymnasium SyncVectorEnv.

Real envs (CartPole-v1, Pendulum-v1) and a real metrics.db: episode bookkeeping, step
counts, what the buffer stores at episode ends (true final observation, done only for
terminations), hidden-state resets, updates per vector step, seeding, callbacks,
checkpoints, resuming, bad arguments and the CLI flag.
"""

import json
import math
import sqlite3
import subprocess
from pathlib import Path

import pytest
import torch
from callback_helpers import CtrlCAtEpisode, Recorder, StopAtStep, count_updates
from gymnasium import spaces

from velora.callbacks import RecordVideos, SaveCheckpoints
from velora.cli import main
from velora.models import NeuroFlow
from velora.training import TrainConfig, train_agent

TINY = {"actor_neurons": 8, "critic_neurons": 16, "buffer_size": 5_000}
QUIET = {"display_count": 1_000}
# CartPole ends an episode (terminated) once |x| > 2.4 or |theta| > 12 degrees.
X_LIMIT, THETA_LIMIT = 2.4, 12 * 2 * math.pi / 360


def db_episodes(experiment_id: int | None = None) -> list[tuple]:
    """(episode_num, reward, length, actor, critic, entropy loss) rows, in order."""
    sql = "SELECT episode_num, reward, length, actor_loss, critic_loss, entropy_loss FROM episode"
    params: tuple = ()
    if experiment_id is not None:
        sql, params = sql + " WHERE experiment_id = ?", (experiment_id,)
    with sqlite3.connect("metrics.db") as con:
        rows = con.execute(sql + " ORDER BY id", params).fetchall()
    # NaN losses come back as None.
    return rows


def stored(agent: NeuroFlow) -> dict[str, torch.Tensor]:
    """The buffer's filled rows, in insertion order, split into fields."""
    rows = agent.buffer.state_dict()["transitions"]
    names = ("states", "actions", "rewards", "next_states", "dones", "hidden", "next_hidden")
    return dict(zip(names, rows.split(agent.buffer.widths, dim=1), strict=True))


# ------------------------------------------------------------ episodes and steps


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_episodes_steps_and_buffer_add_up(env_id):
    n_envs, n_episodes = 3, 7
    recorder = Recorder()
    agent = NeuroFlow(env_id, **TINY, seed=1)
    summary = agent.train(
        16, n_episodes=n_episodes, max_steps=25, n_envs=n_envs, callbacks=[recorder], **QUIET
    )
    assert summary.episodes == n_episodes == agent.episodes_done
    assert not summary.early_stopped and recorder.ended == 1
    # One on_step per vector step, each counting n_envs environment steps.
    assert recorder.steps == list(range(n_envs, agent.steps_done + 1, n_envs))
    assert summary.steps == agent.steps_done == len(recorder.steps) * n_envs
    # Every transition of every sub-env is in the buffer, finished episodes or not.
    assert len(agent.buffer) == agent.steps_done

    rows = db_episodes()
    assert [r[0] for r in rows] == list(range(1, n_episodes + 1))
    assert [r[2] for r in rows] == [e["length"] for e in recorder.episodes]
    assert all(1 <= r[2] <= 25 for r in rows)
    # In-flight episodes at the end are dropped, so the recorded ones may not cover
    # every step; they can never exceed them.
    assert sum(r[2] for r in rows) <= agent.steps_done
    assert sum(r[2] for r in rows) > agent.steps_done - n_envs * 25
    # Learning happened (the default warm-up is 32 steps) and is in the records.
    assert any(r[4] is not None for r in rows)

    with sqlite3.connect("metrics.db") as con:
        (config,) = con.execute("SELECT config FROM experiment").fetchone()
    assert json.loads(config)["train"]["n_envs"] == n_envs
    assert agent.config.train.n_envs == n_envs
    if env_id == "Pendulum-v1":  # never terminates: every end is a max_steps cut
        assert [r[2] for r in rows] == [25] * n_episodes
        assert (stored(agent)["dones"] == 0).all()


def test_buffer_stores_true_final_obs_and_done_only_for_terminations():
    n_envs, max_steps = 4, 20
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    # All random (no learning): random CartPole episodes often outlast 20 steps, so
    # both pole falls and max_steps cuts happen.
    agent.train(16, n_episodes=16, max_steps=max_steps, warmup_steps=10_000, n_envs=n_envs, **QUIET)
    data = {k: v.reshape(-1, n_envs, v.shape[1]) for k, v in stored(agent).items()}
    # Row k * n_envs + i is sub-env i at vector step k.
    states, next_states = data["states"], data["next_states"]
    dones = data["dones"][..., 0]
    continues = (next_states[:-1] == states[1:]).all(dim=-1)  # same episode goes on
    ended = ~continues
    assert ended.sum() >= 16 - n_envs  # the last vector step's ends are not compared

    def out_of_bounds(obs):
        return (obs[..., 0].abs() > X_LIMIT) | (obs[..., 2].abs() > THETA_LIMIT)

    # Terminal rows: done, and next_state is the fallen pole, not the reset obs.
    assert torch.equal(dones.bool(), out_of_bounds(next_states))
    assert dones[:-1][ended].sum() > 0
    assert (dones[:-1][continues] == 0).all()
    # Truncated rows (cut at max_steps, pole up): not done, yet the episode ended and
    # next_state is the true last obs (reset obs are within +-0.05).
    truncated = ended & (dones[:-1] == 0)
    assert truncated.sum() > 0
    assert (next_states[:-1][truncated].abs().max(dim=-1).values > 0.05).all()
    # The first observations and those after any episode end are fresh resets.
    assert (states[0].abs() <= 0.05).all() and (states[1:][ended].abs() <= 0.05).all()
    assert not (states[0] == next_states[0]).all(dim=-1).any()

    # The hidden state restarts from zero with every episode, and otherwise carries on.
    hidden, next_hidden = data["hidden"], data["next_hidden"]
    assert (hidden[0] == 0).all()
    assert (hidden[1:][ended] == 0).all()
    assert torch.equal(hidden[1:][continues], next_hidden[:-1][continues])
    assert (hidden[1:][continues].abs().sum(dim=-1) > 0).all()
    assert (next_hidden[:-1][ended].abs().sum(dim=-1) > 0).all()  # stored as returned


# ------------------------------------------------------------ updates and losses


def test_updates_per_step_follow_each_vector_step(monkeypatch):
    n_envs, warmup = 4, 16
    agent = NeuroFlow("CartPole-v1", **TINY, seed=2)
    update_steps = count_updates(agent, monkeypatch)
    summary = agent.train(
        16,
        n_episodes=6,
        max_steps=20,
        warmup_steps=warmup,
        updates_per_step=2,
        n_envs=n_envs,
        **QUIET,
    )
    # Vector steps end at 4, 8, ...; learning starts once more than 16 steps were taken.
    learning = range(warmup + n_envs, summary.steps + 1, n_envs)
    assert update_steps == [step for step in learning for _ in range(2)]
    assert agent.config.train.updates_per_step == 2


def test_episode_losses_are_the_means_of_the_updates_it_saw(register_env, monkeypatch):
    # Every sub-env ends its episode after 5 steps, all at the same vector steps.
    env_id = register_env(spaces.Discrete(2), episode_len=5)
    agent = NeuroFlow(env_id, **TINY, seed=0)
    seen: list[tuple[int, torch.Tensor]] = []
    update = agent.update

    def recording_update(batch_size):
        losses = update(batch_size)
        seen.append((agent.steps_done, losses.clone()))
        return losses

    monkeypatch.setattr(agent, "update", recording_update)
    agent.train(4, n_episodes=6, warmup_steps=4, n_envs=2, **QUIET)
    rows = db_episodes()
    assert [r[2] for r in rows] == [5] * 6
    for episode in range(3):  # each round of episodes spans 10 steps, 5 vector steps
        first, last = 10 * episode, 10 * (episode + 1)
        during = [loss for step, loss in seen if first < step <= last]
        expected = torch.stack(during).mean(dim=0).tolist() if during else None
        for row in rows[2 * episode : 2 * episode + 2]:
            if expected is None:
                assert row[3:] == (None, None, None)
            else:
                assert list(row[3:]) == pytest.approx(expected, rel=1e-5)
    # The first episodes saw 3 learning vector steps (at 6, 8 and 10 steps).
    assert len([s for s, _ in seen if s <= 10]) == 3


# ------------------------------------------------------------ seeding


def _seeded_run(env_id: str, seed: int) -> tuple[list[tuple], int]:
    agent = NeuroFlow(env_id, **TINY, seed=seed)
    summary = agent.train(16, n_episodes=5, max_steps=20, warmup_steps=16, n_envs=3, **QUIET)
    rows = db_episodes(summary.experiment_id)
    return rows, summary.steps


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_same_seed_same_vector_training(env_id):
    rows_a, steps_a = _seeded_run(env_id, 7)
    rows_b, steps_b = _seeded_run(env_id, 7)
    assert len(rows_a) == 5 and any(r[4] is not None for r in rows_a)
    assert rows_a == rows_b and steps_a == steps_b
    rows_c, _ = _seeded_run(env_id, 8)
    assert rows_c != rows_a


# ------------------------------------------------------------ stopping, resuming


def test_on_step_false_stops_at_that_vector_step():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=3)
    summary = agent.train(
        16, n_episodes=100, max_steps=10, n_envs=4, callbacks=[StopAtStep(40)], **QUIET
    )
    assert summary.early_stopped and not summary.interrupted
    assert agent.steps_done == 40
    assert len(db_episodes()) == summary.episodes < 100


def test_checkpoints_ctrl_c_and_resuming_after_load():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=4)
    saver = SaveCheckpoints("vec", frequency=2, buffer=True)
    with pytest.raises(KeyboardInterrupt):
        agent.train(
            16, n_episodes=20, max_steps=15, n_envs=2, callbacks=[saver, CtrlCAtEpisode(5)], **QUIET
        )
    saves = Path("checkpoints/vec/saves")
    assert {"CartPole_2", "CartPole_4", "CartPole_final"} <= {p.name for p in saves.iterdir()}
    info = json.loads((saves / "completed.json").read_text())
    assert info["interrupted"] is True and info["episodes"] == 5
    assert [r[0] for r in db_episodes()] == [1, 2, 3, 4, 5]

    loaded = NeuroFlow.load(saves / "CartPole_final", buffer=True)
    assert loaded.steps_done == agent.steps_done == len(loaded.buffer)
    summary = loaded.train(16, n_episodes=4, max_steps=15, n_envs=2, **QUIET)
    assert summary.episodes == 4 and loaded.episodes_done == 9
    assert [r[0] for r in db_episodes()] == list(range(1, 10))
    assert len(loaded.buffer) == loaded.steps_done
    # And a second call on the same agent, back on one env, continues too.
    again = loaded.train(16, n_episodes=2, max_steps=15, **QUIET)
    assert again.episodes == 2 and loaded.episodes_done == 11


# ------------------------------------------------------------ bad arguments


@pytest.mark.parametrize("n_envs", [0, -2, 2.5, True, "4"])
def test_invalid_n_envs_is_a_clear_error(n_envs):
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    with pytest.raises(ValueError, match="n_envs must be an integer >= 1"):
        agent.train(16, n_episodes=1, n_envs=n_envs)
    with pytest.raises(ValueError, match="n_envs"):
        train_agent(agent, TrainConfig(16, n_episodes=1, n_envs=n_envs))
    assert not Path("metrics.db").exists()


def test_record_videos_needs_one_env():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    with pytest.raises(ValueError, match="RecordVideos records one env; use n_envs=1"):
        agent.train(16, n_episodes=2, n_envs=2, callbacks=[RecordVideos("vids")])
    # Refused before any work: no run recorded, no folders made, nothing stepped.
    assert not Path("metrics.db").exists() and not Path("checkpoints").exists()
    assert agent.steps_done == 0


# ------------------------------------------------------------ the CLI


def run_main(args: list[str], capfd) -> subprocess.CompletedProcess:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(["velora", *args], exit_info.value.code, out, err)


def test_cli_n_envs(capfd):
    args = [
        "train", "CartPole-v1", "--actor-neurons", "8", "--critic-neurons", "16",
        "--batch-size", "16", "--episodes", "4", "--max-steps", "20", "--seed", "0",
        "--buffer-size", "2000", "--n-envs", "2",
    ]  # fmt: skip
    try:
        main(args)
    except SystemExit as exit_info:
        assert exit_info.code in (0, None)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "run 1 in" in out
    with sqlite3.connect("metrics.db") as con:
        (config,) = con.execute("SELECT config FROM experiment").fetchone()
        (episodes,) = con.execute("SELECT count(*) FROM episode").fetchone()
    assert json.loads(config)["train"]["n_envs"] == 2
    assert episodes == 4

    small = ["--actor-neurons", "8", "--critic-neurons", "16", "--buffer-size", "100"]
    bad = run_main(["train", "CartPole-v1", *small, "--episodes", "1", "--n-envs", "0"], capfd)
    assert bad.returncode == 1 and "error: n_envs must be an integer >= 1" in bad.stderr
    videos = run_main(["train", "CartPole-v1", "--n-envs", "2", "--videos", "v"], capfd)
    assert videos.returncode != 0 and "--n-envs 1" in videos.stderr

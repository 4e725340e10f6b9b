"""train() end to end on real envs and a real metrics.db: seeding, metrics, warm-up,
episode limits, resuming, callbacks, and the callbacks page's first snippet."""

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from callback_helpers import Recorder, StopAtEpisode, StopAtStep, count_updates
from gymnasium import spaces
from sqlmodel import Session, select

from velora.callbacks import TrainCallback
from velora.metrics import Episode, Experiment, get_db_engine
from velora.models import NeuroFlow

TINY = {"actor_neurons": 8, "critic_neurons": 16, "buffer_size": 10_000}
LOSSES = ("actor_loss", "critic_loss", "entropy_loss")


def _nan_to_none(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def episode_rows(experiment_id: int | None = None) -> list[Episode]:
    with Session(get_db_engine("metrics.db")) as session:
        query = select(Episode).order_by(Episode.id)
        if experiment_id is not None:
            query = query.where(Episode.experiment_id == experiment_id)
        return list(session.exec(query).all())


def experiments() -> list[Experiment]:
    with Session(get_db_engine("metrics.db")) as session:
        return list(session.exec(select(Experiment).order_by(Experiment.id)).all())


def row_values(row: Episode) -> tuple:
    """Everything a run produced, NaN made comparable; ids and timestamps left out."""
    return tuple(
        _nan_to_none(getattr(row, name))
        for name in (
            "episode_num",
            "reward",
            "length",
            "reward_moving_avg",
            "reward_moving_std",
            *LOSSES,
        )
    )


# ---------------------------------------------------------------------- determinism


def _run(env_id: str, seed: int) -> tuple[list[tuple], object]:
    """Build and train (in that order, so the global RNG is the seed's) one agent."""
    agent = NeuroFlow(env_id, **TINY, seed=seed)
    summary = agent.train(16, n_episodes=6, max_steps=25, warmup_steps=16, display_count=100)
    rows = [row_values(r) for r in episode_rows(summary.experiment_id)]
    return rows, summary


@pytest.mark.parametrize("env_id", ["CartPole-v1", "InvertedPendulum-v5"])
def test_same_seed_same_training(env_id):
    rows_a, summary_a = _run(env_id, seed=11)
    rows_b, summary_b = _run(env_id, seed=11)
    assert summary_a.experiment_id != summary_b.experiment_id
    assert len(rows_a) == 6
    # Updates happened, so the comparison covers the learning, not only the warm-up.
    assert any(r[5] is not None for r in rows_a)
    assert rows_a == rows_b
    assert summary_a.steps == summary_b.steps
    assert summary_a.losses == pytest.approx(summary_b.losses, nan_ok=True)
    assert summary_a.reward_avg == summary_b.reward_avg

    rows_c, _ = _run(env_id, seed=12)
    assert rows_c != rows_a


# ---------------------------------------------------------------------- the metrics


def test_metrics_rows_match_what_training_reported():
    recorder = Recorder()
    agent = NeuroFlow("CartPole-v1", **TINY, seed=5)
    summary = agent.train(
        16,
        n_episodes=7,
        log_freq=3,
        window_size=3,
        max_steps=20,
        warmup_steps=30,
        callbacks=[recorder],
    )
    assert summary.episodes == 7 and not summary.early_stopped
    assert recorder.started == 1 and recorder.ended == 1

    # Writes in batches of log_freq, the remainder at the end.
    assert [len(batch) for batch in recorder.logs] == [3, 3, 1]
    logged = [record for batch in recorder.logs for record in batch]

    (experiment,) = experiments()
    assert experiment.id == summary.experiment_id == agent.experiment_id
    assert experiment.agent == "NeuroFlow"
    assert experiment.env == "CartPole-v1"
    assert experiment.config == agent.config.model_dump_json()
    assert agent.config.train is not None and agent.config.train.log_freq == 3
    assert experiment.created_at.tzinfo is not None

    rows = episode_rows()
    assert len(rows) == len(recorder.episodes) == len(logged) == 7
    rewards = []
    for row, seen, record in zip(rows, recorder.episodes, logged, strict=True):
        rewards.append(seen["reward"])
        assert row.experiment_id == experiment.id
        assert row.episode_num == seen["episode"] == record.episode_num
        assert row.reward == seen["reward"] == record.reward
        assert row.length == seen["length"] == record.length
        assert row.reward_moving_avg == pytest.approx(seen["avg"], rel=1e-12)
        assert row.reward_moving_avg == pytest.approx(np.mean(rewards[-3:]), rel=1e-12)
        assert row.reward_moving_std == pytest.approx(seen["std"], rel=1e-12)
        assert row.reward_moving_std == pytest.approx(np.std(rewards[-3:]), abs=1e-12)
        for name in LOSSES:
            assert getattr(row, name) == pytest.approx(seen["losses"][name], nan_ok=True)
            assert getattr(row, name) == pytest.approx(getattr(record, name), nan_ok=True)
        assert row.created_at.tzinfo is not None
    assert [r.episode_num for r in rows] == list(range(1, 8))
    assert sum(r.length for r in rows) == summary.steps == agent.steps_done
    assert summary.reward_max == max(rewards)
    # Hooks saw every step, numbered from 1.
    assert recorder.steps == list(range(1, summary.steps + 1))
    # The final losses are reported in the summary.
    assert summary.losses == pytest.approx(recorder.episodes[-1]["losses"], nan_ok=True)


def test_warmup_then_one_update_per_step(monkeypatch):
    warmup = 50
    recorder = Recorder()
    agent = NeuroFlow("CartPole-v1", **TINY, seed=2)
    update_steps = count_updates(agent, monkeypatch)
    summary = agent.train(16, n_episodes=8, max_steps=20, warmup_steps=warmup, callbacks=[recorder])
    assert summary.steps > warmup + 10
    # Nothing is learnt during the warm-up, then exactly one update per step.
    assert update_steps == list(range(warmup + 1, summary.steps + 1))
    # The buffer holds every step taken.
    assert len(agent.buffer) == summary.steps == agent.steps_done
    nan_episodes = 0
    for seen in recorder.episodes:
        finite = [math.isfinite(v) for v in seen["losses"].values()]
        if seen["step"] <= warmup:
            assert not any(finite), seen
            nan_episodes += 1
        else:
            assert all(finite), seen
    assert 0 < nan_episodes < len(recorder.episodes)
    rows = episode_rows()
    assert [math.isnan(r.actor_loss) for r in rows] == [i < nan_episodes for i in range(len(rows))]


def test_default_warmup_is_twice_the_batch_size():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=2)
    agent.train(16, n_episodes=1, max_steps=5)
    assert agent.config.train.warmup_steps == 32


@pytest.mark.parametrize(
    "space",
    [
        spaces.Discrete(3, start=-1),
        spaces.Box(low=np.float32([-2, 0]), high=np.float32([5, 10]), dtype=np.float32),
    ],
    ids=["discrete-start", "box-bounds"],
)
@pytest.mark.parametrize("n_envs", [1, 3], ids=["one-env", "vector-env"])
def test_training_on_offset_action_spaces(register_env, space, n_envs):
    # The env raises on any action outside its space, warm-up and learnt actions alike.
    env_id = register_env(space, episode_len=10)
    agent = NeuroFlow(env_id, **TINY, seed=0)
    summary = agent.train(16, n_episodes=6, warmup_steps=16, n_envs=n_envs)
    assert summary.episodes == 6 and summary.steps == 60
    rows = episode_rows()
    assert [r.length for r in rows] == [10] * 6
    assert all(math.isfinite(r.critic_loss) for r in rows[2:])


# ------------------------------------------------------------ max_steps and resuming


def test_max_steps_cuts_episodes_and_second_train_continues():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=4)
    # A CartPole pole cannot fall within 5 steps, so every episode is cut at max_steps.
    first = agent.train(16, n_episodes=3, max_steps=5, warmup_steps=8)
    assert first.episodes == 3 and first.steps == 15
    second = agent.train(16, n_episodes=3, max_steps=5, warmup_steps=8)
    assert second.episodes == 3 and second.steps == 15
    assert agent.episodes_done == 6 and agent.steps_done == 30
    assert second.experiment_id == first.experiment_id == agent.experiment_id

    assert len(experiments()) == 1
    rows = episode_rows()
    assert [r.episode_num for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {r.experiment_id for r in rows} == {first.experiment_id}
    assert all(r.length == 5 for r in rows)
    # The second call learns from the start: its warm-up is already behind it.
    assert all(math.isfinite(r.critic_loss) for r in rows[3:])


# ---------------------------------------------------------------------- callbacks


def test_on_step_false_stops_mid_episode(register_env):
    env_id = register_env(spaces.Discrete(2), episode_len=10)
    recorder = Recorder()
    agent = NeuroFlow(env_id, **TINY, seed=0)
    summary = agent.train(16, n_episodes=10, warmup_steps=8, callbacks=[StopAtStep(15), recorder])
    assert summary.early_stopped and not summary.interrupted
    assert summary.steps == 15 and agent.steps_done == 15
    assert summary.episodes == 2
    assert [e["length"] for e in recorder.episodes] == [10, 5]
    assert recorder.ended == 1
    assert [r.length for r in episode_rows()] == [10, 5]


class CrashAtEpisode(TrainCallback):
    def on_episode_end(self, state):
        if state.episode == 3:
            raise RuntimeError("boom")


def test_a_crash_keeps_finished_episodes_and_skips_on_train_end(register_env):
    env_id = register_env(spaces.Discrete(2), episode_len=10)
    recorder = Recorder()
    agent = NeuroFlow(env_id, **TINY, seed=0)
    with pytest.raises(RuntimeError, match="boom"):
        agent.train(16, n_episodes=10, log_freq=100, callbacks=[recorder, CrashAtEpisode()])
    # The three finished episodes reached the DB although log_freq was never reached,
    # and no callback was told that training ended normally.
    assert [r.episode_num for r in episode_rows()] == [1, 2, 3]
    assert recorder.ended == 0


def test_on_episode_end_false_stops_after_that_episode(register_env):
    env_id = register_env(spaces.Discrete(2), episode_len=10)
    recorder = Recorder()
    agent = NeuroFlow(env_id, **TINY, seed=0)
    summary = agent.train(16, n_episodes=10, warmup_steps=8, callbacks=[recorder, StopAtEpisode(3)])
    assert summary.early_stopped
    assert summary.episodes == 3 and summary.steps == 30
    # Every callback still saw the last episode, and its row was written.
    assert len(recorder.episodes) == 3
    assert len(episode_rows()) == 3


def test_completed_run_is_not_early_stopped(register_env):
    env_id = register_env(spaces.Discrete(2), episode_len=4)
    agent = NeuroFlow(env_id, **TINY, seed=0)
    summary = agent.train(16, n_episodes=3, warmup_steps=8)
    assert not summary.early_stopped and summary.episodes == 3 and summary.steps == 12


def test_train_state_is_read_only():
    recorder = Recorder()
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    agent.train(16, n_episodes=2, max_steps=5, callbacks=[recorder])
    # The recorder tried to set `state.episode` in every on_episode_end.
    assert recorder.set_attr_errors == 2
    assert [e["episode"] for e in recorder.episodes] == [1, 2]


def test_train_state_rejects_every_attribute():
    from velora.training import TrainState

    state = TrainState(episode=3)
    for name in ("episode", "status", "new_attribute"):
        with pytest.raises(AttributeError):
            setattr(state, name, 0)
    assert state.episode == 3


# -------------------------------------------------------- the callbacks page snippet

SNIPPET = textwrap.dedent(
    """
    from velora.callbacks import EarlyStopping
    from velora.models import NeuroFlow

    model = NeuroFlow("InvertedPendulum-v5", 20, 128)

    callbacks = [
        EarlyStopping(target=15.0, patience=3),
    ]

    summary = model.train(128, callbacks=callbacks)
    print("RESULT", summary.early_stopped, summary.episodes)
    """
)


@pytest.mark.slow
def test_callbacks_page_first_snippet_runs_and_stops_early(tmp_path: Path):
    script = tmp_path / "snippet.py"
    script.write_text(SNIPPET)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT")]
    assert lines, result.stdout[-3000:]
    _, early_stopped, episodes = lines[-1].split()
    assert early_stopped == "True"
    assert int(episodes) < 1_000  # far fewer than the 10_000 budget
    assert (tmp_path / "metrics.db").exists()


class FailingEnd(TrainCallback):
    def on_train_end(self, state):
        raise OSError("disk full")


class EndRecorder(TrainCallback):
    def __init__(self) -> None:
        self.ended = 0

    def on_train_end(self, state):
        self.ended += 1


def test_one_failing_on_train_end_does_not_skip_the_others(register_env):
    env_id = register_env(spaces.Discrete(2), episode_len=10)
    first, last = EndRecorder(), EndRecorder()
    agent = NeuroFlow(env_id, **TINY, seed=0)
    with pytest.raises(OSError, match="disk full"):
        agent.train(16, n_episodes=2, callbacks=[first, FailingEnd(), last])
    assert first.ended == 1 and last.ended == 1
    assert len(episode_rows()) == 2


def test_updates_per_step_takes_that_many_gradient_steps(register_env, monkeypatch):
    env_id = register_env(spaces.Discrete(2), episode_len=10)
    agent = NeuroFlow(env_id, **TINY, seed=0)
    calls = []
    update = agent.update
    monkeypatch.setattr(agent, "update", lambda batch_size: calls.append(1) or update(batch_size))
    agent.train(16, n_episodes=3, warmup_steps=16, updates_per_step=3)
    # 30 steps, learning from step 17 on: 14 steps with 3 updates each.
    assert len(calls) == 14 * 3
    assert agent.config.train.updates_per_step == 3
    with pytest.raises(ValueError, match="updates_per_step"):
        agent.train(16, n_episodes=1, updates_per_step=0)


class FailingLog(TrainCallback):
    def on_log(self, state, records):
        raise RuntimeError("tracker down")


def test_a_failing_on_log_does_not_write_episodes_twice(register_env):
    env_id = register_env(spaces.Discrete(2), episode_len=10)
    agent = NeuroFlow(env_id, **TINY, seed=0)
    with pytest.raises(RuntimeError, match="tracker down"):
        agent.train(16, n_episodes=5, log_freq=2, callbacks=[FailingLog()])
    assert [r.episode_num for r in episode_rows()] == [1, 2]

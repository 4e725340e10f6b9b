"""`SaveCheckpoints(best=True, keep_last=N)`: the best evaluated agent, and rotation."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from velora.callbacks import Evaluate, SaveCheckpoints, StopOnNoImprovement, TrainCallback
from velora.callbacks.evaluate import EVAL_SEED_OFFSET
from velora.models import NeuroFlow
from velora.training import evaluate_policy

TINY = {"actor_neurons": 8, "critic_neurons": 16, "buffer_size": 2000}
SAVES = Path("checkpoints/nf/saves")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


class Snapshots(TrainCallback):
    """The actor's weights after every episode (runs after the other callbacks)."""

    order = 10

    def __init__(self) -> None:
        self.actors: dict[int, list[torch.Tensor]] = {}

    def on_episode_end(self, state) -> None:
        self.actors[state.episode] = [p.detach().clone() for p in state.agent.actor.parameters()]


def test_the_best_folder_holds_the_agent_of_the_best_evaluation():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    evaluate, snapshots = Evaluate(every=1, episodes=2), Snapshots()
    saver = SaveCheckpoints("nf", frequency=100, best=True)
    agent.train(16, n_episodes=12, callbacks=[saver, snapshots, evaluate])
    means = [result.mean_return for _, result in evaluate.results]
    best_index = means.index(max(means))  # the first evaluation reaching the maximum
    best_episode = evaluate.results[best_index][0]

    info = json.loads((SAVES / "completed.json").read_text())["best"]
    assert info["episode"] == best_episode and info["mean_return"] == max(means)
    loaded = NeuroFlow.load(SAVES / "CartPole_best")
    for saved, snapshot in zip(
        loaded.actor.parameters(), snapshots.actors[best_episode], strict=True
    ):
        assert torch.equal(saved, snapshot)
    again = evaluate_policy(loaded, 2, seed=loaded.seed + EVAL_SEED_OFFSET)
    assert again.mean_return == pytest.approx(max(means), abs=1e-9)
    assert sorted(p.name for p in SAVES.iterdir()) == [
        "CartPole_best", "CartPole_final", "completed.json", "model_config.json"
    ]  # fmt: skip


def test_keep_last_leaves_exactly_that_many_periodic_checkpoints():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    agent.train(16, n_episodes=7, callbacks=[SaveCheckpoints("nf", frequency=1, keep_last=3)])
    folders = sorted(p.name for p in SAVES.iterdir() if p.is_dir())
    assert folders == ["CartPole_5", "CartPole_6", "CartPole_7", "CartPole_final"]
    assert NeuroFlow.load(SAVES / "CartPole_7").progress.episodes == 7


def test_best_without_evaluations_and_bad_keep_last_are_clear_errors():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    with pytest.raises(ValueError, match=r"best=True\) needs evaluations to rank"):
        agent.train(16, n_episodes=2, callbacks=[SaveCheckpoints("nf", best=True)])
    assert agent.progress.episodes == 0 and not SAVES.exists()
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="keep_last must be an integer >= 1"):
            SaveCheckpoints("nf", keep_last=bad)


REPLACE_FOREVER = """
import sys, uuid
from pathlib import Path
from velora.models import NeuroFlow
from velora.utils.files import replace_dir

saves = Path(sys.argv[1])
agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=2000, seed=0)
print("ready", flush=True)
while True:  # what SaveCheckpoints does on each new best, as fast as it can
    with __import__("torch").no_grad():
        agent.log_alpha.add_(0.01)
    staging = saves / f".CartPole_best.new-{uuid.uuid4().hex[:8]}"
    agent.save(staging, buffer=True)
    replace_dir(staging, saves / "CartPole_best")
"""


def test_killing_the_process_mid_replacement_leaves_a_whole_best_folder(tmp_path):
    saves = tmp_path / "saves"
    saves.mkdir()
    rng = random.Random(0)
    loaded_alphas = []
    for _ in range(6):
        process = subprocess.Popen(
            [sys.executable, "-c", REPLACE_FOREVER, str(saves)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout.readline().strip() == "ready", process.stderr.read()
        time.sleep(rng.uniform(0.3, 1.2))
        process.send_signal(signal.SIGKILL)
        process.wait()
        best = saves / "CartPole_best"
        if not best.exists():  # killed before its first replacement finished
            continue
        loaded = NeuroFlow.load(best, buffer=True)  # whole: every checksum verifies
        loaded_alphas.append(loaded.entropy.item())
    assert len(loaded_alphas) >= 4


def resumable_callbacks(dirname: str, *, resume: bool = False) -> list:
    return [
        Evaluate(every=2, episodes=2),
        StopOnNoImprovement(patience=4, min_evals=2),
        SaveCheckpoints(dirname, frequency=2, buffer=True, best=True, keep_last=2, resume=resume),
    ]


def actor_of(path: Path) -> list[torch.Tensor]:
    return list(NeuroFlow.load(path).actor.parameters())


@pytest.mark.parametrize("crashed", [False, True])
def test_a_resumed_run_goes_on_in_its_folder_as_if_never_stopped(crashed):
    whole = NeuroFlow("CartPole-v1", **TINY, seed=0)
    whole_summary = whole.train(16, n_episodes=12, callbacks=resumable_callbacks("whole"))

    first = NeuroFlow("CartPole-v1", **TINY, seed=0)
    first.train(16, n_episodes=5, callbacks=resumable_callbacks("split"))
    saves = Path("checkpoints/split/saves")
    if crashed:  # killed before the end: no completed.json, only the checkpoints
        (saves / "completed.json").unlink()
    again = NeuroFlow.load(saves / "CartPole_final", buffer=True)
    summary = again.train(16, n_episodes=7, callbacks=resumable_callbacks("split", resume=True))

    whole_saves = Path("checkpoints/whole/saves")
    assert again.progress.episodes == whole.progress.episodes
    assert summary.early_stopped == whole_summary.early_stopped
    names = sorted(p.name for p in saves.iterdir())
    assert names == sorted(p.name for p in whole_saves.iterdir())
    assert len([n for n in names if n.split("_")[-1].isdigit()]) == 2  # rotation went on
    for name in names:
        if name.startswith("CartPole_"):
            for a, b in zip(actor_of(saves / name), actor_of(whole_saves / name), strict=True):
                assert torch.equal(a, b), name
    ours, theirs = (json.loads((s / "completed.json").read_text()) for s in (saves, whole_saves))
    assert {**ours["best"], "path": ""} == {**theirs["best"], "path": ""}
    assert ours["episodes"] == theirs["episodes"] and ours["status"] == theirs["status"]


def test_resuming_refuses_another_agent_or_an_older_checkpoint():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    agent.train(16, n_episodes=5, callbacks=resumable_callbacks("nf"))
    before = sorted(p.name for p in SAVES.iterdir())

    stranger = NeuroFlow("CartPole-v1", **TINY, seed=1)
    with pytest.raises(ValueError, match="checkpoints of another agent.*differs in seed"):
        stranger.train(16, n_episodes=2, callbacks=resumable_callbacks("nf", resume=True))
    older = NeuroFlow.load(SAVES / "CartPole_4", buffer=True)
    with pytest.raises(
        ValueError, match=r"up to episode 5 \(CartPole_final\), past this agent's 4"
    ):
        older.train(16, n_episodes=2, callbacks=resumable_callbacks("nf", resume=True))
    with pytest.raises(FileExistsError, match="resume=True"):
        older.train(16, n_episodes=2, callbacks=resumable_callbacks("nf"))
    assert stranger.progress.episodes == 0 and older.progress.episodes == 4
    assert sorted(p.name for p in SAVES.iterdir()) == before  # completed.json kept too


def test_resume_into_a_new_folder_starts_it():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    agent.train(16, n_episodes=3, callbacks=resumable_callbacks("fresh", resume=True))
    assert (Path("checkpoints/fresh/saves") / "CartPole_final").is_dir()

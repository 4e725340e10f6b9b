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

from velora.callbacks import Evaluate, SaveCheckpoints, TrainCallback
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

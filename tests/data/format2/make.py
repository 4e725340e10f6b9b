"""Wrote the format-2 saves beside this file, with Velora at commit 2f9193b (the last
whose liquid cell had separate `time_a` and `time_b` heads). Kept as the record of how
`tests/test_persistence.py` got its old saves (and the `metrics.db` that holds their
experiments); it does not run against later Velora.

    cd tests/data/format2 && PYTHONPATH=<checkout at 2f9193b> python make.py
"""

import json
from pathlib import Path

import numpy as np

import velora
from velora.models import NeuroFlow

HERE = Path(__file__).resolve().parent


def main() -> None:
    for env_id, name in (("CartPole-v1", "cartpole"), ("Pendulum-v1", "pendulum")):
        agent = NeuroFlow(env_id, 8, 16, buffer_size=2_000, seed=3, device="cpu")
        agent.train(batch_size=32, n_episodes=4, max_steps=60, display_count=1)
        agent.save(HERE / name)
        obs_dim = agent.actor.wiring.in_features
        states = np.random.default_rng(0).normal(size=(6, obs_dim)).astype(np.float32)
        hidden, actions, hiddens = None, [], []
        for state in states:
            action, hidden = agent.predict(state, hidden)
            actions.append(action.tolist())
            hiddens.append(hidden.tolist())
        expected = {
            "velora": velora.__version__,
            "states": states.tolist(),
            "actions": actions,
            "hidden": hiddens,
        }
        (HERE / f"{name}.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()

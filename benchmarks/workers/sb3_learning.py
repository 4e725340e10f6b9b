"""Learning curve of Stable-Baselines3 DQN or SAC on one env and seed (SB3's own venv).

    .bench-venvs/sb3-suite/bin/python benchmarks/workers/sb3_learning.py --algo dqn \
        --env CartPole-v1 --seed 0 --budget 50000 --eval-every 2500 \
        --kwargs '{"policy": "MlpPolicy", "learning_rate": 0.0023}' --out result.json

Trains with the constructor arguments in `--kwargs` (the suite passes rl-baselines3-zoo's
tuned settings, `benchmarks/suite/tasks.py`; this worker imports nothing from the suite,
and from velora only `velora.gym` for the memory benchmark's `PO/...` ids) for exactly
`--budget` env steps: a callback stops SB3 there, which on its own would finish its
last rollout of `train_freq` steps. At every multiple of
`--eval-every` steps, and at the end, the callback evaluates the deterministic policy
for `--eval-episodes` episodes on a separate eval env, episode i reset with seed
10_000 + seed + i, as the NeuroFlow worker does. SAC's records carry its temperature
alpha; DQN's alpha is null. `train_steps_per_s` leaves the evaluations' time out.

The result goes to `--out` only when the run completes (temp file, then a rename), so a
failed run leaves nothing and the suite's rerun retries it. It is also printed as one
JSON line.
"""

from __future__ import annotations

import json
import sys
import time
import types
from importlib.metadata import version
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from _learning import EVAL_SEED, evaluation, finish, parser
from stable_baselines3 import DQN, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

ALGOS: dict[str, type[BaseAlgorithm]] = {"dqn": DQN, "sac": SAC}


def _alpha(model: BaseAlgorithm) -> float | None:
    """SAC's current entropy temperature (learned or fixed); None for DQN."""
    if not isinstance(model, SAC):
        return None
    if model.ent_coef_optimizer is not None:
        return float(model.log_ent_coef.detach().exp())
    return float(model.ent_coef_tensor)


class _Evaluate(BaseCallback):
    """Evaluates the deterministic policy every `every` env steps and at `budget`, where
    it stops training."""

    def __init__(self, env_id: str, budget: int, every: int, episodes: int, seed: int):
        super().__init__()
        self.eval_env = gym.make(env_id)
        self.budget, self.every, self.episodes, self.seed = budget, every, episodes, seed
        self.evaluations: list[dict[str, Any]] = []
        self.eval_s = 0.0
        self.start = time.perf_counter()

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()  # as NeuroFlow's: the model is built by now

    def _on_step(self) -> bool:
        steps = self.num_timesteps
        if steps % self.every == 0 or steps >= self.budget:
            began = time.perf_counter()
            returns, lengths = self._play()
            self.eval_s += time.perf_counter() - began
            wall_s = time.perf_counter() - self.start
            self.evaluations.append(evaluation(steps, returns, lengths, wall_s, _alpha(self.model)))
        # `learn` checks its budget only between rollouts of `train_freq` steps.
        return steps < self.budget

    def _play(self) -> tuple[list[float], list[int]]:
        returns, lengths = [], []
        for episode in range(self.episodes):
            obs, _ = self.eval_env.reset(seed=EVAL_SEED + self.seed + episode)
            total, length, done = 0.0, 0, False
            while not done:
                action, _ = self.model.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = self.eval_env.step(action)
                total += float(reward)
                length += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(length)
        return returns, lengths


def _register_partially_observed(env_id: str) -> None:
    """`PO/...` ids (the memory benchmark) name Velora's observation wrappers, which need
    only gymnasium and numpy: register the id with this repository's
    `velora/gym/partial.py`, loaded without the rest of the package (whose other modules
    need what this venv lacks)."""
    if not env_id.startswith("PO/"):
        return
    package = Path(__file__).resolve().parents[2] / "velora"
    for name, folder in (("velora", package), ("velora.gym", package / "gym")):
        module = types.ModuleType(name)
        module.__path__ = [str(folder)]  # a namespace: its __init__ does not run
        sys.modules.setdefault(name, module)
    from velora.gym.partial import register_from_id

    register_from_id(env_id)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--algo", choices=sorted(ALGOS), required=True)
    p.add_argument("--kwargs", default="{}", help="JSON of the constructor's keyword arguments")
    args = p.parse_args()
    torch.set_num_threads(1)  # one core per job, so `--jobs 2` fits two cores
    kwargs = json.loads(args.kwargs)
    policy = kwargs.pop("policy", "MlpPolicy")
    _register_partially_observed(args.env)

    cb = _Evaluate(args.env, args.budget, args.eval_every, args.eval_episodes, args.seed)
    model = ALGOS[args.algo](policy, args.env, seed=args.seed, device="cpu", verbose=0, **kwargs)
    model.learn(total_timesteps=args.budget, callback=cb)
    wall_s = time.perf_counter() - cb.start
    if model.num_timesteps != args.budget or cb.evaluations[-1]["steps"] != args.budget:
        sys.exit(f"stopped at {model.num_timesteps} env steps, expected {args.budget}")
    finish(
        args,
        {
            "agent": "sb3",
            "algo": args.algo.upper(),
            "library": "stable-baselines3",
            "version": version("stable-baselines3"),
            "config": {"policy": policy, **kwargs},
            "gradient_steps": model._n_updates,
        },
        cb.evaluations,
        wall_s,
        cb.eval_s,
    )


if __name__ == "__main__":
    main()

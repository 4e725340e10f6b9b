"""Env steps per second of Stable-Baselines3 SAC or DQN (run in its own venv).

    .bench-venvs/sb3/bin/python benchmarks/workers/sb3.py --algo sac \
        --env InvertedPendulum-v5 --steps 2000

Times `model.learn(total_timesteps=N)`: the first W = learning_starts steps take
uniformly random actions with no gradient step, then each env step is followed by one
gradient step (train_freq=1, gradient_steps=1), N - W in all. The networks are SB3's
defaults (SAC: 256x256 MLPs for actor and each critic; DQN: 64x64), not our liquid
networks. SAC supports Box action spaces only, so SAC on CartPole-v1 prints an n/a line
carrying SB3's own error instead of a rate. Prints one JSON line.
"""

from __future__ import annotations

import time
from importlib.metadata import version

from _common import emit, finish_args, parser, rates
from stable_baselines3 import DQN, SAC
from stable_baselines3.common.callbacks import BaseCallback


class _MarkWarmupEnd(BaseCallback):
    """Records when the W-th env step is done, before the first gradient step."""

    def __init__(self, warmup: int) -> None:
        super().__init__()
        self.warmup = warmup
        self.at: float | None = None

    def _on_step(self) -> bool:
        if self.at is None and self.num_timesteps >= self.warmup:
            self.at = time.perf_counter()
        return True


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--algo", choices=["sac", "dqn"], default="sac")
    p.add_argument("--buffer-size", type=int, default=1_000_000)
    args = finish_args(p.parse_args())

    base = {
        "library": "stable-baselines3",
        "version": version("stable-baselines3"),
        "agent": args.algo.upper(),
        "env": args.env,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "networks": "SB3 default MlpPolicy: " + ("64x64" if args.algo == "dqn" else "256x256"),
    }
    cls = SAC if args.algo == "sac" else DQN
    kwargs = {
        "batch_size": args.batch_size,
        "buffer_size": args.buffer_size,
        "learning_starts": args.warmup,
        "train_freq": 1,
        "gradient_steps": 1,
        "seed": args.seed,
        "device": "cpu",
        "verbose": 0,
    }
    start = time.perf_counter()
    try:
        model = cls("MlpPolicy", args.env, **kwargs)
    except AssertionError as exc:  # SB3's check of supported action spaces
        emit(
            {
                **base,
                "na": f"{type(exc).__name__}: {exc}",
                "env_steps": 0,
                "seconds": None,
                "steps_per_s": None,
                "warmup": args.warmup,
            }
        )
        return
    init_seconds = time.perf_counter() - start

    mark = _MarkWarmupEnd(args.warmup)
    start = time.perf_counter()
    model.learn(total_timesteps=args.steps, callback=mark)
    end = time.perf_counter()

    env_steps = model.num_timesteps
    post = env_steps - args.warmup
    emit(
        {
            **base,
            "gradient_steps": model._n_updates,
            "init_seconds": round(init_seconds, 4),
            "warmup_policy": "uniform random actions, no gradient steps",
            **rates(env_steps, end - start, args.warmup, post, end - mark.at),
        }
    )


if __name__ == "__main__":
    main()

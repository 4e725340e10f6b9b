"""Env steps per second of the original Velora 0.2.0 NeuroFlow (run in its own venv).

    .bench-venvs/velora-0.2.0/bin/python benchmarks/workers/original_velora.py \
        --env InvertedPendulum-v5 --steps 2000

Velora 0.2.0 trains by episodes (`train(batch_size, n_episodes=...)`) after filling
the buffer with `warmup_steps` transitions from the untrained stochastic policy in 8
vectorized copies of the env (`ReplayBuffer.warm`, no gradient steps). Then every env
step is followed by one gradient step. To stop after a fixed number of env steps we
raise from a step callback, so the time covers the whole `train` call: setup, warm-up,
its metrics DB (metrics.db in the working dir, as the library does by default) and
N - warmup training steps. Prints one JSON line.
"""

from __future__ import annotations

import contextlib
import sys
import time
from importlib.metadata import version
from typing import Any

from _common import emit, finish_args, parser, rates

# velora 0.2.0 has a circular import: velora.models must be imported before velora.callbacks.
import velora.models
from velora.callbacks import TrainCallback


class _Done(Exception):
    """Raised by `_StopAfter` to leave `train` mid-episode at an exact step count."""


class _StopAfter(TrainCallback):
    """Counts training env steps and stops training after `limit` of them.

    Velora 0.2.0 only checks `stop_training` at the end of an episode, so stopping at
    an exact step count needs an exception; `TrainHandler.__exit__` still runs.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.episodes = 0

    def __call__(self, state: Any) -> Any:  # velora 0.2.0's TrainState
        if state.status == "step":
            self.count += 1
            if self.count >= self.limit:
                raise _Done
        elif state.status == "episode":
            self.episodes += 1
        return state

    def config(self) -> tuple[str, dict]:
        return "StopAfter", {"limit": self.limit}

    def info(self) -> str:
        return f"  Stop after {self.limit} training steps (benchmark)."


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--actor-neurons", type=int, default=20)
    p.add_argument("--critic-neurons", type=int, default=128)
    p.add_argument("--buffer-size", type=int, default=1_000_000)
    args = finish_args(p.parse_args())

    continuous = args.env != "CartPole-v1"
    cls = velora.models.NeuroFlowCT if continuous else velora.models.NeuroFlow
    start = time.perf_counter()
    agent = cls(
        args.env,
        args.actor_neurons,
        args.critic_neurons,
        buffer_size=args.buffer_size,
        device=None,  # velora 0.2.0's default: tensors on the CPU
        seed=args.seed,
    )
    init_seconds = time.perf_counter() - start

    marks: dict[str, float] = {}
    warm = agent.buffer.warm

    def timed_warm(*a: Any, **kw: Any) -> None:
        warm(*a, **kw)
        marks["warm_end"] = time.perf_counter()

    agent.buffer.warm = timed_warm
    stop = _StopAfter(args.steps - args.warmup)
    # The library prints a banner and progress to stdout: keep stdout for the JSON line.
    with contextlib.redirect_stdout(sys.stderr):
        start = time.perf_counter()
        try:
            agent.train(
                args.batch_size,
                n_episodes=1_000_000,
                callbacks=[stop],
                warmup_steps=args.warmup,
                display_count=1_000_000,
            )
        except _Done:
            pass
        end = time.perf_counter()

    warmed = len(agent.buffer) - stop.count  # whole vector steps: may overshoot warmup
    env_steps = warmed + stop.count
    result = {
        "library": "velora",
        "version": version("velora"),
        "agent": cls.__name__,
        "env": args.env,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "actor_neurons": args.actor_neurons,
        "critic_neurons": args.critic_neurons,
        "gradient_steps": stop.count,
        "episodes_completed": stop.episodes,
        "init_seconds": round(init_seconds, 4),
        "warmup_policy": "untrained actor, 8 vectorized envs, no gradient steps",
        **rates(env_steps, end - start, warmed, stop.count, end - marks["warm_end"]),
    }
    emit(result)


if __name__ == "__main__":
    main()

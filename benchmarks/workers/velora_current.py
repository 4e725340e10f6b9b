"""Env steps per second of this repository's Velora (run with the repo's own venv).

    python benchmarks/workers/velora_current.py --env InvertedPendulum-v5 --steps 2000

Trains `NeuroFlow(env, 20, 128)` with the library's defaults (one gradient step per env
step, random actions for the first `--warmup` steps, metrics.db in the working dir) and
stops at exactly `--steps` env steps through a step callback. `--compile` runs
`agent.compile()` first and times the steady rate from a few steps after warm-up,
reporting the compile's seconds and the rate with them apart. After the run it times the
bare `agent.update(batch_size)` on the same agent and buffer: the pure cost of one SAC
update, without the env. Prints one JSON line.
"""

from __future__ import annotations

import time
from importlib.metadata import version

import torch
from _common import emit, finish_args, parser, rates

from velora.callbacks import TrainCallback
from velora.models import NeuroFlow


class _StopAt(TrainCallback):
    """Marks the end of warm-up (and of the compile, `settle` steps later) and stops
    training at an exact env step count."""

    def __init__(self, warmup: int, limit: int, settle: int = 0) -> None:
        self.warmup, self.limit, self.settle = warmup, limit, settle
        self.warmup_end: float | None = None
        self.settled: float | None = None

    def on_step(self, state) -> bool:
        if self.warmup_end is None and state.step >= self.warmup:
            self.warmup_end = time.perf_counter()
            self.threads = torch.get_num_threads()  # what training runs on, not restored
        if self.settled is None and state.step >= self.warmup + self.settle:
            self.settled = time.perf_counter()
            self.settled_step = state.step
        return state.step < self.limit


# Compiled runs: the first policy step and the first update compile (once, tens of
# seconds); the steady rate is timed from this many steps after warm-up.
SETTLE_STEPS = 10


def _train(args, base: dict) -> None:
    agent = NeuroFlow(args.env, 20, 128, device=args.device, seed=args.seed)
    if args.compile:
        agent.compile()
    stop = _StopAt(args.warmup, args.steps, SETTLE_STEPS if args.compile else 0)
    # Time spent in updates inside the loop, so the loop's own overhead can be told apart.
    update, update_seconds, n_updates = agent.update, [0.0], [0]

    def timed_update(batch_size: int):
        start = time.perf_counter()
        losses = update(batch_size)
        if stop.settled is not None:  # inside the timed window (after any compile)
            update_seconds[0] += time.perf_counter() - start
            n_updates[0] += 1
        return losses

    agent.update = timed_update
    start = time.perf_counter()
    summary = agent.train(
        args.batch_size,
        n_episodes=1_000_000,
        callbacks=[stop],
        warmup_steps=args.warmup,
        n_envs=args.n_envs,
        display_count=1_000_000,
    )
    end = time.perf_counter()
    del agent.update  # the bare method again, for the pure timing
    pure_update_ms = _pure_update_ms(agent, args, stop.threads)
    warmup_steps = min(agent.steps_done, args.warmup + args.n_envs - 1)
    post = summary.steps - warmup_steps
    compiled, timed_from = {}, stop.warmup_end
    if args.compile:  # the steady rate after the compile, and the compile's cost
        compiled = {
            "compile_s": round(stop.settled - stop.warmup_end, 2),
            "with_compile_steps_per_s": round(post / (end - stop.warmup_end), 2),
        }
        post, timed_from = summary.steps - stop.settled_step, stop.settled
    emit(
        {
            **base,
            **compiled,
            "n_envs": args.n_envs,
            "episodes_completed": summary.episodes,
            "torch_threads": stop.threads,
            "updates": n_updates[0],
            "update_in_loop_ms": round(update_seconds[0] / max(n_updates[0], 1) * 1e3, 4),
            "update_ms": pure_update_ms,
            **rates(summary.steps, end - start, warmup_steps, post, end - timed_from),
        }
    )


def _pure_update_ms(agent: NeuroFlow, args, threads: int) -> float:
    """The bare `agent.update(batch_size)` on the trained agent's own buffer, on the
    thread count training ran on: the pure cost of one SAC update, without the env.

    Timed in the same process right after the run, so the loop's overhead ratio
    compares figures from the same minute of this machine's drift. The median of 5
    repeats, each a mean over `--updates` updates like the loop's own figure.
    """
    torch.set_num_threads(threads)
    for _ in range(20):
        agent.update(args.batch_size)
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(args.updates):
            agent.update(args.batch_size)
        if agent.device.type == "cuda":
            torch.cuda.synchronize()
        timings.append((time.perf_counter() - start) / args.updates)
    timings.sort()
    return round(timings[len(timings) // 2] * 1e3, 4)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n-envs", type=int, default=1)
    p.add_argument("--updates", type=int, default=200, help="pure updates per timed repeat")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true", help="NeuroFlow.compile() first")
    args = finish_args(p.parse_args())
    base = {
        "library": "velora",
        "version": version("velora"),
        "agent": "NeuroFlow",
        "env": args.env,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "device": args.device,
        "compiled": args.compile,
    }
    _train(args, base)


if __name__ == "__main__":
    main()

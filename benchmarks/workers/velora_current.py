"""Env steps per second of this repository's Velora (run with the repo's own venv).

    python benchmarks/workers/velora_current.py --env InvertedPendulum-v5 --steps 2000

Trains `NeuroFlow(env, 20, 128)` with the library's defaults (one gradient step per env
step, random actions for the first `--warmup` steps, metrics.db in the working dir) and
stops at exactly `--steps` env steps through a step callback. `--autograd` turns the
hand-written gradients off, so the update runs the autograd losses. `--compile` runs
`agent.compile()` first and times the steady rate from a few steps after warm-up,
reporting the compile's seconds and the rate with them apart.

The pure cost of one SAC update, without the env, is timed during the run: every
`--probe-every` steps after warm-up the run pauses, times `--updates` bare
`agent.update(batch_size)` calls on the agent and buffer as they are, and puts the
agent and the random generator back as they were, so training goes on exactly as
without the pause. The pauses are left out of the run's own time. This machine's speed
drifts by tens of percent within a minute, so a pure figure taken in the same seconds
as the loop's is the one to compare it with. Prints one JSON line.
"""

from __future__ import annotations

import copy
import statistics
import time
from importlib.metadata import version

import torch
from _common import emit, finish_args, parser, rates

from velora.callbacks import TrainCallback
from velora.models import NeuroFlow


class _PureUpdateProbe:
    """Times bare updates mid-run and undoes them: weights, optimiser state, RNG."""

    def __init__(self, agent: NeuroFlow, batch_size: int, updates: int, **sequences: int) -> None:
        self.agent, self.batch_size, self.updates = agent, batch_size, updates
        self.sequences = sequences  # sequence_length and burn_in, when replaying windows
        self.update = agent.update  # the bare method, before the loop's timing wrapper
        self.block_ms: list[float] = []
        self.paused_s = 0.0

    def __call__(self) -> None:
        paused = time.perf_counter()
        agent = self.agent
        modules, optimizers = agent.state_modules(), agent.optimizers()
        saved = (
            {name: copy.deepcopy(m.state_dict()) for name, m in modules.items()},
            {name: copy.deepcopy(o.state_dict()) for name, o in optimizers.items()},
            agent.log_alpha.detach().clone(),
            torch.get_rng_state(),
            torch.cuda.get_rng_state(agent.device) if agent.device.type == "cuda" else None,
        )
        start = time.perf_counter()
        for _ in range(self.updates):
            self.update(self.batch_size, **self.sequences)
        if agent.device.type == "cuda":
            torch.cuda.synchronize()
        self.block_ms.append((time.perf_counter() - start) / self.updates * 1e3)
        module_states, optimizer_states, log_alpha, rng, cuda_rng = saved
        with torch.no_grad():
            for name, module in modules.items():
                module.load_state_dict(module_states[name])
            agent.log_alpha.copy_(log_alpha)
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(optimizer_states[name])
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, agent.device)
        self.paused_s += time.perf_counter() - paused


class _StopAt(TrainCallback):
    """Marks the end of warm-up (and of the compile, `settle` steps later), probes the
    pure update cost every `probe_every` steps after that, and stops training at an
    exact env step count."""

    def __init__(
        self, warmup: int, limit: int, probe: _PureUpdateProbe, probe_every: int, settle: int = 0
    ) -> None:
        self.warmup, self.limit, self.settle = warmup, limit, settle
        self.probe, self.probe_every = probe, probe_every
        self.warmup_end: float | None = None
        self.settled: float | None = None
        self.next_probe: int | None = None

    def on_step(self, state) -> bool:
        if self.warmup_end is None and state.step >= self.warmup:
            self.warmup_end = time.perf_counter()
            self.threads = torch.get_num_threads()  # what training runs on, not restored
        if self.settled is None and state.step >= self.warmup + self.settle:
            self.settled = time.perf_counter()
            self.settled_step = state.step
            self.next_probe = state.step + self.probe_every // 2
        if self.next_probe is not None and state.step >= self.next_probe:
            self.probe()
            self.next_probe += self.probe_every
        return state.step < self.limit


# Compiled runs: the first policy step and the first update compile (once, tens of
# seconds); the steady rate is timed from this many steps after warm-up.
SETTLE_STEPS = 10


def _train(args, base: dict) -> None:
    agent = NeuroFlow(
        args.env, 20, 128, device=args.device, seed=args.seed, critic_history=args.critic_history
    )
    agent.hand_written_gradients = not args.autograd
    if args.compile:
        agent.compile()
    sequences = {}
    if args.sequence_length > 1:
        sequences = {"sequence_length": args.sequence_length, "burn_in": args.burn_in}
    probe = _PureUpdateProbe(agent, args.batch_size, args.updates, **sequences)
    settle = SETTLE_STEPS if args.compile else 0
    stop = _StopAt(args.warmup, args.steps, probe, args.probe_every, settle)
    # Time spent in updates inside the loop, so the loop's own overhead can be told apart.
    update, update_seconds, n_updates = agent.update, [0.0], [0]

    def timed_update(batch_size: int, **kwargs: int):
        start = time.perf_counter()
        losses = update(batch_size, **kwargs)
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
        **sequences,
    )
    end = time.perf_counter() - probe.paused_s  # every pause lies after `settled`
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
            # The median of the mid-run blocks, each a mean over `--updates` updates.
            "update_ms": round(statistics.median(probe.block_ms), 4) if probe.block_ms else None,
            "update_probes": len(probe.block_ms),
            **rates(summary.steps, end - start, warmup_steps, post, end - timed_from),
        }
    )


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n-envs", type=int, default=1)
    p.add_argument("--updates", type=int, default=50, help="bare updates per mid-run probe")
    p.add_argument("--probe-every", type=int, default=250, help="env steps between probes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true", help="NeuroFlow.compile() first")
    p.add_argument("--autograd", action="store_true", help="the autograd losses' update")
    p.add_argument("--sequence-length", type=int, default=1, help="replayed window length")
    p.add_argument("--burn-in", type=int, default=0, help="steps of each window without gradient")
    p.add_argument("--critic-history", default="none", help="NeuroFlow(critic_history=...)")
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
        "autograd": args.autograd,
        "sequence_length": args.sequence_length,
        "burn_in": args.burn_in,
        "critic_history": args.critic_history,
    }
    _train(args, base)


if __name__ == "__main__":
    main()

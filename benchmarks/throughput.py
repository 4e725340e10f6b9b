"""Training throughput: this Velora against the original Velora 0.2.0, SB3 and the env alone.

    python benchmarks/throughput.py                       # both envs, 2,000 steps each
    python benchmarks/throughput.py --envs CartPole-v1 --steps 3000 --n-envs 4
    python benchmarks/throughput.py --repeats 3           # medians of 3 alternating rounds

Every run trains with the same hyper-parameters (actor 20 / critic 128 neurons, batch
128, one gradient step per env step, 256 warm-up steps) for a fixed number of env steps
and reports env steps per second after warm-up. Each library runs in its own process:
the original Velora 0.2.0 and Stable-Baselines3 in virtual environments this script
builds under `.bench-venvs/` (the original shares our package name). Baselines run
twice: with the library's own torch thread setting (what a user gets) and pinned to one
thread (the setting this Velora picks for tiny networks). Runs alternate between
implementations per env, so machine noise hits them alike.

Our agent runs eager (the default) and after `agent.compile()` (torch.compile), whose
steady rate is timed from a few steps after warm-up; its one-off compile time and the
whole-run rate with the compile counted are in the note. Each of the two also runs
with the hand-written gradients turned off (`hand_written_gradients = False`: the
autograd losses of `velora.models.sac`, what any overridden loss runs), and the last
table sets the two paths side by side: the hand-written one stays only while it trains
at least 1.3x faster in some mode.

Sequence-replay runs (`--sequence-lengths`) train on windows with observation-only
critics and with critics that keep a memory of their own (`--critic-histories`).

Also printed: the pure cost of one SAC update (no env; timed in short pauses during
each of our runs, on its agent and buffer, which are then put back), the env-only step
cost (random policy on the raw env: the ceiling), the loop's overhead ratio
`loop time per step / (update + env step)` (target <= 1.5), and the memory of a
1M-transition InvertedPendulum buffer (target < 200 MB).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from baselines import (
    ORIGINAL_VELORA,
    SB3,
    WORKERS,
    BaselineError,
    ensure_venv,
    random_policy_steps_per_s,
    run_worker,
)

ENVS = ("CartPole-v1", "InvertedPendulum-v5")


def _rate(result: dict) -> float | None:
    return result.get("post_warmup_steps_per_s")


def _history_label(critic_history: str) -> str:
    """A sequence run's name part for what its critics see ("" for the observation only)."""
    return {"none": "", "actor_hidden": ", actor hidden", "own": ", own memory"}[critic_history]


def _sequence_run(length: int, critic_history: str, mode: str) -> str:
    """The name of one sequence-replay run of ours (`mode` "" or ", compiled")."""
    return f"velora (this), L={length}{_history_label(critic_history)}{mode}"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _buffer_megabytes() -> float:
    """Memory of a 1M-transition InvertedPendulum-v5 buffer as Velora allocates it."""
    from velora.buffer import ReplayBuffer
    from velora.gym import make_env
    from velora.nn import LiquidNCPNetwork

    env = make_env("InvertedPendulum-v5")
    hidden = LiquidNCPNetwork(env.observation_space.shape[0], 20, 2).hidden_size
    buffer = ReplayBuffer(1_000_000, env.observation_space.shape[0], 1, hidden)
    tensors = (buffer.storage, buffer.episode_ids, buffer.episode_steps, buffer.strides)
    return sum(t.element_size() * t.numel() for t in tensors) / 1e6


def _run(
    name: str, python: Path, script: str, argv: list[str], timeout: float, results: list[dict]
) -> dict:
    """One worker run; a failed run becomes an n/a row instead of ending the benchmark."""
    try:
        result = run_worker(python, WORKERS / script, argv, timeout)
    except BaselineError as exc:
        result = {"na": str(exc).splitlines()[0]}
    result["run"] = name
    results.append(result)
    pure = f", {_fmt(result['update_ms'], 3)} ms per bare update" if "update_ms" in result else ""
    print(f"  {name}: {_fmt(_rate(result))} steps/s{pure}", flush=True)
    return result


def _overhead(run: dict, env_ms: float) -> float | None:
    """A run's loop time per step over its own bare update cost plus a raw env step."""
    rate, update_ms = _rate(run), run.get("update_ms")
    return 1e3 / rate / (update_ms + env_ms) if rate and update_ms else None


def _median(runs: list[dict]) -> dict:
    """The run with the median rate, whole, so its figures agree (its bare update cost
    comes from the same process). With an even number of rounds, the lower of the two
    middle runs.
    """
    ranked = sorted(runs, key=lambda r: _rate(r) or 0.0)
    return ranked[(len(ranked) - 1) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS)
    p.add_argument("--steps", type=int, default=2_000, help="env steps per run, warm-up included")
    p.add_argument("--warmup", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-envs", type=int, nargs="*", default=[], help="extra runs of ours")
    p.add_argument("--skip-baselines", action="store_true", help="only this Velora")
    p.add_argument("--no-compile", action="store_true", help="skip the agent.compile() runs")
    p.add_argument("--no-autograd", action="store_true", help="skip the autograd-loss runs")
    p.add_argument(
        "--sequence-lengths",
        type=int,
        nargs="*",
        default=[8, 16],
        help="sequence-replay runs of ours (burn-in a quarter of each)",
    )
    p.add_argument(
        "--critic-histories",
        nargs="+",
        default=["none", "own"],
        choices=["none", "actor_hidden", "own"],
        help="what the critics of the sequence-replay runs see (NeuroFlow(critic_history))",
    )
    p.add_argument("--repeats", type=int, default=1, help="rounds; the table shows medians")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    p.add_argument("--json", type=Path, help="also write every raw result here")
    args = p.parse_args()

    common = [
        *("--steps", str(args.steps), "--warmup", str(args.warmup)),
        *("--batch-size", str(args.batch_size), "--seed", str(args.seed)),
    ]
    ours = Path(sys.executable)
    pythons = {}
    if not args.skip_baselines:
        print("Preparing baseline venvs under .bench-venvs/ (first run: a few minutes) ...")
        pythons = {
            "original": ensure_venv("velora-0.2.0", ORIGINAL_VELORA),
            "sb3": ensure_venv("sb3", SB3),
        }

    results: list[dict] = []
    table: list[tuple[str, str, float | None, float | None, str]] = []
    overhead_rows = []
    side_by_side: list[tuple] = []
    for env in args.envs:
        env_args = ["--env", env, *common]
        print(f"\n{env}: measuring ...", flush=True)

        def run(name: str, python: Path, script: str, extra: list[str]) -> dict:
            return _run(name, python, script, [*env_args, *extra], args.timeout, results)  # noqa: B023

        # Every implementation once per round, rounds one after another: the machine's
        # drift hits all of them, and the median over rounds is what the table shows.
        modes = [("", [])] + ([] if args.no_compile else [(", compiled", ["--compile"])])
        paths = [("", [])] + ([] if args.no_autograd else [(", autograd", ["--autograd"])])
        specs = [
            *[
                (f"velora (this){path}{mode}", ours, "velora_current.py", [*p_args, *m_args])
                for path, p_args in paths
                for mode, m_args in modes
            ],
            *[
                (f"velora (this), n_envs={n}", ours, "velora_current.py", ["--n-envs", str(n)])
                for n in args.n_envs
            ],
            *[
                (
                    _sequence_run(length, history, mode),
                    ours,
                    "velora_current.py",
                    [
                        *("--sequence-length", str(length), "--burn-in", str(length // 4)),
                        *("--critic-history", history, *m_args),
                    ],
                )
                for length in args.sequence_lengths
                for history in args.critic_histories
                for mode, m_args in modes
            ],
        ]
        baseline_names = []
        if pythons:
            algos = [("velora 0.2.0", pythons["original"], "original_velora.py", [])]
            if env == "CartPole-v1":
                algos.append(("SB3 DQN (64x64 MLP)", pythons["sb3"], "sb3.py", ["--algo", "dqn"]))
            algos.append(("SB3 SAC (256x256 MLP)", pythons["sb3"], "sb3.py", ["--algo", "sac"]))
            for name, python, script, extra in algos:
                specs.append((f"{name} [library threads]", python, script, extra))
                specs.append((f"{name} [1 thread]", python, script, [*extra, "--threads", "1"]))
                baseline_names.append(name)
        rounds: dict[str, list[dict]] = {name: [] for name, *_ in specs}
        for round_ in range(args.repeats):
            if args.repeats > 1:
                print(f" round {round_ + 1}/{args.repeats}", flush=True)
            for name, python, script, extra in specs:
                rounds[name].append(run(name, python, script, extra))
        measured = {name: _median(runs) for name, runs in rounds.items()}
        this = measured["velora (this)"]
        extra_runs = [(n, measured[f"velora (this), n_envs={n}"]) for n in args.n_envs]
        baseline_runs = [
            (name, measured[f"{name} [library threads]"], measured[f"{name} [1 thread]"])
            for name in baseline_names
        ]
        env_rate = random_policy_steps_per_s(env, 20_000, seed=args.seed)
        results.append({"run": "random policy", "env": env, "steps_per_s": env_rate})

        ours_rate = _rate(this)
        table.append((env, "velora (this)", ours_rate, ours_rate, "eager (the default)"))
        compiled = measured.get("velora (this), compiled")
        if compiled is not None:
            rate = _rate(compiled)
            note = (
                f"`agent.compile()`: steady rate after a one-off compile of "
                f"{_fmt(compiled.get('compile_s'))} s; "
                f"{_fmt(compiled.get('with_compile_steps_per_s'))} steps/s over this run "
                "with the compile counted"
                if "na" not in compiled
                else compiled["na"]
            )
            table.append((env, "velora (this), compiled", rate, rate, note))
        for name in ("velora (this), autograd", "velora (this), autograd, compiled"):
            if name in measured:
                rate = _rate(measured[name])
                note = "the autograd losses (hand-written gradients off)"
                table.append((env, name, rate, rate, note))
                hand = measured[name.replace(", autograd", "")]
                if rate and _rate(hand):
                    side_by_side.append((env, name, _rate(hand), rate, hand, measured[name]))
        for length in args.sequence_lengths:
            for history in args.critic_histories:
                for mode in ("", ", compiled"):
                    name = _sequence_run(length, history, mode)
                    if name in measured:
                        note = f"sequence replay: windows of {length}, burn-in {length // 4}"
                        if history != "none":
                            note += f"; critic_history={history!r}"
                        rate = _rate(measured[name])
                        table.append((env, name, rate, rate, note))
        for n, result in extra_runs:
            rate = _rate(result)
            gain = f"; {rate / ours_rate:.1f}x the env steps/s of 1 env" if rate else ""
            note = f"{n} envs, 1 update per vector step ({1 / n:.2f} per env step){gain}"
            table.append((env, f"velora (this), n_envs={n}", rate, rate, note))
        for name, default, single in baseline_runs:
            note = "n/a: SB3 SAC supports Box action spaces only" if "na" in default else ""
            threads = default.get("torch_threads")
            label = f"{name}" + (f" (default {threads} threads)" if threads else "")
            table.append((env, label, _rate(default), _rate(single), note))
        table.append((env, "random policy, raw env (ceiling)", env_rate, env_rate, ""))

        env_ms = 1e3 / env_rate
        for label, name in (
            ("eager", "velora (this)"),
            ("compiled", "velora (this), compiled"),
            ("autograd, eager", "velora (this), autograd"),
            ("autograd, compiled", "velora (this), autograd, compiled"),
            *[
                (
                    f"L={length}{_history_label(history)}{mode or ', eager'}",
                    _sequence_run(length, history, mode),
                )
                for length in args.sequence_lengths
                for history in args.critic_histories
                for mode in ("", ", compiled")
            ],
        ):
            if name not in measured:
                continue
            train_run = measured[name]
            update_ms, in_loop_ms = train_run.get("update_ms"), train_run.get("update_in_loop_ms")
            rate = _rate(train_run)
            loop_ms = 1e3 / rate if rate else None
            # Each round's ratio uses its own process's figures; the median of those is
            # steadier than one round's, as the machine drifts between minutes.
            ratios = sorted(r for run in rounds[name] if (r := _overhead(run, env_ms)))
            median = ratios[(len(ratios) - 1) // 2] if ratios else None
            row = (env, label, update_ms, in_loop_ms, env_ms, loop_ms)
            overhead_rows.append((*row, _overhead(train_run, env_ms), median))

    print(
        f"\nEnv steps per second after warm-up ({args.steps:,} steps, warm-up {args.warmup}, "
        f"batch {args.batch_size}, 1 gradient step per env step, seed {args.seed})\n"
    )
    print(
        "| env | run | steps/s (library threads) | steps/s (1 thread) "
        "| velora (this) is x faster | compiled is x faster | note |"
    )
    print("|---|---|---:|---:|---:|---:|---|")
    ours_by_env = {env: rate for env, run, rate, _, _ in table if run == "velora (this)"}
    compiled_by_env = {
        env: rate for env, run, rate, _, _ in table if run == "velora (this), compiled"
    }

    def speedup(ours: float | None, default: float | None, single: float | None) -> str:
        return " / ".join(f"{ours / r:.1f}" for r in (default, single) if r and ours)

    for env, name, default, single, note in table:
        ours_x = speedup(ours_by_env[env], default, single)
        compiled_x = speedup(compiled_by_env.get(env), default, single)
        if name.startswith(("velora (this)", "random policy")):
            ours_x = compiled_x = ""
        print(
            f"| {env} | {name} | {_fmt(default)} | {_fmt(single)} | {ours_x} | {compiled_x} "
            f"| {note} |"
        )

    print("\nWhere a step's time goes (this Velora; target: loop / (pure update + env) <= 1.5)\n")
    print(
        "| env | run | SAC update, pure (ms) | same, inside the loop (ms) | env step, raw (ms) "
        f"| loop per step (ms) | loop / (pure update + env) | same, median of {args.repeats} "
        "rounds |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for env, label, update_ms, in_loop_ms, env_ms, loop_ms, ratio, median in overhead_rows:
        print(
            f"| {env} | {label} | {_fmt(update_ms, 3)} | {_fmt(in_loop_ms, 3)} "
            f"| {_fmt(env_ms, 3)} | {_fmt(loop_ms, 3)} | {_fmt(ratio, 2)} | {_fmt(median, 2)} |"
        )
    if side_by_side:
        print("\nHand-written gradients against the autograd losses (keep at >= 1.3x)\n")
        print(
            "| env | mode | hand-written steps/s | autograd steps/s | training x faster "
            "| update pure, hand-written (ms) | update pure, autograd (ms) | update x faster |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for env, name, hand_rate, auto_rate, hand, auto in side_by_side:
            mode = "compiled" if name.endswith("compiled") else "eager"
            hand_ms, auto_ms = hand.get("update_ms"), auto.get("update_ms")
            update_x = f"{auto_ms / hand_ms:.2f}" if hand_ms and auto_ms else "n/a"
            print(
                f"| {env} | {mode} | {_fmt(hand_rate)} | {_fmt(auto_rate)} "
                f"| {hand_rate / auto_rate:.2f} | {_fmt(hand_ms, 3)} | {_fmt(auto_ms, 3)} "
                f"| {update_x} |"
            )
    megabytes = _buffer_megabytes()
    print(f"\n1M-transition InvertedPendulum-v5 buffer: {megabytes:.1f} MB (target < 200 MB)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"raw results: {args.json}")


if __name__ == "__main__":
    main()

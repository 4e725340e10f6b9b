"""Learning suite: NeuroFlow against Stable-Baselines3 on 8 Gymnasium tasks.

Each job trains one agent on one task with one seed for the task's env-step budget
(`tasks.py`), evaluating the deterministic policy 20 times along the way (10 episodes
each, fixed reset seeds). NeuroFlow (20 actor / 128 critic neurons, batch 128, buffer
200_000) runs under this venv (`workers/velora_learning.py`); SB3 runs DQN (discrete
tasks) or SAC (continuous ones) with rl-baselines3-zoo's tuned settings under its own
venv `.bench-venvs/sb3-suite` (`workers/sb3_learning.py`), built on first use (a few
minutes). Run from the repository root:

    python benchmarks/suite/run.py                        # everything: 8 tasks x 2 agents x 3 seeds
    python benchmarks/suite/run.py --tasks CartPole-v1 Pendulum-v1 --seeds 0 --jobs 2
    python benchmarks/suite/run.py --normalize-obs        # NeuroFlow with obs normalisation
    python benchmarks/suite/run.py --compile              # NeuroFlow compiled: same results, faster
    python benchmarks/suite/report.py                     # the report again, from the files

Jobs run as subprocesses, `--jobs` at a time, each on one torch thread. A job's result
is one JSON file in `--results` (`<env>__<agent>__seed<k>.json`; the agent's name says
how it trains, `neuroflow[-norm][-seq<L>[-hist|-own]][-a<N>][-n<k>]` or `sb3`, and a
NeuroFlow job takes the env's preset for what its name leaves open), written only when
the job completes: a rerun skips the finished jobs and retries failed or interrupted
ones, so the suite can be stopped and resumed at will. At the end `report.py` writes `suite.md`
and one learning-curve PNG per task into the same folder (and, for the default folder,
the PNGs into `docs/suite/` too, where the README shows them; `--docs` names that
folder for other results).

`--budget-scale 0.02` shrinks every budget (and SB3's `learning_starts`) for smoke tests;
scaled runs go to `<results>-scale<factor>`, never mixed with real ones.

What each job took (wall time, training steps per second) is in `suite.md`; the SB3 SAC
jobs, with their 256x256 networks, are by far the slowest.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
REPO = BENCHMARKS.parent
sys.path.insert(0, str(BENCHMARKS))  # for baselines.py, one folder up

from baselines import WORKERS, BaselineError, ensure_venv, run_worker  # noqa: E402

sys.path.insert(0, str(WORKERS))  # the workers' result names
from _learning import neuroflow_name  # noqa: E402
from report import write_report  # noqa: E402
from tasks import ALL_TASKS, TASKS, Task, file_stem, zoo_kwargs  # noqa: E402

SB3_SUITE = [
    "stable-baselines3==2.9.2",
    "gymnasium[classic-control,mujoco,box2d]==1.4.0",
    "mujoco==4.0.0",
]
"""SB3 with the suite's env extras: baselines.SB3 plus Box2D for LunarLander."""

AGENTS = ("neuroflow", "neuroflow-seq", "neuroflow-seq-hist", "neuroflow-seq-own", "sb3")
DEFAULT_RESULTS = BENCHMARKS / "results" / "suite"


@dataclass(frozen=True)
class Job:
    """One training run: a task, an agent and a seed.

    For NeuroFlow the fields say how it trains, over the env's preset: a preset may train
    CartPole-v1 with sequences, yet "neuroflow" stays single-step."""

    task: Task
    agent: str  # "neuroflow" or "sb3"
    seed: int
    normalize_obs: bool = False
    sequence_length: int = 1
    burn_in: int = 0
    critic_history: str = "none"  # or "actor_hidden", "own"
    actor_neurons: int = 20
    n_steps: int | None = None  # None: the preset's (one-step for windows, see the worker)
    compile: bool = False

    @property
    def agent_name(self) -> str:
        """The result's agent name: `sb3`, or the worker's name for these settings."""
        if self.agent == "sb3":
            return "sb3"
        return neuroflow_name(
            self.normalize_obs,
            self.sequence_length,
            self.critic_history,
            self.actor_neurons,
            self.n_steps,
        )

    @property
    def name(self) -> str:
        return f"{file_stem(self.task.env_id)}__{self.agent_name}__seed{self.seed}"

    def args(self, out: Path) -> list[str]:
        """The worker's command-line arguments."""
        t = self.task
        args = ["--env", t.env_id, "--seed", str(self.seed), "--budget", str(t.budget)]
        args += ["--eval-every", str(t.eval_every), "--out", str(out)]
        if self.agent == "sb3":
            return [*args, "--algo", t.algo, "--kwargs", json.dumps(zoo_kwargs(t))]
        args += ["--actor-neurons", str(self.actor_neurons)]
        args += ["--sequence-length", str(self.sequence_length), "--burn-in", str(self.burn_in)]
        args += ["--critic-history", self.critic_history]
        if self.n_steps is not None:
            args += ["--agent-kwargs", json.dumps({"n_steps": self.n_steps})]
        if self.normalize_obs:
            args.append("--normalize-obs")
        if self.compile:
            args.append("--compile")
        return args


def results_dir(base: Path, scale: float) -> Path:
    """Where the results go: scaled runs get their own folder."""
    return base if scale == 1.0 else base.with_name(f"{base.name}-scale{scale:g}")


_LOG_LOCK = threading.Lock()


def _log(message: str) -> None:
    """A timestamped line; the lock keeps lines from the job threads whole."""
    with _LOG_LOCK:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _run(job: Job, python: Path, out_dir: Path, timeout: float) -> str:
    """Run one job's worker and sum its result up; raises if it failed."""
    _log(f"start {job.name} ({job.task.budget:,} env steps)")
    script = "sb3_learning.py" if job.agent == "sb3" else "velora_learning.py"
    out = out_dir / f"{job.name}.json"
    r = run_worker(python, WORKERS / script, job.args(out), timeout)
    if not out.exists():
        raise BaselineError(f"{script} printed a result but wrote no {out.name}")
    return (
        f"final return {r['evaluations'][-1]['mean_return']:.1f}, {r['wall_s']:.0f} s, "
        f"{r['train_steps_per_s']:.0f} train steps/s"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", nargs="+", choices=list(ALL_TASKS), default=list(TASKS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--agents", nargs="+", choices=AGENTS, default=["neuroflow", "sb3"])
    p.add_argument("--jobs", type=int, default=2, help="jobs run at once (one core each)")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    p.add_argument("--budget-scale", type=float, default=1.0, help="for smoke tests")
    p.add_argument("--docs", type=Path, help="also write the curves here (the guide's folder)")
    p.add_argument("--normalize-obs", action="store_true", help="NeuroFlow(normalize_obs=True)")
    p.add_argument(
        "--compile", action="store_true", help="NeuroFlow jobs run agent.compile() (faster)"
    )
    p.add_argument("--sequence-length", type=int, default=8, help="neuroflow-seq's windows")
    p.add_argument("--burn-in", type=int, default=2, help="neuroflow-seq's burn-in steps")
    p.add_argument("--actor-neurons", type=int, default=20, help="NeuroFlow's actor size")
    p.add_argument(
        "--n-steps", type=int, help="NeuroFlow(n_steps=...) over the preset (default: its own)"
    )
    p.add_argument("--timeout", type=float, default=6 * 3600, help="seconds per job at most")
    args = p.parse_args()
    if args.budget_scale <= 0 or args.jobs < 1:
        p.error("--budget-scale must be positive and --jobs at least 1")
    if args.actor_neurons < 1 or (args.n_steps is not None and args.n_steps < 1):
        p.error("--actor-neurons and --n-steps must be at least 1")

    out_dir = results_dir(args.results.absolute(), args.budget_scale)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Each agent's replay and critics; the other NeuroFlow options apply to them all.
    windows = {"sequence_length": args.sequence_length, "burn_in": args.burn_in}
    replay: dict[str, dict] = {
        "neuroflow": {},
        "neuroflow-seq": windows,
        "neuroflow-seq-hist": {**windows, "critic_history": "actor_hidden"},
        "neuroflow-seq-own": {**windows, "critic_history": "own"},
    }
    neuroflow = {
        "normalize_obs": args.normalize_obs,
        "actor_neurons": args.actor_neurons,
        "n_steps": args.n_steps,
        "compile": args.compile,
    }
    # The biggest budgets first, so the two slots stay busy to the end.
    tasks = sorted(
        (ALL_TASKS[t].scaled(args.budget_scale) for t in args.tasks), key=lambda t: -t.budget
    )
    jobs = [
        Job(t, "sb3", s) if a == "sb3" else Job(t, "neuroflow", s, **neuroflow, **replay[a])
        for t in tasks
        for s in args.seeds
        for a in args.agents
    ]
    todo = [j for j in jobs if not (out_dir / f"{j.name}.json").exists()]
    _log(f"{len(jobs)} jobs, {len(jobs) - len(todo)} already done, {len(todo)} to run -> {out_dir}")

    failed: list[str] = []
    pythons = {"neuroflow": Path(sys.executable), "sb3": Path(sys.executable)}
    if any(j.agent == "sb3" for j in todo):
        _log("SB3 venv .bench-venvs/sb3-suite (the first build takes minutes)")
        try:
            pythons["sb3"] = ensure_venv("sb3-suite", SB3_SUITE, REPO / ".bench-venvs")
        except BaselineError as exc:  # the NeuroFlow jobs can still run
            _log(f"FAILED to build the SB3 venv, skipping its jobs\n{exc}")
            failed += [j.name for j in todo if j.agent == "sb3"]
            todo = [j for j in todo if j.agent != "sb3"]

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(_run, j, pythons[j.agent], out_dir, args.timeout): j for j in todo}
        try:
            for i, future in enumerate(as_completed(futures), 1):
                job = futures[future]
                try:
                    _log(f"[{i}/{len(todo)}] {job.name}: {future.result()}")
                except Exception as exc:  # any job's failure is reported, never fatal
                    failed.append(job.name)
                    _log(f"[{i}/{len(todo)}] FAILED {job.name}\n{type(exc).__name__}: {exc}")
        except KeyboardInterrupt:  # start no queued job; running ones got the signal too
            pool.shutdown(wait=False, cancel_futures=True)
            raise

    # The curves also go to the guide: the suite's to docs/suite, others' to --docs;
    # never a smoke test's.
    docs = REPO / "docs" / "suite" if out_dir == DEFAULT_RESULTS else args.docs
    write_report(out_dir, docs if args.budget_scale == 1.0 else None)
    if failed:
        _log(f"{len(failed)} job(s) failed (rerun to retry them): {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()

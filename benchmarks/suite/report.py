"""Report of the learning suite: a markdown table per task and a learning-curve PNG each.

Reads every result JSON in the folder (`run.py` calls it at the end; run it alone to
report on partial results while the suite goes on):

    python benchmarks/suite/report.py [--results benchmarks/results/suite] [--curves docs/suite]

Per task and agent: seeds finished, env steps to the threshold per seed (the first
evaluation whose mean return reaches it; "–" if none did), final return (the last
evaluation's mean return, mean ± std over seeds), wall time per seed and training steps
per second (evaluations left out). The winner of a task solved more seeds; on a tie, it
needed fewer median env steps to the threshold (over its solved seeds); then it has the
higher final return. Writes `suite.md` and `<env>.png` (mean evaluation return against
env steps per agent, a min–max band over the seeds, the threshold dashed) into the folder.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from tasks import ALL_TASKS, EVAL_EPISODES, Task, file_stem

DEFAULT_RESULTS = Path(__file__).resolve().parents[1] / "results" / "suite"
AGENT_ORDER = (
    "neuroflow",
    "neuroflow-norm",
    "neuroflow-seq",
    "neuroflow-seq-hist",
    "neuroflow-seq-own",
    "neuroflow-norm-seq",
    "neuroflow-norm-seq-hist",
    "sb3",
)
COLORS = {
    "neuroflow": "C0",
    "neuroflow-norm": "C2",
    "neuroflow-seq": "C3",
    "neuroflow-seq-hist": "C4",
    "neuroflow-seq-own": "C5",
    "sb3": "C1",
}


def _kind(agent: str) -> str:
    """The agent without its window length: "neuroflow-seq8-hist" is a "neuroflow-seq-hist"."""
    return re.sub(r"-seq\d+", "-seq", agent)


def _agent_order(agent: str) -> tuple[int, int, str]:
    """Agents in `AGENT_ORDER`, shorter windows first within a kind."""
    window = re.search(r"-seq(\d+)", agent)
    kinds = list(AGENT_ORDER)
    kind = _kind(agent)
    return (kinds.index(kind) if kind in kinds else 99, int(window[1]) if window else 0, agent)


@dataclass
class AgentRuns:
    """One agent's finished seeds on one task, and the figures the tables show."""

    agent: str
    task: Task
    runs: list[dict[str, Any]]  # sorted by seed

    @property
    def algo(self) -> str:
        return self.runs[0].get("algo", "?")

    @property
    def to_threshold(self) -> list[int | None]:
        """Per seed: env steps at the first evaluation reaching the threshold, or None."""
        return [
            next(
                (e["steps"] for e in r["evaluations"] if e["mean_return"] >= self.task.threshold),
                None,
            )
            for r in self.runs
        ]

    @property
    def solved(self) -> int:
        return sum(s is not None for s in self.to_threshold)

    @property
    def median_to_threshold(self) -> float:
        """Median over the solved seeds; infinite when none was solved."""
        steps = [s for s in self.to_threshold if s is not None]
        return statistics.median(steps) if steps else math.inf

    @property
    def finals(self) -> list[float]:
        return [r["evaluations"][-1]["mean_return"] for r in self.runs]

    @property
    def final_mean(self) -> float:
        return statistics.fmean(self.finals)

    @property
    def max_alpha(self) -> float | None:
        """The largest temperature any evaluation recorded (None for DQN, which has none)."""
        alphas = [e["alpha"] for r in self.runs for e in r["evaluations"] if e.get("alpha")]
        return max(alphas) if alphas else None

    @property
    def wall_minutes(self) -> float:
        """Mean wall time of one seed's run, evaluations included."""
        return statistics.fmean(r["wall_s"] for r in self.runs) / 60

    def summary(self) -> str:
        """ "solved k/n · median steps · final mean ± std · wall" for the overview table."""
        return (
            f"{self.solved}/{len(self.runs)} · {_steps(self.median_to_threshold)} · "
            f"{_mean_std(self.finals)} · {self.wall_minutes:.0f} min"
        )

    def rank_key(self) -> tuple[int, float, float]:
        """Bigger is better: seeds solved, then fewer median steps, then final return."""
        return (self.solved, -self.median_to_threshold, self.final_mean)


def load(results: Path) -> dict[str, dict[str, AgentRuns]]:
    """The results by env id, then agent; files that do not parse are reported and skipped."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for path in sorted(results.glob("*.json")):
        try:
            r = json.loads(path.read_text())
            env, agent, evaluations = r["env"], r["agent"], r["evaluations"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            print(f"skipping {path.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        if not evaluations:
            print(f"skipping {path.name}: no evaluations", file=sys.stderr)
            continue
        if env not in ALL_TASKS:
            print(f"skipping {path.name}: {env} is not a suite task", file=sys.stderr)
            continue
        grouped.setdefault(env, {}).setdefault(agent, []).append(r)
    return {
        env: {
            agent: AgentRuns(agent, ALL_TASKS[env], sorted(runs, key=lambda r: r["seed"]))
            for agent, runs in sorted(by_agent.items(), key=lambda kv: _agent_order(kv[0]))
        }
        for env, by_agent in sorted(grouped.items(), key=lambda kv: list(ALL_TASKS).index(kv[0]))
    }


def _steps(value: float | None) -> str:
    return "–" if value is None or math.isinf(value) else f"{value:,.0f}"


def _mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f}"
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}"


def winner(agents: dict[str, AgentRuns]) -> tuple[str, str]:
    """The task's winning agent and why; ("–", reason) with fewer than two agents."""
    if len(agents) < 2:
        return "–", "one agent only"
    ranked = sorted(agents.values(), key=AgentRuns.rank_key, reverse=True)
    best, second = ranked[0], ranked[1]
    if best.rank_key() == second.rank_key():
        return "tie", "same seeds solved, median steps and final return"
    if best.solved != second.solved:
        why = f"solved {best.solved}/{len(best.runs)} seeds vs {second.solved}/{len(second.runs)}"
    elif best.median_to_threshold != second.median_to_threshold:
        why = (
            f"median steps to threshold {_steps(best.median_to_threshold)} "
            f"vs {_steps(second.median_to_threshold)}"
        )
    else:
        why = f"final return {best.final_mean:.1f} vs {second.final_mean:.1f}"
    if len(best.runs) != len(second.runs):
        why += " (unequal seed counts)"
    return best.agent, why


def task_table(agents: dict[str, AgentRuns]) -> list[str]:
    """The markdown lines of one task's table."""
    lines = [
        "| agent | algo | seeds | steps to threshold (per seed) | solved | final return "
        "| wall min/seed | train steps/s | max alpha |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in agents.values():
        seeds = ", ".join(str(r["seed"]) for r in a.runs)
        lines.append(
            f"| {a.agent} | {a.algo} | {seeds} | {' · '.join(_steps(s) for s in a.to_threshold)} "
            f"| {a.solved}/{len(a.runs)} | {_mean_std(a.finals)} "
            f"| {a.wall_minutes:.1f} "
            f"| {statistics.fmean(r['train_steps_per_s'] for r in a.runs):.0f} "
            f"| {'–' if a.max_alpha is None else f'{a.max_alpha:.3g}'} |"
        )
    return lines


def plot(env: str, agents: dict[str, AgentRuns], path: Path) -> None:
    """Mean evaluation return against env steps, a min–max band over seeds per agent."""
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    used: set[str | None] = set()
    spare = (f"C{i}" for i in range(6, 10))  # for a second window length of one kind
    for a in agents.values():
        by_step: dict[int, list[float]] = {}
        for r in a.runs:
            for e in r["evaluations"]:
                by_step.setdefault(e["steps"], []).append(e["mean_return"])
        steps = sorted(by_step)
        color = COLORS.get(_kind(a.agent))
        if color in used:
            color = next(spare, None)
        used.add(color)
        mean = [statistics.fmean(by_step[s]) for s in steps]
        label = f"{a.agent} ({a.algo}, {len(a.runs)} seed{'s' * (len(a.runs) > 1)})"
        ax.plot(steps, mean, color=color, label=label, marker=".")
        ax.fill_between(
            steps,
            [min(by_step[s]) for s in steps],
            [max(by_step[s]) for s in steps],
            color=ax.lines[-1].get_color(),
            alpha=0.2,
            linewidth=0,
        )
    task = ALL_TASKS[env]
    ax.axhline(task.threshold, color="grey", linestyle="--", label=f"threshold {task.threshold:g}")
    ax.set(
        title=f"{env}: deterministic evaluation ({EVAL_EPISODES} episodes)",
        xlabel="env steps",
        ylabel="mean return (band: min–max over seeds)",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.savefig(path, dpi=110)


def write_report(results: Path, curves: Path | None = None) -> str:
    """Print the report, and write `suite.md` and the PNGs into `results` (the PNGs also
    into `curves`, when given: the README shows them from `docs/suite`)."""
    data = load(results)
    repo, resolved = Path(__file__).resolve().parents[2], results.resolve()
    shown = resolved.relative_to(repo) if resolved.is_relative_to(repo) else results
    lines = [
        "# Learning suite: NeuroFlow vs Stable-Baselines3",
        "",
        f"Results: `{shown}`. Each evaluation plays {EVAL_EPISODES} deterministic episodes "
        "(fixed reset seeds); steps to threshold is the first evaluation whose mean return "
        "reaches it. Final return: the last evaluation's mean return, mean ± std over seeds. "
        "Wall time includes the evaluations; train steps/s leaves them out.",
        "",
    ]
    if not data:
        lines.append("No results yet.")
    else:
        names = sorted({a for agents in data.values() for a in agents}, key=_agent_order)
        lines += [
            "Per agent: seeds solved · median env steps to the threshold · final return · "
            "wall time of one seed's run.",
            "",
            f"| task | threshold | budget | {' | '.join(names)} | winner |",
            "|---|---|---|" + "---|" * len(names) + "---|",
        ]
        for env, agents in data.items():
            task, budgets = ALL_TASKS[env], {r["budget"] for a in agents.values() for r in a.runs}
            budget = ", ".join(f"{b:,}" for b in sorted(budgets))
            cells = " | ".join(agents[n].summary() if n in agents else "–" for n in names)
            lines.append(
                f"| {env} | {task.threshold:g} | {budget} | {cells} | {winner(agents)[0]} |"
            )
    for env, agents in data.items():
        task = ALL_TASKS[env]
        every = sorted({r["eval_every"] for a in agents.values() for r in a.runs})
        lines += [
            "",
            f"## {env}",
            "",
            f"Threshold {task.threshold:g}; evaluated every {', '.join(f'{e:,}' for e in every)} "
            "env steps.",
            "",
            *task_table(agents),
            "",
            "Winner: {} ({}).".format(*winner(agents)),
            "",
            f"![{env}]({file_stem(env)}.png)",
        ]
        plot(env, agents, results / f"{file_stem(env)}.png")
        if curves is not None:
            curves.mkdir(parents=True, exist_ok=True)
            plot(env, agents, curves / f"{file_stem(env)}.png")
    text = "\n".join(lines) + "\n"
    (results / "suite.md").write_text(text)
    print(text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="folder of result JSONs")
    p.add_argument("--curves", type=Path, help="also write the PNGs here (e.g. docs/suite)")
    args = p.parse_args()
    if not args.results.is_dir():
        sys.exit(f"no results folder {args.results}")
    write_report(args.results, args.curves)


if __name__ == "__main__":
    main()

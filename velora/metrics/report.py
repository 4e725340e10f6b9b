"""Reports of training runs read back from `metrics.db`: a run list, curves, an HTML page.

Matplotlib is imported only when a figure is drawn, so `velora.metrics` stays light.
Figures are built with `matplotlib.figure.Figure` (no pyplot): no GUI backend, no global
figure registry, and PNGs are rendered by Agg.
"""

import base64
import html
import io
import json
import math
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func
from sqlmodel import Session, select

from velora.metrics.db import METRICS_DB, get_db_engine
from velora.metrics.tables import Episode, Evaluation, Experiment

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Figure size (inches) and resolution of `plot_runs`: 1200 x 700 pixels by default.
FIGSIZE = (12.0, 7.0)
DPI = 100
_PANELS = [
    ["return", "return", "length", "alpha"],
    ["actor_loss", "critic_loss", "entropy_loss", "alpha"],
]
_TITLES = {
    "return": "Episode return (moving average ± std; diamonds: evaluations)",
    "length": "Episode length",
    "actor_loss": "Actor loss",
    "critic_loss": "Critic loss",
    "entropy_loss": "Entropy loss",
    "alpha": "Entropy temperature alpha (log scale)",
}


@dataclass(frozen=True)
class RunSummary:
    """One experiment (a `train()` run) of a metrics database, in numbers."""

    id: int
    agent: str
    env: str
    created_at: datetime
    episodes: int
    steps: int
    best_moving_avg: float
    last_moving_avg: float
    max_return: float
    config: dict
    #: evaluations of the deterministic policy (`Evaluate`), and the best mean return.
    evaluations: int = 0
    best_eval: float = math.nan

    @property
    def label(self) -> str:
        return f"#{self.id} {self.agent} {self.env}"


@dataclass(frozen=True)
class RunData:
    """A run's summary and its episodes, column by column, in episode order."""

    summary: RunSummary
    episode: list[int]
    reward: list[float]
    length: list[int]
    reward_moving_avg: list[float]
    reward_moving_std: list[float]
    actor_loss: list[float]
    critic_loss: list[float]
    entropy_loss: list[float]
    alpha: list[float]
    #: the evaluations: after which episode, their mean return and its std.
    eval_episode: list[int] = field(default_factory=list)
    eval_mean: list[float] = field(default_factory=list)
    eval_std: list[float] = field(default_factory=list)


def _engine(db_path: str | os.PathLike[str]):
    """The engine of an existing Velora database; never creates or alters a file.

    `get_db_engine` creates missing files and tables, which is right for training but
    wrong for a report: a mistyped path would leave an empty database behind.
    """
    path = Path(db_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no metrics database at {path}: train an agent first, or give the path of "
            "an existing metrics.db."
        )
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as con:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as error:
        raise ValueError(f"{path} is not a Velora metrics database: {error}.") from None
    missing = {"experiment", "episode"} - tables
    if missing:
        raise ValueError(
            f"{path} is not a Velora metrics database: it has no {' or '.join(sorted(missing))} "
            "table."
        )
    return get_db_engine(path)


def _summaries(session: Session, run_ids: Sequence[int] | None) -> list[RunSummary]:
    stats = (
        select(
            Episode.experiment_id,
            func.count(Episode.id),
            func.coalesce(func.sum(Episode.length), 0),
            func.max(Episode.reward_moving_avg),
            func.max(Episode.reward),
            func.max(Episode.episode_num),
        )
        .group_by(Episode.experiment_id)
        .subquery()
    )
    query = select(Experiment, stats).join(
        stats, stats.c.experiment_id == Experiment.id, isouter=True
    )
    if run_ids is not None:
        query = query.where(Experiment.id.in_(run_ids))
    eval_stats = select(
        Evaluation.experiment_id, func.count(Evaluation.id), func.max(Evaluation.mean_return)
    ).group_by(Evaluation.experiment_id)
    evals = {experiment_id: (n, best) for experiment_id, n, best in session.exec(eval_stats)}
    runs = []
    for experiment, _, count, steps, best_avg, max_return, last_num in session.exec(
        query.order_by(Experiment.id)
    ):
        n_evals, best_eval = evals.get(experiment.id, (0, None))
        last_avg = math.nan
        if last_num is not None:
            last_avg = session.exec(
                select(Episode.reward_moving_avg).where(
                    Episode.experiment_id == experiment.id, Episode.episode_num == last_num
                )
            ).first()
        try:
            config = json.loads(experiment.config)
        except ValueError:
            config = {}
        runs.append(
            RunSummary(
                id=experiment.id,
                agent=experiment.agent,
                env=experiment.env,
                created_at=experiment.created_at,
                episodes=count or 0,
                steps=int(steps or 0),
                best_moving_avg=math.nan if best_avg is None else float(best_avg),
                last_moving_avg=math.nan if last_avg is None else float(last_avg),
                max_return=math.nan if max_return is None else float(max_return),
                config=config if isinstance(config, dict) else {},
                evaluations=n_evals,
                best_eval=math.nan if best_eval is None else float(best_eval),
            )
        )
    return runs


def list_runs(db_path: str | os.PathLike[str] = METRICS_DB) -> list[RunSummary]:
    """Every run of the database at `db_path`, oldest first.

    Raises `FileNotFoundError` if there is no such file (none is created) and
    `ValueError` if it is not a Velora metrics database.
    """
    with Session(_engine(db_path)) as session:
        return _summaries(session, None)


def load_runs(
    db_path: str | os.PathLike[str] = METRICS_DB, run_ids: Sequence[int] | None = None
) -> list[RunData]:
    """The episodes of `run_ids` (default: the latest run), in the order given.

    Raises `ValueError` naming any id that is not in the database.
    """
    with Session(_engine(db_path)) as session:
        if run_ids is None or len(run_ids) == 0:
            latest = session.exec(select(func.max(Experiment.id))).one()
            if latest is None:
                raise ValueError(f"{db_path} holds no runs yet: train an agent first.")
            run_ids = [latest]
        run_ids = list(dict.fromkeys(int(i) for i in run_ids))
        found = {run.id: run for run in _summaries(session, run_ids)}
        unknown = [i for i in run_ids if i not in found]
        if unknown:
            known = sorted(session.exec(select(Experiment.id)).all())
            listing = f"{known[0]}..{known[-1]}" if known else "none"
            raise ValueError(
                f"no run with id {', '.join(map(str, unknown))} in {db_path} "
                f"(run ids there: {listing})."
            )
        runs = []
        for run_id in run_ids:
            rows = session.exec(
                select(Episode).where(Episode.experiment_id == run_id).order_by(Episode.episode_num)
            ).all()
            evaluations = session.exec(
                select(Evaluation).where(Evaluation.experiment_id == run_id).order_by(Evaluation.id)
            ).all()
            runs.append(
                RunData(
                    summary=found[run_id],
                    episode=[r.episode_num for r in rows],
                    reward=[r.reward for r in rows],
                    length=[r.length for r in rows],
                    reward_moving_avg=[r.reward_moving_avg for r in rows],
                    reward_moving_std=[r.reward_moving_std for r in rows],
                    actor_loss=[r.actor_loss for r in rows],
                    critic_loss=[r.critic_loss for r in rows],
                    entropy_loss=[r.entropy_loss for r in rows],
                    alpha=[r.alpha for r in rows],
                    eval_episode=[e.episode_num for e in evaluations],
                    eval_mean=[e.mean_return for e in evaluations],
                    eval_std=[e.std_return for e in evaluations],
                )
            )
        return runs


def _draw(runs: Sequence[RunData], figsize: tuple[float, float], dpi: int) -> "Figure":
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    axes = fig.subplot_mosaic(_PANELS)
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for run, color in zip(runs, colors, strict=True):
        x = run.episode
        ax = axes["return"]
        upper = [m + s for m, s in zip(run.reward_moving_avg, run.reward_moving_std, strict=True)]
        lower = [m - s for m, s in zip(run.reward_moving_avg, run.reward_moving_std, strict=True)]
        ax.fill_between(x, lower, upper, color=color, alpha=0.15, linewidth=0)
        ax.plot(x, run.reward, color=color, alpha=0.3, linewidth=0.8)
        ax.plot(x, run.reward_moving_avg, color=color, linewidth=2, label=run.summary.label)
        if run.eval_episode:  # deterministic evaluations, as points with their std
            ax.errorbar(
                run.eval_episode,
                run.eval_mean,
                yerr=run.eval_std,
                fmt="D",
                color=color,
                markersize=5,
                capsize=3,
                label=f"{run.summary.label}: evaluations",
            )
        axes["length"].plot(x, run.length, color=color, linewidth=1)
        for name in ("actor_loss", "critic_loss", "entropy_loss", "alpha"):
            axes[name].plot(x, getattr(run, name), color=color, linewidth=1)
    for name, ax in axes.items():
        ax.set_title(_TITLES[name], fontsize=11)
        ax.set_xlabel("episode")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if any(a > 0 for run in runs for a in run.alpha):  # not before the column existed
        axes["alpha"].set_yscale("log")
    axes["return"].set_ylabel("return")
    axes["length"].set_ylabel("steps")
    if runs:
        axes["return"].legend(loc="upper left", fontsize=9)
    names = ", ".join(f"#{run.summary.id}" for run in runs)
    fig.suptitle(f"Velora training {'runs' if len(runs) > 1 else 'run'} {names}")
    return fig


def plot_runs(
    db_path: str | os.PathLike[str] = METRICS_DB,
    run_ids: Sequence[int] | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    figsize: tuple[float, float] = FIGSIZE,
    dpi: int = DPI,
) -> "Figure":
    """Training curves of one or more runs, overlaid, as a matplotlib `Figure`.

    Panels: the episode return (faint) with its moving average and a ±std band, the
    episode length, the actor, critic and entropy losses (blank during the warm-up,
    before any update) and the entropy temperature (log scale). One colour per run.
    `run_ids` defaults to the latest run. With `out`, the figure is also saved there
    (any format matplotlib knows, by suffix), at exactly `figsize * dpi` pixels for
    raster formats.
    """
    fig = _draw(load_runs(db_path, run_ids), figsize, dpi)
    if out is not None:
        fig.savefig(out, dpi=dpi)
    return fig


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.6rem; text-align: right; }
th { background: #f2f2f2; }
img { max-width: 100%; height: auto; }
details { margin-bottom: 1rem; }
"""


def write_html_report(
    db_path: str | os.PathLike[str] = METRICS_DB,
    run_ids: Sequence[int] | None = None,
    out: str | os.PathLike[str] = "report.html",
    *,
    figsize: tuple[float, float] = FIGSIZE,
    dpi: int = DPI,
) -> Path:
    """A self-contained HTML page of `run_ids` (default: the latest run).

    It holds the `plot_runs` figure as an embedded PNG, a table of the runs and, per run,
    a table of its episodes; it loads nothing from elsewhere. Returns the path written.
    """
    runs = load_runs(db_path, run_ids)
    fig = _draw(runs, figsize, dpi)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    image = base64.b64encode(buffer.getvalue()).decode("ascii")

    def neurons(config: dict) -> str:
        return f"{config.get('actor_neurons', '?')}/{config.get('critic_neurons', '?')}"

    run_rows = [
        (
            r.summary.id,
            r.summary.agent,
            r.summary.env,
            r.summary.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
            neurons(r.summary.config),
            (r.summary.config.get("train") or {}).get("batch_size", "–"),
            r.summary.config.get("seed", "–"),
            r.summary.episodes,
            r.summary.steps,
            r.summary.best_moving_avg,
            r.summary.last_moving_avg,
            r.summary.max_return,
            r.summary.best_eval,
        )
        for r in runs
    ]
    sections = [
        "<h2>Runs</h2>",
        _table(
            (
                "run", "agent", "env", "created", "neurons (actor/critic)", "batch", "seed",
                "episodes", "steps", "best moving avg", "last moving avg", "max return",
                "best evaluation",
            ),
            run_rows,
        ),
        f'<img alt="training curves" src="data:image/png;base64,{image}">',
        "<h2>Episodes</h2>",
    ]  # fmt: skip
    for r in runs:
        columns = zip(
            r.episode,
            r.reward,
            r.length,
            r.reward_moving_avg,
            r.reward_moving_std,
            r.actor_loss,
            r.critic_loss,
            r.entropy_loss,
            r.alpha,
            strict=True,
        )
        sections.append(
            f"<details><summary>Run {r.summary.id}: {html.escape(r.summary.env)}, "
            f"{r.summary.episodes} episodes</summary>"
            + _table(
                (
                    "episode",
                    "return",
                    "length",
                    "moving avg",
                    "moving std",
                    "actor loss",
                    "critic loss",
                    "entropy loss",
                    "alpha",
                ),
                list(columns),
            )  # fmt: skip
            + (
                _table(
                    ("evaluated after episode", "mean return", "std"),
                    list(zip(r.eval_episode, r.eval_mean, r.eval_std, strict=True)),
                )
                if r.eval_episode
                else ""
            )
            + "</details>"
        )
    title = "Velora report: " + ", ".join(html.escape(r.summary.label) for r in runs)
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{title}</h1>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )
    path = Path(out)
    path.write_text(page, encoding="utf-8")
    return path

"""`velora envs`, `velora runs` and `velora report`: browsing envs and past training runs."""

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from velora.cli.common import CLIError, console
from velora.metrics.db import METRICS_DB

DB_HELP = "The metrics database written by training."
REPORT_SUFFIXES = (".png", ".svg", ".pdf", ".html", ".htm")


def envs(
    query: Annotated[
        str | None, typer.Argument(help="Part of the id, any case, e.g. 'lunar'.")
    ] = None,
    discrete: Annotated[
        bool | None,
        typer.Option("--discrete/--continuous", help="Only discrete or only continuous actions."),
    ] = None,
) -> None:
    """List the environments a NeuroFlow agent can train on."""
    from velora.gym import EnvSearch

    found = EnvSearch.find(query or "")
    if discrete is not None:
        kind = "discrete" if discrete else "continuous"
        found = [env for env in found if env.type == kind]
    out = console()
    if not found:
        out.print(f"No environment matches {query!r}." if query else "No environment found.")
        return
    table = Table("env id", "actions")
    for env in found:
        table.add_row(env.name, env.type)
    out.print(table)
    out.print(f"{len(found)} environment{'s' if len(found) != 1 else ''}")


def _number(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:,.2f}"


def list_runs(
    db: Annotated[Path, typer.Option(help=DB_HELP)] = Path(METRICS_DB),
) -> None:
    """List the training runs (experiments) recorded in a metrics database."""
    from velora.metrics import list_runs as read_runs

    runs = read_runs(db)
    out = console()
    if not runs:
        out.print(f"{db} holds no runs yet.")
        return
    table = Table(title=f"Runs in {db}")
    names = ("id", "agent", "env", "episodes", "steps", "best avg", "last avg", "best eval")
    for name in (*names, "created"):
        table.add_column(name, justify="left" if name in ("agent", "env") else "right")
    for run in runs:
        table.add_row(
            str(run.id),
            run.agent,
            run.env,
            f"{run.episodes:,}",
            f"{run.steps:,}",
            _number(run.best_moving_avg),
            _number(run.last_moving_avg),
            _number(run.best_eval),
            run.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


def report(
    run_ids: Annotated[
        list[int] | None, typer.Argument(help="Runs to draw, overlaid \\[default: the latest].")
    ] = None,
    db: Annotated[Path, typer.Option(help=DB_HELP)] = Path(METRICS_DB),
    out: Annotated[
        Path, typer.Option(help="Output file: .png (or .svg, .pdf) or a self-contained .html.")
    ] = Path("report.png"),
) -> None:
    """Draw training curves (return, episode length, losses) of one or more runs."""
    suffix = out.suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise CLIError(f"--out must end in {', '.join(REPORT_SUFFIXES)}, got {str(out)!r}.")
    from velora.metrics import list_runs as read_runs
    from velora.metrics import plot_runs, write_html_report

    if not run_ids:
        runs = read_runs(db)
        if not runs:
            raise CLIError(f"{db} holds no runs yet: train an agent first.")
        run_ids = [runs[-1].id]
    if suffix in (".html", ".htm"):
        write_html_report(db, run_ids, out)
    else:
        plot_runs(db, run_ids, out)
    runs_shown = ", ".join(map(str, run_ids))
    console().print(f"Wrote {out} (run{'s' if len(run_ids) > 1 else ''} {runs_shown})")

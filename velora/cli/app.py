"""The `velora` Typer app, its commands, and how expected errors reach the user."""

import os
import sys

import typer

from velora.cli import evaluate, export, inspect, runs, sweep, train
from velora.cli.common import CLIError

app = typer.Typer(
    name="velora",
    help="Liquid reinforcement learning: train, evaluate and inspect NeuroFlow agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("train", no_args_is_help=True)(train.train)
app.command("eval", no_args_is_help=True)(evaluate.evaluate)
app.command("export", no_args_is_help=True)(export.export)
app.command("inspect", no_args_is_help=True)(inspect.inspect)
app.command("envs")(runs.envs)
app.command("runs")(runs.list_runs)
app.command("report")(runs.report)
app.command("sweep", no_args_is_help=True)(sweep.sweep)


# Errors that mean "your input is wrong" rather than "Velora has a bug": unknown env ids,
# bad sizes, missing or foreign files (SaveError is a ValueError), a missing extra.
EXPECTED = (CLIError, ValueError, FileNotFoundError, FileExistsError, ImportError, ConnectionError)


def _is_expected(error: Exception) -> bool:
    # gymnasium's DependencyNotInstalled (a missing extra) without importing gymnasium here.
    return isinstance(error, EXPECTED) or type(error).__name__ == "DependencyNotInstalled"


def main(args: list[str] | None = None) -> None:
    """Run the `velora` command (the console script's entry point).

    Expected errors print one `error: ...` line on stderr and exit with status 1; set
    `VELORA_DEBUG=1` to see their traceback instead.
    """
    try:
        app(args=args, prog_name="velora")
    except Exception as error:
        if not _is_expected(error) or os.environ.get("VELORA_DEBUG"):
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)

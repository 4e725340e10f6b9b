"""`velora inspect`: draw a saved agent's circuit and one episode of its activity."""

from pathlib import Path
from typing import Annotated

import typer

from velora.cli.common import console, load_saved_agent


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [name.strip() for name in text.split(",")]


def inspect(
    checkpoint_dir: Annotated[
        Path, typer.Argument(help="A saved agent, e.g. checkpoints/nf/saves/CartPole_final.")
    ],
    out: Annotated[Path, typer.Option(help="The folder to write the PNGs and page into.")] = Path(
        "inspect"
    ),
    seed: Annotated[int, typer.Option(help="Reset seed of the episode played.")] = 0,
    max_steps: Annotated[int, typer.Option(help="Steps after which it is cut.")] = 1000,
    obs_names: Annotated[
        str | None, typer.Option(help="Names of the observation components, comma-separated.")
    ] = None,
    action_names: Annotated[
        str | None, typer.Option(help="Names of the actions (or action dimensions).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace files already in OUT.")] = False,
) -> None:
    """Draw a saved agent's circuit and its neurons' activity over one deterministic
    episode: circuit.png, activity.png and a self-contained inspect.html."""
    from velora.inspection import inspect_agent

    agent = load_saved_agent(checkpoint_dir, "inspect", device="cpu")
    files = inspect_agent(
        agent,
        out,
        seed=seed,
        max_steps=max_steps,
        obs_names=_names(obs_names),
        action_names=_names(action_names),
        overwrite=overwrite,
    )
    out_console = console()
    for path in (files.circuit_png, files.activity_png, files.html):
        out_console.print(str(path))

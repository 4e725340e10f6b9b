"""`velora export`: write a saved agent's policy to an ONNX file."""

from pathlib import Path
from typing import Annotated

import typer

from velora.cli.common import console, load_saved_agent


def export(
    checkpoint_dir: Annotated[
        Path, typer.Argument(help="A saved agent, e.g. checkpoints/nf/saves/CartPole_final.")
    ],
    out: Annotated[Path, typer.Option(help="The ONNX file to write, e.g. policy.onnx.")],
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
) -> None:
    """Export a saved agent's deterministic policy to ONNX (needs velora\\[export])."""
    if out.exists() and not overwrite:  # before loading anything
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it.")
    agent = load_saved_agent(checkpoint_dir, "export", device="cpu")
    path = agent.export(out, overwrite=overwrite)
    hidden = agent.actor.hidden_size
    obs_dim = agent.actor.wiring.in_features
    action = (
        "(batch,) int64"
        if agent.config.action_type == "discrete"
        else (f"(batch, {agent.head.action_dim}) float32")
    )
    console().print(
        f"{type(agent).__name__} on {agent.env_id}, trained {agent.episodes_done:,} episodes: "
        f"{path} ({path.stat().st_size / 1024:.1f} KB)\n"
        f"inputs:  obs (batch, {obs_dim}) float32, hidden (batch, {hidden}) float32 "
        f"(zeros at an episode's start)\n"
        f"outputs: action {action}, next_hidden (batch, {hidden}) float32"
    )

"""`velora eval`: load a saved agent and play deterministic episodes, optionally on video."""

import statistics
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from velora.cli.common import CLIError, console, load_saved_agent
from velora.training.config import TrainConfig

if TYPE_CHECKING:
    import gymnasium as gym

    from velora.models import NeuroFlow


def evaluate(
    checkpoint_dir: Annotated[
        Path, typer.Argument(help="A saved agent, e.g. checkpoints/nf/saves/CartPole_final.")
    ],
    episodes: Annotated[int, typer.Option(help="Episodes to play.")] = 5,
    video: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Record every episode as mp4 into DIR.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the first episode's reset.")] = None,
    max_steps: Annotated[
        int, typer.Option(help=TrainConfig.help("max_steps"))
    ] = TrainConfig.max_steps,
    device: Annotated[
        str | None, typer.Option(help="Torch device \\[default: the saved one, or cpu].")
    ] = None,
) -> None:
    """Play deterministic episodes with a saved agent and print its mean return ± std."""
    if episodes < 1:
        raise CLIError(f"--episodes must be at least 1, got {episodes}.")
    if video is not None and video.is_dir() and any(video.glob("*.mp4")):
        raise CLIError(f"{video} already holds videos; choose another folder or delete them.")

    from velora.training import evaluate_agent

    agent = load_saved_agent(checkpoint_dir, "eval", device=device)
    if video is not None:
        agent.eval_env = _recording_env(agent, video)
    try:
        returns = evaluate_agent(agent, episodes, max_steps=max_steps, seed=seed)
    finally:
        agent.eval_env.close()  # writes the last video

    mean = statistics.fmean(returns)
    std = statistics.pstdev(returns)
    out = console()
    out.print(
        f"{type(agent).__name__} on {agent.env_id}, trained {agent.episodes_done:,} "
        f"episodes: return {mean:.2f} ± {std:.2f} over {episodes} deterministic episodes "
        f"(min {min(returns):.2f}, max {max(returns):.2f})"
    )
    if video is not None:
        out.print(f"Videos: {video.resolve()}")


def _recording_env(agent: "NeuroFlow", folder: Path) -> "gym.Env":
    """The agent's env made anew with `rgb_array` rendering, recording every episode."""
    from gymnasium.wrappers import RecordVideo

    from velora.gym import add_core_env_wrappers, env_name, make_env

    env = make_env(agent.env_id, render_mode="rgb_array")
    if "rgb_array" not in env.metadata.get("render_modes", ()) or env.render_mode != "rgb_array":
        env.close()
        raise CLIError(f"{agent.env_id} cannot render rgb_array frames, so it cannot be recorded.")
    with warnings.catch_warnings():  # an existing folder was checked: it holds no videos
        warnings.filterwarnings("ignore", ".*Overwriting existing videos")
        env = RecordVideo(
            env,
            str(folder),
            episode_trigger=lambda _: True,
            name_prefix=f"{env_name(agent.env_id)}-eval",
        )
    return add_core_env_wrappers(env, agent.device)

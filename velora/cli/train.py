"""`velora train`: build a NeuroFlow agent, train it with the chosen callbacks, say where
everything went."""

from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any

import typer

from velora.cli.common import CLIError, console
from velora.training.config import (
    ACTOR_NEURONS,
    BUFFER_SIZE,
    CRITIC_NEURONS,
    DISCRETE_INITIAL_ALPHA,
    TrainConfig,
)

AGENT = "Agent"
TRAINING = "Training"
STOPPING = "Evaluation and early stopping"
FILES = "Checkpoints and videos"
TRACKING = "Tracking"


#: `train()`'s defaults, the options' defaults.
DEFAULTS = TrainConfig()


def _setting(name: str) -> typer.models.OptionInfo:
    """The option of a `TrainConfig` setting, its help from there."""
    return typer.Option(help=TrainConfig.help(name), rich_help_panel=TRAINING)


#: `train()` settings whose option has another name.
_OPTION_OF = {"n_episodes": "episodes", "db_path": "db"}
#: `NeuroFlow` keyword arguments that are options of the command.
_AGENT_OPTIONS = (
    "buffer_size",
    "normalize_obs",
    "initial_alpha",
    "target_entropy",
    "target_entropy_scale",
    "critic_history",
    "exploration_noise",
    "n_steps",
)


def _keyword_arguments(ctx: typer.Context, env_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`NeuroFlow(...)` and `train(...)` keyword arguments from the options, where
    `--preset` or `--preset-file` fills in what the command line did not set."""
    agent = {name: ctx.params[name] for name in _AGENT_OPTIONS}
    train = {f.name: ctx.params[_OPTION_OF.get(f.name, f.name)] for f in fields(TrainConfig)}
    if not ctx.params["preset"] and ctx.params["preset_file"] is None:
        return agent, train

    from velora.presets import load_preset

    try:
        preset = load_preset(env_id, ctx.params["preset_file"])
    except KeyError as exc:  # its message, without KeyError's quotes
        raise CLIError(exc.args[0]) from None

    def given(option: str) -> bool:  # by name: typer may carry its own copy of click
        source = ctx.get_parameter_source(option)
        return source is not None and source.name == "COMMANDLINE"

    for settings, values in ((agent, preset.agent), (train, preset.train)):
        for name, value in values.items():
            if not given(_OPTION_OF.get(name, name)):
                settings[name] = value
    return agent, train


def train(
    ctx: typer.Context,
    env_id: Annotated[str, typer.Argument(help="Gymnasium env id, e.g. CartPole-v1.")],
    actor_neurons: Annotated[
        int, typer.Option(help="Decision neurons of the liquid actor.", rich_help_panel=AGENT)
    ] = ACTOR_NEURONS,
    critic_neurons: Annotated[
        int, typer.Option(help="Decision neurons of each critic.", rich_help_panel=AGENT)
    ] = CRITIC_NEURONS,
    buffer_size: Annotated[
        int, typer.Option(help="Replay buffer capacity.", rich_help_panel=AGENT)
    ] = BUFFER_SIZE,
    seed: Annotated[
        int | None, typer.Option(help="Random seed (random if unset).", rich_help_panel=AGENT)
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(help="Torch device (cuda:0 if available, else cpu).", rich_help_panel=AGENT),
    ] = None,
    normalize_obs: Annotated[
        bool,
        typer.Option(
            "--normalize-obs",
            help="Scale observations by running mean and variance, kept in the agent.",
            rich_help_panel=AGENT,
        ),
    ] = False,  # fmt: skip
    initial_alpha: Annotated[
        float | None,
        typer.Option(
            help="Starting entropy temperature \\[default: 1 for Box actions, "
            f"{DISCRETE_INITIAL_ALPHA:g} for Discrete ones].",
            rich_help_panel=AGENT,
        ),
    ] = None,  # fmt: skip
    target_entropy: Annotated[
        float | None,
        typer.Option(
            help="Policy entropy (nats) the temperature is tuned towards.",
            rich_help_panel=AGENT,
        ),
    ] = None,  # fmt: skip
    target_entropy_scale: Annotated[
        float | None,
        typer.Option(
            help="Discrete actions: the target entropy as a share in (0, 1) of log |A|.",
            rich_help_panel=AGENT,
        ),
    ] = None,  # fmt: skip
    critic_history: Annotated[
        str,
        typer.Option(
            help="What the critics see besides the observation: none, actor_hidden "
            "(the actor's hidden state) or own (a memory of their own; needs "
            "--sequence-length > 1), for partially observed tasks.",
            rich_help_panel=AGENT,
        ),
    ] = "none",  # fmt: skip
    exploration_noise: Annotated[
        str,
        typer.Option(
            help="white (a fresh draw each step) or pink (draws correlated over an "
            "episode), for tasks whose reward only a sustained push finds.",
            rich_help_panel=AGENT,
        ),
    ] = "white",  # fmt: skip
    n_steps: Annotated[
        int,
        typer.Option(
            help="Rewards summed before the critics' target bootstraps (n-step returns); "
            "1 is SAC's one-step target.",
            rich_help_panel=AGENT,
        ),
    ] = 1,  # fmt: skip
    preset: Annotated[
        bool,
        typer.Option(
            "--preset",
            help="Start from velora's preset for ENV_ID (velora/presets/neuroflow.toml); "
            "options given here win.",
            rich_help_panel=AGENT,
        ),
    ] = False,  # fmt: skip
    preset_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Like --preset, from a preset file of your own (same TOML layout).",
            rich_help_panel=AGENT,
        ),
    ] = None,  # fmt: skip
    batch_size: Annotated[int, _setting("batch_size")] = DEFAULTS.batch_size,
    episodes: Annotated[int, _setting("n_episodes")] = DEFAULTS.n_episodes,
    max_steps: Annotated[int, _setting("max_steps")] = DEFAULTS.max_steps,
    warmup_steps: Annotated[int | None, _setting("warmup_steps")] = DEFAULTS.warmup_steps,
    updates_per_step: Annotated[int, _setting("updates_per_step")] = DEFAULTS.updates_per_step,
    n_envs: Annotated[int, _setting("n_envs")] = DEFAULTS.n_envs,
    sequence_length: Annotated[int, _setting("sequence_length")] = DEFAULTS.sequence_length,
    burn_in: Annotated[int, _setting("burn_in")] = DEFAULTS.burn_in,
    compile_agent: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="Run updates and acting through torch.compile: faster on long runs, after "
            "a one-off compile.",
            rich_help_panel=TRAINING,
        ),
    ] = False,  # fmt: skip
    log_freq: Annotated[int, _setting("log_freq")] = DEFAULTS.log_freq,
    display_count: Annotated[int, _setting("display_count")] = DEFAULTS.display_count,
    window_size: Annotated[int, _setting("window_size")] = DEFAULTS.window_size,
    db: Annotated[Path, _setting("db_path")] = Path(DEFAULTS.db_path),
    target: Annotated[
        float | None,
        typer.Option(help="Stop once the return reaches this...", rich_help_panel=STOPPING),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(
            help="...on this many checks in a row \\[default: 3].", rich_help_panel=STOPPING
        ),
    ] = None,  # fmt: skip
    eval_every: Annotated[
        int | None,
        typer.Option(
            help="Evaluate the deterministic policy every N episodes (recorded in --db); "
            "with --target, stop on evaluations instead of training returns.",
            rich_help_panel=STOPPING,
        ),
    ] = None,  # fmt: skip
    eval_episodes: Annotated[
        int, typer.Option(help="Episodes per evaluation.", rich_help_panel=STOPPING)
    ] = 5,
    checkpoints: Annotated[
        str | None,
        typer.Option(
            metavar="DIRNAME", help="Save to checkpoints/DIRNAME/saves/.", rich_help_panel=FILES
        ),
    ] = None,  # fmt: skip
    frequency: Annotated[
        int, typer.Option(help="Checkpoint (and video) every N episodes.", rich_help_panel=FILES)
    ] = 100,
    buffer: Annotated[
        bool, typer.Option(help="Save the replay buffer with checkpoints.", rich_help_panel=FILES)
    ] = False,
    best: Annotated[
        bool,
        typer.Option(
            "--best",
            help="Keep the agent of the best evaluation in <EnvName>_best/ (needs --eval-every).",
            rich_help_panel=FILES,
        ),
    ] = False,  # fmt: skip
    keep_last: Annotated[
        int | None,
        typer.Option(help="Keep only the last N periodic checkpoints.", rich_help_panel=FILES),
    ] = None,
    record_videos: Annotated[
        bool,
        typer.Option(
            "--record-videos",
            help="Record videos into checkpoints/DIRNAME/videos/.",
            rich_help_panel=FILES,
        ),
    ] = False,  # fmt: skip
    videos: Annotated[
        str | None,
        typer.Option(
            metavar="DIRNAME",
            help="Record videos into checkpoints/DIRNAME/videos/ (default DIRNAME: --checkpoints).",
            rich_help_panel=FILES,
        ),
    ] = None,  # fmt: skip
    video_frequency: Annotated[
        int | None,
        typer.Option(
            help="Record every N episodes \\[default: --frequency].", rich_help_panel=FILES
        ),
    ] = None,  # fmt: skip
    comet: Annotated[
        str | None,
        typer.Option(
            metavar="PROJECT",
            help="Log to this Comet project (velora\\[comet]).",
            rich_help_panel=TRACKING,
        ),
    ] = None,  # fmt: skip
    tensorboard: Annotated[
        Path | None,
        typer.Option(
            metavar="LOG_DIR",
            help="Log to TensorBoard event files under LOG_DIR (velora\\[tensorboard]).",
            rich_help_panel=TRACKING,
        ),
    ] = None,  # fmt: skip
    mlflow: Annotated[
        str | None,
        typer.Option(
            metavar="URI",
            help="Log to the MLflow tracking store at URI, e.g. sqlite:///mlflow.db "
            "(velora\\[mlflow]).",
            rich_help_panel=TRACKING,
        ),
    ] = None,  # fmt: skip
) -> None:
    """Train a NeuroFlow agent on ENV_ID; metrics go to the --db database."""
    if patience is not None and target is None:
        raise CLIError("--patience needs --target (the return to reach).")
    if (best or keep_last is not None) and checkpoints is None:
        raise CLIError("--best and --keep-last need --checkpoints DIRNAME.")
    if best and eval_every is None:
        raise CLIError("--best needs --eval-every N: the evaluations rank the agents.")
    video_dir = videos or (checkpoints if record_videos else None)
    if record_videos and video_dir is None:
        raise CLIError("--record-videos needs --checkpoints DIRNAME or --videos DIRNAME.")
    if video_dir is not None and n_envs > 1:
        raise CLIError("videos record one env; use --n-envs 1 with --record-videos/--videos.")

    # Heavy imports (torch, gymnasium) only once the arguments are known to make sense.
    from velora import callbacks as cb
    from velora.gym import env_name
    from velora.models import NeuroFlow

    agent_kwargs, train_kwargs = _keyword_arguments(ctx, env_id)

    callbacks = []
    if target is not None:  # with --eval-every, its own evaluations are the recorded ones
        patience = 3 if patience is None else patience
        callbacks.append(
            cb.EarlyStopping(
                target, patience=patience, eval_every=eval_every, eval_episodes=eval_episodes
            )
        )
    elif eval_every is not None:
        callbacks.append(cb.Evaluate(every=eval_every, episodes=eval_episodes))
    saver = None
    if checkpoints is not None:
        saver = cb.SaveCheckpoints(
            checkpoints, frequency=frequency, buffer=buffer, best=best, keep_last=keep_last
        )
        callbacks.append(saver)
    recorder = None
    if video_dir is not None:
        recorder = cb.RecordVideos(video_dir, frequency=video_frequency or frequency)
        callbacks.append(recorder)
    if comet is not None:
        callbacks.append(cb.CometAnalytics(comet))
    if tensorboard is not None:
        callbacks.append(cb.TensorBoardLogger(tensorboard))
    if mlflow is not None:
        callbacks.append(cb.MLflowLogger(mlflow))

    agent = NeuroFlow(
        env_id, actor_neurons, critic_neurons, device=device, seed=seed, **agent_kwargs
    )
    if compile_agent:
        agent.compile()
    interrupted = False
    try:
        agent.train(callbacks=callbacks, **train_kwargs)
    except KeyboardInterrupt:  # finished episodes and the final checkpoint are saved
        interrupted = True

    out = console()
    if interrupted:
        out.print("Training interrupted (Ctrl-C).")
    db_option = "" if db == Path(DEFAULTS.db_path) else f" --db {db}"
    if agent.experiment_id is not None:
        out.print(f"Metrics:     run {agent.experiment_id} in {db.resolve()}")
        out.print(f"             velora report {agent.experiment_id}{db_option}")
    if saver is not None:
        final = saver.saves_dir / f"{env_name(env_id)}_final"
        out.print(f"Checkpoints: {saver.saves_dir.resolve()}")
        out.print(f"             velora eval {final}")
    if recorder is not None:
        out.print(f"Videos:      {recorder.videos_dir.resolve()}")
    if interrupted:
        raise typer.Exit(130)

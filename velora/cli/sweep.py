"""`velora sweep`: a Ray Tune sweep described by a YAML file."""

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from velora.cli.common import CLIError

# YAML can name these Ray Tune samplers, e.g. `actor_lr: {loguniform: [1.0e-4, 3.0e-3]}`;
# nothing else in the file is ever turned into a Python object.
SAMPLERS = ("choice", "uniform", "loguniform", "randint", "quniform", "grid_search")


def _search_value(key: str, value: Any) -> Any:
    """A plain value or list as is; a one-key mapping naming a sampler becomes that sampler."""
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or next(iter(value)) not in SAMPLERS:
        raise CLIError(
            f"search_space.{key}: a mapping must name one sampler of {', '.join(SAMPLERS)}, "
            f"e.g. {{loguniform: [0.0001, 0.003]}}; got {value!r}."
        )
    from ray import tune

    ((sampler, args),) = value.items()
    return getattr(tune, sampler)(*args) if isinstance(args, list) else getattr(tune, sampler)(args)


def sweep(
    env_id: Annotated[str, typer.Argument(help="Gymnasium id every trial trains on.")],
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            help="YAML: search_space (lists are grids) plus run_sweep options "
            "(seeds, num_samples, n_episodes, batch_size, target, scheduler, ...).",
        ),
    ],
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address ('auto' on a cluster node).")
    ] = None,
    out: Annotated[Path, typer.Option(help="CSV file for the trials table.")] = Path("sweep.csv"),
) -> None:
    """Run a sweep on Ray Tune (embedded local Ray, or a cluster) and rank the trials."""
    try:
        import yaml

        from velora.tune import run_sweep
    except ImportError as error:
        raise CLIError(
            f'sweeps need the tune extra: pip install "velora[tune]" ({error})'
        ) from None
    if not config.is_file():
        raise CLIError(f"{config} does not exist.")
    try:
        data = yaml.safe_load(config.read_text()) or {}
    except yaml.YAMLError as error:
        raise CLIError(f"{config} is not valid YAML: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("search_space", {}), dict):
        raise CLIError(f"{config} must be a mapping with a 'search_space' mapping.")
    space = {key: _search_value(key, value) for key, value in data.pop("search_space", {}).items()}
    allowed = set(inspect.signature(run_sweep).parameters) - {"env_id", "search_space", "address"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise CLIError(
            f"{config}: unknown option(s) {', '.join(unknown)}; allowed: search_space, "
            f"{', '.join(sorted(allowed))}."
        )
    result = run_sweep(env_id, space, address=address, **data)
    print(result)
    result.to_csv(out)
    print(f"Trials table written to {out.resolve()}")

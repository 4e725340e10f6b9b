"""`run_sweep`: a Ray Tune hyperparameter sweep of NeuroFlow agents, locally or on a cluster."""

import inspect
import math
import numbers
import os
import socket
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from velora.gym import env_name, make_env
from velora.models import NeuroFlow
from velora.training import TrainCallback, TrainConfig
from velora.tune.results import SweepResult, TrialRow
from velora.tune.trial import METRIC, TIME_ATTR, TRAIN_PARAMS, TrialSettings, run_trial

INSTALL_HINT = 'velora.tune needs Ray Tune: pip install "velora[tune]"'
#: Final statuses a trial reports itself; a trial that stopped reporting earlier was cut.
FINISHED = ("completed", "early_stopped")


def searchable_params() -> list[str]:
    """The parameters a search space may set: NeuroFlow's and a few of `train()`'s."""
    agent = [
        name
        for name in inspect.signature(NeuroFlow.__init__).parameters
        if name not in ("self", "env_id", "seed")
    ]
    return [*agent, *TRAIN_PARAMS]


def _import_ray() -> Any:
    try:
        import ray
        import ray.tune  # noqa: F401
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return ray


def _check_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _check_search_space(search_space: Mapping[str, Any]) -> None:
    if not isinstance(search_space, Mapping):
        raise TypeError(f"search_space must be a dict, got {type(search_space).__name__}.")
    valid = searchable_params()
    for key, value in search_space.items():
        if key == "seed":
            raise ValueError("search_space must not hold 'seed'; pass seeds=[...] instead.")
        if key not in valid:
            raise ValueError(
                f"search_space key {key!r} is not a NeuroFlow or train() parameter. "
                f"Valid keys: {', '.join(valid)}."
            )
        if isinstance(value, list) and not value:
            raise ValueError(f"search_space[{key!r}] is an empty list (a grid needs values).")


def _check_seeds(seeds: Sequence[int] | None) -> list[int] | None:
    if seeds is None:
        return None
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Sequence):
        raise TypeError(f"seeds must be a list of integers, got {seeds!r}.")
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed, or None for random seeds.")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"every seed must be an integer >= 0, got {seed!r}.")
    return [int(seed) for seed in seeds]


def _check_resources(resources: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(resources, Mapping) or not resources:
        raise ValueError(
            f"resources_per_trial must be a dict like {{'cpu': 1}}, got {resources!r}."
        )
    for key, amount in resources.items():
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
            raise ValueError(f"resources_per_trial[{key!r}] must be a number >= 0, got {amount!r}.")
    return dict(resources)


def _probe(address: str, timeout: float) -> None:
    """Fail fast when nothing listens at `address` (ray.init alone retries for minutes)."""
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address

        try:
            resolved = canonicalize_bootstrap_address(address)
        except Exception:  # let ray.init report what it cannot find
            return
        if resolved is None:
            return
        address = resolved
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            f"address must be 'auto', 'host:port' or 'ray://host:port', got {address!r}."
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(
            f"No Ray cluster answers at {address!r} ({err}). Start one with `ray start --head` "
            "and pass the address it prints (or address='auto' on a cluster node)."
        ) from err


def _connect(ray: Any, address: str | None, num_cpus: int | None, timeout: float) -> None:
    quiet = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, **quiet)
        return
    _probe(address, timeout)
    try:
        ray.init(address=address, **quiet)
    except ConnectionError as err:
        raise ConnectionError(
            f"Could not connect to the Ray cluster at {address!r}: {err}"
        ) from err


def _make_scheduler(scheduler: Any, n_episodes: int, log_freq: int) -> Any:
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    if scheduler is None or isinstance(scheduler, TrialScheduler):
        return scheduler
    if scheduler == "asha":
        return ASHAScheduler(
            time_attr=TIME_ATTR,
            max_t=n_episodes,
            grace_period=min(n_episodes, max(log_freq, n_episodes // 10)),
            reduction_factor=2,
        )
    raise ValueError(f"scheduler must be None, 'asha' or a Ray Tune scheduler, got {scheduler!r}.")


def _trial_dirname(trial: Any) -> str:
    return trial.trial_id


def _last_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _row(result: Any, sweep_dir: Path) -> TrialRow:
    """A `TrialRow` from one Tune `Result`."""
    metrics = result.metrics or {}
    trial_id = Path(result.path).name if result.path else str(metrics.get("trial_id"))
    if result.error is not None:
        status = "error"
    else:
        status = metrics.get("status") if metrics.get("status") in FINISHED else "cut"
    config = {key: value for key, value in (result.config or {}).items() if key != "seed"}
    return TrialRow(
        trial_id=trial_id,
        status=status,
        config=config,
        seed=metrics.get("seed", (result.config or {}).get("seed")),
        episodes=int(metrics.get(TIME_ATTR, 0)),
        steps=int(metrics.get("steps", 0)),
        best_moving_avg=float(metrics.get("best_moving_avg", math.nan)),
        last_moving_avg=float(metrics.get(METRIC, math.nan)),
        reward_max=float(metrics.get("reward_max", math.nan)),
        checkpoint=metrics.get("checkpoint"),
        trial_dir=metrics.get("trial_dir", str(sweep_dir / trial_id)),
        node_ip=metrics.get("node_ip"),
        hostname=metrics.get("hostname"),
        node_id=metrics.get("node_id"),
        time_s=float(metrics.get("time_s", math.nan)),
        error=None if result.error is None else _last_line(result.error),
    )


def _check_tune_callbacks(callbacks: Sequence[Any] | None, base: type) -> list[Any]:
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if not isinstance(callback, base):
            hint = (
                " Training callbacks (velora.callbacks) belong to train(), not to sweeps."
                if isinstance(callback, TrainCallback)
                else ""
            )
            raise TypeError(
                f"run_sweep's callbacks must be Ray Tune callbacks (ray.tune.Callback, e.g. "
                f"ray.air.integrations.mlflow.MLflowLoggerCallback); got {callback!r}.{hint}"
            )
    return callbacks


def run_sweep(
    env_id: str,
    search_space: Mapping[str, Any],
    *,
    seeds: Sequence[int] | None = None,
    num_samples: int = 1,
    n_episodes: int = 500,
    batch_size: int = TrainConfig.batch_size,
    log_freq: int = 10,
    target: float | None = None,
    patience: int = 3,
    scheduler: Any = None,
    resources_per_trial: Mapping[str, float] | None = None,
    max_concurrent_trials: int | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    connect_timeout: float = 5.0,
    storage_path: str | os.PathLike | None = None,
    name: str | None = None,
    verbose: int = 1,
    callbacks: Sequence[Any] | None = None,
) -> SweepResult:
    """Train one NeuroFlow per point of a search space with Ray Tune; rank them.

    Args:
        env_id: the Gymnasium env every trial trains on.
        search_space: NeuroFlow or `train()` parameters (see `searchable_params()`), each
            a fixed value, a list (a grid over its values) or a Ray Tune search object
            such as `tune.choice([...])` or `tune.loguniform(1e-4, 1e-2)`. Unset
            `actor_neurons`/`critic_neurons` default to `velora.training.config`'s.
        seeds: a grid over these agent seeds; None gives every trial a random seed.
        num_samples: how many times to sample the search space (each time the whole
            grid, seeds included, is repeated).
        n_episodes: each trial's episode budget.
        batch_size: the training batch size, unless the search space sets it.
        log_freq: episodes between metrics writes, i.e. between reports to Tune.
        target, patience: stop a trial early once its episode return reaches `target`
            on `patience` episodes in a row (`EarlyStopping`).
        scheduler: None (every trial runs its budget), "asha" (ASHA cuts trials whose
            reward moving average lags, judged by episode) or a Ray Tune scheduler.
        resources_per_trial: Ray resources per trial; default `{"cpu": 1}`.
        max_concurrent_trials: cap on trials running at once; default what fits.
        address: None starts an embedded local Ray with `num_cpus` CPUs (default: all);
            "auto" or "host:port" joins a running cluster (`ray start --head`). If Ray is
            already initialised in this process, that instance is used.
        connect_timeout: seconds to wait for the cluster's address to answer.
        storage_path: where the sweep's folder goes (default `./sweeps`); use a path
            every node shares (e.g. NFS) on a multi-machine cluster.
        name: the sweep's folder name; default `<EnvName>_<timestamp>`.
        verbose: Ray Tune's console verbosity (0 silent, 1 status, 2 every result).
        callbacks: Ray Tune callbacks for the sweep's run config, such as its logger
            callbacks (`ray.air.integrations.mlflow.MLflowLoggerCallback`,
            `ray.air.integrations.wandb.WandbLoggerCallback`): each trial's reports
            reach them as they reach Tune. (Training callbacks, `velora.callbacks`,
            belong to `train()`, not here.)

    Returns:
        A `SweepResult`: one row per trial, best reward moving average first. Each
        trial's folder `<storage_path>/<name>/<trial_id>/` holds its `metrics.db` and
        the agent saved at its last report in `final/`.

    Raises (before any trial starts): `ImportError` without Ray Tune, `ValueError` for
    a bad argument (an unknown search-space key names the valid ones),
    `ConnectionError` when no cluster answers at `address`. `RuntimeError` if every
    trial failed.
    """
    ray = _import_ray()
    from ray import tune

    make_env(env_id).close()  # an unknown id names the closest registered ones
    _check_search_space(search_space)
    seeds = _check_seeds(seeds)
    for arg, value in (
        ("num_samples", num_samples),
        ("n_episodes", n_episodes),
        ("batch_size", batch_size),
        ("log_freq", log_freq),
        ("patience", patience),
    ):
        _check_int(arg, value)
    if max_concurrent_trials is not None:
        _check_int("max_concurrent_trials", max_concurrent_trials)
    if address is not None and num_cpus is not None:
        raise ValueError("num_cpus sizes the embedded local Ray; leave it out with an address.")
    if num_cpus is not None:
        _check_int("num_cpus", num_cpus)
    resources = _check_resources(resources_per_trial or {"cpu": 1})
    tune_callbacks = _check_tune_callbacks(callbacks, tune.Callback)
    tune_scheduler = _make_scheduler(scheduler, n_episodes, log_freq)

    param_space = {
        key: tune.grid_search(value) if isinstance(value, list) else value
        for key, value in search_space.items()
    }
    if seeds is not None:
        param_space["seed"] = tune.grid_search(seeds)
    name = name or f"{env_name(env_id)}_{datetime.now():%Y-%m-%d_%H-%M-%S}"
    storage = Path(storage_path if storage_path is not None else "sweeps").expanduser().resolve()

    started = not ray.is_initialized()
    if started:
        _connect(ray, address, num_cpus, connect_timeout)
    try:
        settings = TrialSettings(
            env_id=env_id,
            sweep_dir=str(storage / name),
            n_episodes=n_episodes,
            batch_size=batch_size,
            log_freq=log_freq,
            target=target,
            patience=patience,
        )
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, settings=settings), resources
        )
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=METRIC,
                mode="max",
                num_samples=num_samples,
                scheduler=tune_scheduler,
                max_concurrent_trials=max_concurrent_trials,
                trial_dirname_creator=_trial_dirname,
                reuse_actors=True,  # saves a worker start (torch import) per trial
            ),
            run_config=tune.RunConfig(
                name=name, storage_path=str(storage), verbose=verbose, callbacks=tune_callbacks
            ),
        )
        results = tuner.fit()
        rows = [_row(result, storage / name) for result in results]
    finally:
        if started:
            ray.shutdown()

    sweep = SweepResult(rows=rows, path=storage / name, name=name)
    if rows and all(row.status == "error" for row in rows):
        first = rows[0]
        raise RuntimeError(
            f"every trial of the sweep failed; the first ({first.trial_id}): {first.error}. "
            f"Trial folders: {sweep.path}"
        )
    return sweep

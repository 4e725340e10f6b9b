"""Per-env settings for NeuroFlow where its defaults are not enough, like rl-zoo's YAML.

A preset file is TOML: one table per env id, with an `agent` table of `NeuroFlow`
keyword arguments and a `train` table of `train()` settings. The bundled file,
`neuroflow.toml`, holds what the learning suite (`benchmarks/suite`) measured; a file
of your own has the same layout. `velora train ENV --preset` and Python read the same
files:

    preset = load_preset("MountainCar-v0")
    agent = NeuroFlow("MountainCar-v0", 20, 128, **preset.agent)
    agent.train(**preset.train)  # batch_size included

Everything is checked when the file is read, so a typo fails before any training.
"""

import inspect
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from velora.training.config import TrainConfig

BUNDLED = Path(__file__).with_name("neuroflow.toml")
"""The presets that ship with velora."""

#: `NeuroFlow` arguments a preset may not set: the caller's (the env, the network sizes
#: it compares, where and with which seed it runs).
_CALLER_ARGUMENTS = {"self", "env_id", "actor_neurons", "critic_neurons", "device", "seed"}
#: `train()` settings a preset may not set: where the metrics go is the caller's too.
_CALLER_SETTINGS = {"db_path"}


@dataclass(frozen=True)
class Preset:
    """The settings of one env: keyword arguments for `NeuroFlow(...)` and `train(...)`
    (`train` always holds a `batch_size`, `train()`'s one required argument)."""

    env_id: str
    agent: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=lambda: {"batch_size": TrainConfig.batch_size})


def _agent_arguments() -> set[str]:
    from velora.models import NeuroFlow  # torch: only once a preset is read

    return set(inspect.signature(NeuroFlow.__init__).parameters) - _CALLER_ARGUMENTS


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"No preset file at {path}.")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a valid TOML preset file: {exc}") from exc


def _checked(env_id: str, table: Any, path: Path) -> Preset:
    where = f"preset {env_id!r} in {path}"
    if not isinstance(table, dict) or set(table) - {"agent", "train"}:
        raise ValueError(f"The {where} must hold only [agent] and [train] tables.")
    allowed = {
        "agent": _agent_arguments(),
        "train": {f.name for f in fields(TrainConfig)} - _CALLER_SETTINGS,
    }
    settings: dict[str, dict[str, Any]] = {}
    for part, names in allowed.items():
        values = table.get(part, {})
        if not isinstance(values, dict):
            raise ValueError(f"[{part}] of the {where} must be a table of settings.")
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"Unknown {part} setting(s) {', '.join(unknown)} in the {where}; "
                f"known: {', '.join(sorted(names))}."
            )
        for name, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{part}.{name} of the {where} must be finite, got {value}.")
        settings[part] = dict(values)
    train = {"batch_size": TrainConfig.batch_size, **settings["train"]}
    return Preset(env_id, settings["agent"], train)


def preset_names(path: str | os.PathLike | None = None) -> list[str]:
    """The env ids that have a preset in `path` (the bundled file by default)."""
    return sorted(_read(Path(path) if path is not None else BUNDLED))


def load_preset(env_id: str, path: str | os.PathLike | None = None) -> Preset:
    """The preset of `env_id` from `path` (the bundled file by default), checked.

    A partially observed id (`velora.gym.partially_observed`) without a preset of its own
    takes its base env's: hiding velocities changes what the agent sees, not the task.
    An env without a preset is a `KeyError` naming the envs that have one.
    """
    from velora.gym.partial import base_env_id

    source = Path(path) if path is not None else BUNDLED
    presets = _read(source)
    if env_id not in presets:
        env_id = base_env_id(env_id)
    if env_id not in presets:
        names = ", ".join(sorted(presets)) or "none"
        raise KeyError(f"No preset for {env_id!r} in {source}; presets there: {names}.")
    return _checked(env_id, presets[env_id], source)


def preset_or_defaults(env_id: str, path: str | os.PathLike | None = None) -> Preset:
    """`load_preset`, or the defaults (`Preset(env_id)`: no settings but the batch size)
    for an env without a preset; for scripts that run any env, preset or not."""
    try:
        return load_preset(env_id, path)
    except KeyError:
        return Preset(env_id)

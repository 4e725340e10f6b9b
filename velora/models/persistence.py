"""Saving and loading agents: safetensors for tensors, JSON for everything else.

A save folder holds `metadata.json`, `model_state.safetensors`,
`optim_state.safetensors` and, on request, `buffer_state.safetensors`. Loading never
runs code from these files: there is no pickle, and the only names read from JSON that
become Python objects are optimiser classes, looked up in a fixed allow-list.

Every save is atomic: the folder is built under a temporary sibling name, its files
are fsynced, and only then is it renamed into place. A folder that has its final name
is therefore complete; its checksums are verified again when it is loaded.
"""

import hashlib
import json
import os
import random
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import BaseModel, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import velora
from velora.models.config import AgentConfig
from velora.training.progress import TrainProgress
from velora.utils.files import fsync_path, write_json_atomic

if TYPE_CHECKING:
    from velora.models.neuroflow import NeuroFlow

#: 2: the training counters as one `progress` object (format 1 had them apart).
FORMAT_VERSION = 2
METADATA = "metadata.json"
MODEL_STATE = "model_state.safetensors"
OPTIM_STATE = "optim_state.safetensors"
BUFFER_STATE = "buffer_state.safetensors"
MODEL_CONFIG = "model_config.json"

#: The only optimiser classes a save file may name.
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    name: getattr(torch.optim, name)
    for name in (
        "Adam", "AdamW", "Adamax", "Adadelta", "Adagrad", "ASGD", "NAdam", "RAdam", "RMSprop",
        "Rprop", "SGD",
    )
    if hasattr(torch.optim, name)
}  # fmt: skip


class SaveError(ValueError):
    """A save folder that is missing, incomplete, tampered with or for another agent."""


class SaveMetadata(BaseModel):
    """The schema of `metadata.json`; anything else is refused."""

    format_version: int
    velora_version: str
    torch_version: str
    saved_at: datetime
    agent: str
    config: AgentConfig
    progress: TrainProgress
    optimizers: dict[str, dict[str, Any]]
    rng: dict[str, Any]
    buffer: dict[str, int] | None
    checksums: dict[str, str]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _optimizer_state(name: str, optim: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split an optimiser's state dict into tensors and JSON values."""
    state = optim.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                # A copy: step counts share one storage (see `velora.utils.torch_private`).
                tensors[f"{name}.{index}.{key}"] = value.detach().cpu().clone()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {
        "class": type(optim).__name__,
        "param_groups": state["param_groups"],
        "scalars": scalars,
    }


def _restore_optimizer(
    name: str, optim: torch.optim.Optimizer, meta: dict, tensors: dict[str, torch.Tensor]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"{name}."
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, field = key[len(prefix) :].split(".", 1)
            state.setdefault(int(index), {})[field] = value
    for key, value in meta["scalars"].items():
        index, field = key.split(".", 1)
        state.setdefault(int(index), {})[field] = value
    groups = [
        {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}
        for group in meta["param_groups"]
    ]
    optim.load_state_dict({"state": state, "param_groups": groups})


def _rng_state(agent: "NeuroFlow") -> tuple[dict, dict[str, torch.Tensor]]:
    """Every random stream training draws from, so a resumed run repeats exactly."""
    version, python_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {
        "rng.torch": torch.get_rng_state(),
        "rng.numpy_keys": torch.from_numpy(keys.astype(np.int64)),
    }
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    env_rng = agent.env.unwrapped.np_random.bit_generator.state
    meta = {
        "python": [version, list(python_state), gauss],
        "numpy": [kind, int(pos), int(has_gauss), float(cached)],
        "env": env_rng if env_rng.get("bit_generator") == "PCG64" else None,
    }
    if agent.pink_noise is not None:
        meta["pink_noise"], pink_tensors = agent.pink_noise.state()
        tensors.update(pink_tensors)
    return meta, tensors


def _restore_rng(agent: "NeuroFlow", meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    version, python_state, gauss = meta["python"]
    random.setstate((version, tuple(python_state), gauss))
    kind, pos, has_gauss, cached = meta["numpy"]
    keys = tensors["rng.numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    if meta.get("env") is not None:
        generator = np.random.Generator(np.random.PCG64())
        generator.bit_generator.state = meta["env"]
        agent.env.unwrapped.np_random = generator
    if agent.pink_noise is not None:
        agent.pink_noise.restore(meta["pink_noise"], tensors)


def save_agent(
    agent: "NeuroFlow", dirpath: str | os.PathLike, *, buffer: bool, config: bool
) -> Path:
    """Write `agent` to `dirpath` atomically; see the module docstring for the layout."""
    target = Path(dirpath)
    if target.exists():
        raise FileExistsError(
            f"{target} already exists; choose a new folder or delete it before saving."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        model_tensors = {
            f"{name}.{key}": value.detach().cpu().contiguous()
            for name, module in agent.state_modules().items()
            for key, value in module.state_dict().items()
        }
        model_tensors["log_alpha"] = agent.log_alpha.detach().cpu().reshape(1)
        save_file(model_tensors, staging / MODEL_STATE)

        optim_tensors, optim_meta = {}, {}
        for name, optim in agent.optimizers().items():
            tensors, optim_meta[name] = _optimizer_state(name, optim)
            optim_tensors.update(tensors)
        rng_meta, rng_tensors = _rng_state(agent)
        save_file({**optim_tensors, **rng_tensors}, staging / OPTIM_STATE)

        buffer_meta = None
        if buffer:
            save_file(agent.buffer.state_dict(), staging / BUFFER_STATE)
            buffer_meta = {"size": len(agent.buffer), "capacity": agent.buffer.capacity}

        files = [MODEL_STATE, OPTIM_STATE] + ([BUFFER_STATE] if buffer else [])
        metadata = SaveMetadata(
            format_version=FORMAT_VERSION,
            velora_version=velora.__version__,
            torch_version=torch.__version__,
            saved_at=datetime.now(UTC),
            agent=type(agent).__name__,
            config=agent.config,
            progress=agent.progress,
            optimizers=optim_meta,
            rng=rng_meta,
            buffer=buffer_meta,
            checksums={name: _sha256(staging / name) for name in files},
        )
        (staging / METADATA).write_text(metadata.model_dump_json(indent=2))
        for name in [*files, METADATA]:
            fsync_path(staging / name)
        fsync_path(staging)
        os.rename(staging, target)
        fsync_path(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if config:
        config_path = target.parent / MODEL_CONFIG
        if not config_path.exists():
            write_json_atomic(config_path, agent.config.model_dump(mode="json"))
    return target


def read_metadata(dirpath: str | os.PathLike) -> SaveMetadata:
    """Validate a save folder's metadata and checksums without building an agent."""
    folder = Path(dirpath)
    if not folder.is_dir():
        raise SaveError(f"{folder} is not a saved agent folder: it does not exist.")
    meta_path = folder / METADATA
    if not meta_path.is_file():
        raise SaveError(f"{folder} is not a complete save: {METADATA} is missing.")
    try:
        raw = json.loads(meta_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SaveError(f"{meta_path} is corrupt or not a Velora save: {error}") from None
    if not isinstance(raw, dict) or "format_version" not in raw:
        raise SaveError(f"{meta_path} is corrupt or not a Velora save: no format_version.")
    version = raw["format_version"]
    if version not in (1, FORMAT_VERSION):
        raise SaveError(
            f"{folder} uses save format {version}, written by Velora "
            f"{raw.get('velora_version', '(unknown)')}; this Velora ({velora.__version__}) "
            f"reads formats 1 and {FORMAT_VERSION}."
        )
    try:
        metadata = SaveMetadata.model_validate(_upgrade(raw))
    except ValidationError as error:
        raise SaveError(f"{meta_path} is corrupt or not a Velora save: {error}") from None
    for name, checksum in metadata.checksums.items():
        path = folder / name
        if not path.is_file():
            raise SaveError(f"{folder} is incomplete: {name} is missing.")
        if _sha256(path) != checksum:
            raise SaveError(
                f"{path} does not match its checksum: the file is corrupt or was modified."
            )
    for name, optim in metadata.optimizers.items():
        if optim.get("class") not in OPTIMIZERS:
            raise SaveError(
                f"{meta_path} names optimiser {optim.get('class')!r} for {name}, which is not "
                f"one of the allowed torch.optim classes: {', '.join(OPTIMIZERS)}."
            )
    if metadata.config.optim not in OPTIMIZERS:
        raise SaveError(
            f"{meta_path} names optimiser {metadata.config.optim!r}, which is not one of the "
            f"allowed torch.optim classes: {', '.join(OPTIMIZERS)}."
        )
    return metadata


def _upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """Format 1 metadata (Velora 0.3.0 before the progress object) in format 2's shape."""
    if raw.get("format_version") != 1:
        return raw
    names = {"episodes_done": "episodes", "steps_done": "steps"}
    progress = {
        names.get(key, key): raw.pop(key, None)
        for key in ("episodes_done", "steps_done", "experiment_id", "recent_rewards", "reward_max")
    }
    return {**raw, "format_version": FORMAT_VERSION, "progress": progress}


def _load_tensors(path: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    try:
        return load_file(path, device=str(device))
    except (SafetensorError, OSError, ValueError) as error:
        raise SaveError(f"{path} is not a readable safetensors file: {error}") from None


def load_agent(
    cls: type["NeuroFlow"],
    dirpath: str | os.PathLike,
    *,
    buffer: bool,
    device: str | torch.device | None,
) -> "NeuroFlow":
    """Rebuild a `cls` agent from a save folder, ready to predict or continue training."""
    folder = Path(dirpath)
    metadata = read_metadata(folder)
    if metadata.agent != cls.__name__:
        raise SaveError(
            f"{folder} holds a {metadata.agent} agent; load it with {metadata.agent}.load()."
        )
    if buffer and metadata.buffer is None:
        raise SaveError(
            f"{folder} was saved without its replay buffer; load with buffer=False, or save "
            "with buffer=True."
        )
    config = metadata.config
    agent = cls(
        config.env_id,
        config.actor_neurons,
        config.critic_neurons,
        optim=OPTIMIZERS[config.optim],
        buffer_size=config.buffer_size,
        actor_lr=config.actor_lr,
        critic_lr=config.critic_lr,
        alpha_lr=config.alpha_lr,
        initial_alpha=config.initial_alpha,
        log_std=config.log_std,
        tau=config.tau,
        gamma=config.gamma,
        device=device if device is not None else _default_device(config.device),
        seed=config.seed,
        normalize_obs=config.normalize_obs,
        target_entropy=config.target_entropy,
        target_entropy_scale=config.target_entropy_scale,
        critic_history=config.critic_history,
        exploration_noise=config.exploration_noise,
        n_steps=config.n_steps,
    )
    model_tensors = _load_tensors(folder / MODEL_STATE, agent.device)
    try:
        for name, module in agent.state_modules().items():
            prefix = f"{name}."
            module.load_state_dict(
                {k[len(prefix) :]: v for k, v in model_tensors.items() if k.startswith(prefix)}
            )
        with torch.no_grad():
            agent.log_alpha.copy_(model_tensors["log_alpha"].reshape(()))
        optim_tensors = _load_tensors(folder / OPTIM_STATE)
        for name, optim in agent.optimizers().items():
            _restore_optimizer(name, optim, metadata.optimizers[name], optim_tensors)
        _restore_rng(agent, metadata.rng, optim_tensors)
    except (KeyError, RuntimeError, ValueError) as error:
        raise SaveError(f"{folder} does not match the agent it describes: {error}") from None
    if buffer:
        try:
            agent.buffer.load_state_dict(_load_tensors(folder / BUFFER_STATE, agent.device))
        except (KeyError, ValueError) as error:
            raise SaveError(f"{folder / BUFFER_STATE} does not fit the agent: {error}") from None
    agent.config = config.model_copy(update={"device": str(agent.device)})
    agent.progress = metadata.progress
    return agent


def _default_device(saved: str) -> str:
    """The saved device if it exists here, else the CPU (a GPU or Mac save on a CPU box)."""
    device = torch.device(saved)
    if device.type == "cuda":
        usable = torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    elif device.type == "mps":
        usable = torch.backends.mps.is_available()
    else:
        usable = device.type == "cpu"
    return saved if usable else "cpu"

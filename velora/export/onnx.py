"""ONNX export of a NeuroFlow policy: observation and hidden state in, action and next
hidden state out, everything between (normalisation, the liquid actor, the action's
mapping to the env's space) inside the file."""

import copy
import io
import logging
import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

import velora
from velora.models.heads import make_head
from velora.nn.cell import CELL_MODES

if TYPE_CHECKING:
    from velora.models import NeuroFlow

INSTALL_HINT = 'pip install "velora[export]"'
INPUTS = ("obs", "hidden")
OUTPUTS = ("action", "next_hidden")
#: The cell modes whose step ONNX can express (all of today's).
EXPORTABLE_CELL_MODES = CELL_MODES
#: How far the exported file may stray from PyTorch on the check at export time.
TOLERANCE = 1e-5


def _require_onnx():
    """onnx, onnxscript (the exporter) and onnxruntime (the check), or an error naming
    the extra."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"exporting to ONNX needs onnx, onnxscript and onnxruntime: {INSTALL_HINT}. ({error})"
        ) from None
    return onnx, onnxruntime


class ExportedPolicy(nn.Module):
    """One deterministic policy step as the env sees it, on the CPU.

    `forward(obs, hidden)` normalises `obs` with the agent's frozen statistics (when it
    has them), runs the liquid actor from `hidden` and maps the most likely action to
    the env's space: `(batch,)` integer indices from the `Discrete` space's `start`, or
    `(batch, action_dim)` values within the `Box` bounds. It returns that action and the
    next hidden state, to feed back in on the episode's next step.
    """

    def __init__(self, agent: "NeuroFlow") -> None:
        super().__init__()
        self.obs_norm = (
            nn.Identity() if agent.obs_norm is None else copy.deepcopy(agent.obs_norm).cpu()
        )
        self.actor = copy.deepcopy(agent.actor).cpu()
        self.head = make_head(agent.env.action_space, agent.config.log_std, torch.device("cpu"))
        self.eval()

    def forward(self, obs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output, next_hidden = self.actor(self.obs_norm(obs), hidden)
        action = self.head.to_env(self.head.act(output, deterministic=True))
        return action, next_hidden


def export_onnx(agent: "NeuroFlow", path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write `agent`'s policy to the ONNX file `path`; returns the path.

    Inputs `obs` `(batch, obs_dim)` float32 and `hidden` `(batch, hidden_size)` float32
    (zeros at an episode's start); outputs `action` and `next_hidden` (see
    `ExportedPolicy`); the batch size is free. The file is checked in onnxruntime
    against PyTorch before it is put in place, and carries the env id, the agent and
    its training progress as metadata. An existing file is refused unless `overwrite`.
    """
    onnx, onnxruntime = _require_onnx()
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it.")
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a folder; give the path of the .onnx file.")
    mode = agent.actor.command.mode
    if mode not in EXPORTABLE_CELL_MODES:
        raise ValueError(
            f"the actor's cell mode {mode!r} cannot be exported to ONNX; exportable modes: "
            f"{', '.join(EXPORTABLE_CELL_MODES)}."
        )
    policy = ExportedPolicy(agent)
    obs_dim, hidden_size = policy.actor.wiring.in_features, policy.actor.hidden_size
    generator = torch.Generator().manual_seed(0)  # the check leaves the agent's RNG alone
    example = (
        torch.randn(3, obs_dim, generator=generator),
        torch.randn(3, hidden_size, generator=generator).tanh(),
    )
    batch = torch.export.Dim("batch")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        with torch.no_grad(), _quiet():
            torch.onnx.export(
                policy,
                example,
                str(staging),
                input_names=list(INPUTS),
                output_names=list(OUTPUTS),
                dynamic_shapes=({0: batch}, {0: batch}),
                dynamo=True,
                external_data=False,  # one self-contained file
                optimize=True,
                verbose=False,
            )
        model = onnx.load(str(staging))
        for node in model.graph.node:  # the exporter's notes: source paths, stack traces
            del node.metadata_props[:]
            node.doc_string = ""
        onnx.helper.set_model_props(model, _metadata(agent))
        onnx.save(model, str(staging))
        _check(onnxruntime, staging, policy, example)
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return target


@contextmanager
def _quiet() -> Iterator[None]:
    """The exporter prints its progress, and warns and logs about its own internals
    (a missing torchvision among them): none of it is the user's business."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _metadata(agent: "NeuroFlow") -> dict[str, str]:
    space = agent.env.action_space
    return {
        "velora_version": velora.__version__,
        "agent": type(agent).__name__,
        "env_id": agent.env_id,
        "action_space": str(space),
        "normalize_obs": str(agent.obs_norm is not None).lower(),
        "hidden_size": str(agent.actor.hidden_size),
        "episodes_trained": str(agent.progress.episodes),
        "steps_trained": str(agent.progress.steps),
    }


def _check(onnxruntime, path: Path, policy: ExportedPolicy, example) -> None:
    """Run the file in onnxruntime on the example batch; it must act as PyTorch does."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: value.numpy() for name, value in zip(INPUTS, example, strict=True)}
    got = session.run(list(OUTPUTS), feeds)
    with torch.no_grad():
        expected = [value.numpy() for value in policy(*example)]
    for name, a, b in zip(OUTPUTS, got, expected, strict=True):
        if a.shape != b.shape or not np.allclose(a, b, rtol=0.0, atol=TOLERANCE):
            raise RuntimeError(
                f"the exported {name} differs from PyTorch's in onnxruntime (shape "
                f"{a.shape} against {b.shape}); the file was not written. Please report this."
            )

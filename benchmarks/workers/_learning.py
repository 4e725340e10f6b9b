"""Shared CLI and result file of the learning-suite workers (imported from the script's folder).

`velora_learning.py` runs under our venv and `sb3_learning.py` under SB3's, so this file
imports nothing beyond the standard library and torch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

EVAL_SEED = 10_000
"""Episode i of every evaluation of seed s resets with seed EVAL_SEED + s + i (as in
`benchmarks/suite/tasks.py`, which the workers do not import)."""


def neuroflow_name(
    normalize_obs: bool,
    sequence_length: int,
    critic_history: str,
    actor_neurons: int,
    n_steps: int | None,
) -> str:
    """A NeuroFlow result's agent name, from what its command line changed over the
    suite's agent: `neuroflow[-norm][-seq<L>[-hist|-own]][-a<neurons>][-n<steps>]`."""
    name = "neuroflow" + "-norm" * normalize_obs
    if sequence_length > 1:
        name += f"-seq{sequence_length}"
    name += {"actor_hidden": "-hist", "own": "-own"}.get(critic_history, "")
    if actor_neurons != 20:
        name += f"-a{actor_neurons}"
    if n_steps is not None:
        name += f"-n{n_steps}"
    return name


def parser(description: str) -> argparse.ArgumentParser:
    """The arguments both workers take, so the suite's runner treats them alike."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--env", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget", type=int, required=True, help="env steps to train")
    p.add_argument("--eval-every", type=int, required=True, help="env steps between evals")
    p.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation")
    p.add_argument("--out", type=Path, required=True, help="the result's JSON file")
    return p


def evaluation(
    steps: int, returns: list[float], lengths: list[int], wall_s: float, alpha: float | None
) -> dict[str, Any]:
    """One evaluation's record: the same keys from both workers."""
    n = len(returns)
    mean = sum(returns) / n
    std = (sum((r - mean) ** 2 for r in returns) / n) ** 0.5
    return {
        "steps": steps,
        "mean_return": round(mean, 3),
        "std_return": round(std, 3),
        "mean_length": round(sum(lengths) / n, 1),
        "alpha": None if alpha is None else round(alpha, 6),
        "wall_s": round(wall_s, 2),
    }


def finish(
    args: argparse.Namespace,
    result: dict[str, Any],
    evaluations: list[dict[str, Any]],
    wall_s: float,
    eval_s: float,
) -> None:
    """Record the run (`result` holds what only one worker knows), write it to
    `args.out` in one rename, then print it as the JSON line.

    The rename makes the file appear whole or not at all: the runner treats an existing
    file as a finished job, so a half-written one would never be retried.
    """
    train_s = wall_s - eval_s
    result = {
        "env": args.env,
        **result,
        "seed": args.seed,
        "budget": args.budget,
        "eval_every": args.eval_every,
        "eval_episodes": args.eval_episodes,
        "evaluations": evaluations,
        "wall_s": round(wall_s, 2),
        "eval_s": round(eval_s, 2),
        "train_s": round(train_s, 2),
        "train_steps_per_s": round(args.budget / train_s, 1),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, out)
    sys.__stdout__.write(json.dumps(result) + "\n")  # the real stdout, never a redirect
    sys.__stdout__.flush()

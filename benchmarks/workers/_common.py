"""Shared CLI and JSON output of the baseline workers (imported from the script's folder).

Workers run under a baseline venv's python, so this file must import nothing from our
package and nothing beyond the standard library and torch.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from typing import Any

STEPS = {"CartPole-v1": 2_000, "InvertedPendulum-v5": 2_000}


def parser(description: str) -> argparse.ArgumentParser:
    """The arguments every worker takes, so the lead's runner can treat them alike."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--env", choices=sorted(STEPS), default="CartPole-v1")
    p.add_argument("--steps", type=int, help="env steps in all, warm-up included")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--warmup", type=int, help="warm-up env steps (default: 2 * batch size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads; default: leave the library's own choice untouched",
    )
    return p


def finish_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the defaults that depend on other arguments, and check them."""
    args.steps = STEPS[args.env] if args.steps is None else args.steps
    args.warmup = 2 * args.batch_size if args.warmup is None else args.warmup
    if not args.batch_size <= args.warmup < args.steps:
        sys.exit(
            f"need batch size <= warmup < steps, got {args.batch_size}, {args.warmup}, {args.steps}"
        )
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    return args


def rates(
    env_steps: int, seconds: float, warmup: int, post_steps: int, post_seconds: float
) -> dict[str, Any]:
    """Whole-run rate and the rate after warm-up, rounded for the table."""
    return {
        "env_steps": env_steps,
        "seconds": round(seconds, 4),
        "steps_per_s": round(env_steps / seconds, 2),
        "warmup": warmup,
        "post_warmup_steps": post_steps,
        "post_warmup_seconds": round(post_seconds, 4),
        "post_warmup_steps_per_s": round(post_steps / post_seconds, 2) if post_seconds else None,
    }


def emit(result: dict[str, Any]) -> None:
    """Print the one JSON line on the real stdout (library chatter goes to stderr)."""
    import torch

    result.setdefault("torch", torch.__version__)
    result.setdefault("torch_threads", torch.get_num_threads())
    result.setdefault("threads_set_by_worker", "--threads" in sys.argv)
    result.setdefault("python", platform.python_version())
    sys.__stdout__.write(json.dumps(result) + "\n")
    sys.__stdout__.flush()

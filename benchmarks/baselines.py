"""Baselines for the throughput benchmark: the original Velora 0.2.0 and Stable-Baselines3.

Both live in their own virtual environments under `.bench-venvs/`: Velora 0.2.0 has
our package's name, and SB3 must stay out of our dependencies. Each baseline runs as a
worker script (`benchmarks/workers/*.py`) under its venv's python and prints one JSON
line, which `run_worker` parses.

    from baselines import ORIGINAL_VELORA, SB3, WORKERS, ensure_venv, run_worker
    python = ensure_venv("velora-0.2.0", ORIGINAL_VELORA)
    result = run_worker(python, WORKERS / "original_velora.py", ["--env", "CartPole-v1"], 900)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKERS = Path(__file__).resolve().parent / "workers"
"""Folder of the worker scripts, run with a baseline venv's python."""

TORCH = "torch==2.13.0"
"""Installed first in every venv: this spec takes the cached CPU wheel, any other pulls CUDA."""

# Same env versions as our venv, so env stepping costs the same on every side.
_ENVS = ["gymnasium[classic-control,mujoco]==1.4.0", "mujoco==4.0.0"]

ORIGINAL_VELORA = ["velora==0.2.0", "array-api-compat", "sqlmodel==0.0.24", *_ENVS]
"""Velora 0.2.0 from PyPI; it imports `array_api_compat` without declaring it, and
breaks with newer sqlmodel."""

SB3 = ["stable-baselines3==2.9.2", *_ENVS]
"""Stable-Baselines3 (SAC, and DQN for CartPole)."""

_MARKER = ".bench-packages.json"


class BaselineError(RuntimeError):
    """A baseline venv could not be built, or a worker failed or printed no JSON."""


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _pip(python: Path, args: list[str]) -> None:
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BaselineError(
            f"pip failed ({proc.returncode}) for: {' '.join(args)}\n"
            f"--- last lines of pip's output ---\n{_tail(proc.stdout + proc.stderr)}"
        )


def ensure_venv(name: str, packages: list[str], root: Path = Path(".bench-venvs")) -> Path:
    """Return the python of venv `root/name` holding `packages`, building it if needed.

    torch is installed first and alone, pinned to the cached CPU wheel, so the other
    packages' loose torch requirements are already met and never pull a CUDA build. A
    marker file, written last, records the package list: the same list again skips pip; a
    changed list (or an install that failed half-way) rebuilds the venv from empty.
    """
    venv = root / name
    python = venv / "bin" / "python"
    marker = venv / _MARKER
    wanted = [TORCH, *packages]
    if python.exists() and marker.exists():
        try:
            if json.loads(marker.read_text()) == wanted:
                return python.absolute()
        except json.JSONDecodeError:
            pass
    # A new or changed list starts from an empty venv, so no stale package lingers.
    root.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "venv", "--clear", str(venv)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise BaselineError(f"python -m venv {venv} failed:\n{_tail(proc.stdout + proc.stderr)}")
    _pip(python, [TORCH])
    _pip(python, [TORCH, *packages])  # torch repeated so pip keeps it pinned
    marker.write_text(json.dumps(wanted))
    return python.absolute()


def run_worker(python: Path, script: Path, args: list[str], timeout: float) -> dict:
    """Run a worker under `python` and return the JSON object of its last stdout line.

    Workers run in a fresh temp dir (they may write metrics DBs or logs) with a clean
    PYTHONPATH, so the baseline's own `velora` is imported, never ours.
    """
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    # absolute(), not resolve(): resolving the venv's python symlink would leave the venv.
    cmd = [str(Path(python).absolute()), str(Path(script).absolute()), *args]
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        try:
            proc = subprocess.run(
                cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
            raise BaselineError(
                f"{Path(script).name} {' '.join(args)} timed out after {timeout:.0f} s\n"
                f"--- stderr tail ---\n{_tail(err)}"
            ) from exc
    lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("{")]
    if proc.returncode != 0 or not lines:
        raise BaselineError(
            f"{Path(script).name} {' '.join(args)} failed (exit {proc.returncode})\n"
            f"--- stderr tail ---\n{_tail(proc.stderr)}\n"
            f"--- stdout tail ---\n{_tail(proc.stdout, 5)}"
        )
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{Path(script).name} printed bad JSON: {lines[-1]!r}") from exc


def random_policy_steps_per_s(env_id: str, steps: int, seed: int = 0) -> float:
    """Env steps per second of `action_space.sample()` on the raw env: the ceiling."""
    import gymnasium as gym  # only here, so the venv helpers work without it

    env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    seconds = time.perf_counter() - start
    env.close()
    return steps / seconds

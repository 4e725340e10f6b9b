"""Learning curve of NeuroFlow on one env and seed (run with the repo's own venv).

    python benchmarks/workers/velora_learning.py --env CartPole-v1 --seed 0 \
        --budget 50000 --eval-every 2500 --out CartPole-v1__neuroflow__seed0.json

Trains `NeuroFlow(env, 20, 128)` (buffer 200_000, the library's other defaults, batch
128 among them, and the env's bundled preset where it has one, its agent and train
settings, as `velora train ENV --preset` would; `--no-preset` leaves it out,
`--agent-kwargs` and the flags override it) for exactly `--budget` env steps, stopped
through a step callback. At every multiple of `--eval-every` steps, and at the end,
training pauses for a deterministic evaluation of `--eval-episodes` episodes on the
agent's own eval env, episode i reset with seed 10_000 + seed + i: every evaluation of a
run starts from the same states, and training's random streams are left alone. Each
evaluation records the mean and std of the returns, the temperature alpha and the wall
time so far. `train_steps_per_s` leaves the evaluations' time out.

The result goes to `--out` only when the run completes (written to a temp file and
renamed), so a failed run leaves nothing and the suite's rerun retries it. It is also
printed as one JSON line; the library's own output goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from _learning import EVAL_SEED, evaluation, finish, neuroflow_name, parser

import velora
from velora.callbacks import TrainCallback
from velora.models import NeuroFlow
from velora.presets import Preset, preset_or_defaults
from velora.training import evaluate_policy

CONFIG = {"actor_neurons": 20, "critic_neurons": 128, "buffer_size": 200_000}
"""The suite's NeuroFlow, as in `benchmarks/learning.py`."""


class _EvaluateAndStop(TrainCallback):
    """Evaluates every `every` env steps and at `budget`, where it stops training."""

    def __init__(self, agent: NeuroFlow, budget: int, every: int, episodes: int, seed: int):
        self.agent, self.budget, self.every = agent, budget, every
        self.episodes, self.seed = episodes, seed
        self.evaluations: list[dict[str, Any]] = []
        self.eval_s = 0.0
        self.start = time.perf_counter()

    def on_step(self, state) -> bool:
        if state.step % self.every == 0 or state.step >= self.budget:
            began = time.perf_counter()
            result = evaluate_policy(self.agent, self.episodes, seed=EVAL_SEED + self.seed)
            self.eval_s += time.perf_counter() - began
            self.evaluations.append(
                evaluation(
                    state.step,
                    result.returns,
                    result.lengths,
                    time.perf_counter() - self.start,
                    float(self.agent.entropy),
                )
            )
        return state.step < self.budget


def _commit() -> str | None:
    """The commit of the velora this process imported (plus "+dirty" for local edits),
    so that cached results from older code can be told apart."""
    repo = Path(velora.__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no", "velora"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+dirty" if dirty else head


_OWN_FIELDS = {"batch_size", "sequence_length", "burn_in"}
"""Train settings the result's config records in fields of their own."""


def _given(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings given on the command line (not None)."""
    return {name: value for name, value in settings.items() if value is not None}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--normalize-obs", action="store_true", help="NeuroFlow(normalize_obs=True)")
    p.add_argument("--sequence-length", type=int, help="train(sequence_length=...)")
    p.add_argument("--burn-in", type=int, help="train(burn_in=...)")
    p.add_argument("--critic-history", help="NeuroFlow(critic_history=...)")
    p.add_argument("--compile", action="store_true", help="agent.compile() before training")
    p.add_argument("--batch-size", type=int, help="train(batch_size) (probes)")
    p.add_argument(
        "--actor-neurons",
        type=int,
        default=CONFIG["actor_neurons"],
        help="the actor's size (probes)",
    )
    p.add_argument("--no-preset", action="store_true", help="the defaults even with a preset")
    p.add_argument(
        "--name", help="the result's agent name, for probes (default: from the flags above)"
    )
    p.add_argument(
        "--agent-kwargs",
        type=json.loads,
        default={},
        help="more NeuroFlow keyword arguments over the preset's, as JSON (probes), "
        'e.g. \'{"exploration_noise": "pink"}\'',
    )
    p.add_argument(
        "--train-kwargs",
        type=json.loads,
        default={},
        help="more train() settings over the preset's, as JSON (probes), "
        "e.g. '{\"updates_per_step\": 2}'",
    )
    args = p.parse_args()
    preset = Preset(args.env) if args.no_preset else preset_or_defaults(args.env)
    given = _given({"critic_history": args.critic_history})
    agent_kwargs = {**preset.agent, **given, **args.agent_kwargs}
    given = _given(
        {
            "batch_size": args.batch_size,
            "sequence_length": args.sequence_length,
            "burn_in": args.burn_in,
        }
    )
    train_kwargs = {**preset.train, **given, **args.train_kwargs}
    if train_kwargs.get("sequence_length", 1) > 1 and "n_steps" not in args.agent_kwargs:
        # The suite's window rows were measured with one-step targets (before n-step
        # returns reached sequence replay): a preset's n_steps stays out unless given.
        agent_kwargs.pop("n_steps", None)
    commit = _commit()  # now: the code this process imported, not the code at its end
    # The name says what the command line changed; "neuroflow" is velora with its preset.
    agent_name = args.name or neuroflow_name(
        args.normalize_obs,
        args.sequence_length or 1,
        args.critic_history or "none",
        args.actor_neurons,
        args.agent_kwargs.get("n_steps"),
    )
    torch.set_num_threads(1)  # one core per job, so `--jobs 2` fits two cores

    with tempfile.TemporaryDirectory(prefix="velora-suite-") as tmp:
        # The library prints to stdout; the JSON line must be the only thing there.
        with contextlib.redirect_stdout(sys.stderr):
            agent = NeuroFlow(
                args.env,
                args.actor_neurons,
                CONFIG["critic_neurons"],
                seed=args.seed,
                buffer_size=CONFIG["buffer_size"],
                normalize_obs=args.normalize_obs,
                **agent_kwargs,
            )
            if args.compile:
                agent.compile()
            cb = _EvaluateAndStop(
                agent, args.budget, args.eval_every, args.eval_episodes, args.seed
            )
            agent.train(
                **{**train_kwargs, "n_episodes": 10**9, "display_count": 10**9},
                callbacks=[cb],
                db_path=str(Path(tmp) / "metrics.db"),
            )
    wall_s = time.perf_counter() - cb.start
    if agent.steps_done != args.budget or cb.evaluations[-1]["steps"] != args.budget:
        sys.exit(f"stopped at {agent.steps_done} env steps, expected {args.budget}")
    finish(
        args,
        {
            "agent": agent_name,
            "algo": "NeuroFlow",
            "library": "velora",
            "version": version("velora"),
            "commit": commit,
            "config": {
                **CONFIG,
                "actor_neurons": args.actor_neurons,
                "batch_size": train_kwargs["batch_size"],
                "normalize_obs": args.normalize_obs,
                "sequence_length": train_kwargs.get("sequence_length", 1),
                "burn_in": train_kwargs.get("burn_in", 0),
                "critic_history": agent.critic_history,
                "compile": args.compile,
                # The other agent and train settings in effect (the preset's, or given).
                "preset": {k: v for k, v in agent_kwargs.items() if k != "critic_history"},
                "train": {k: v for k, v in train_kwargs.items() if k not in _OWN_FIELDS},
            },
        },
        cb.evaluations,
        wall_s,
        cb.eval_s,
    )


if __name__ == "__main__":
    main()

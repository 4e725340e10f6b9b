"""What runs inside one Ray Tune trial: a NeuroFlow trained in the trial's own folder.

Runs on whichever Ray node Tune placed the trial; imports Ray only there.
"""

import math
import os
import shutil
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from velora.callbacks import EarlyStopping, TrainCallback
from velora.metrics import EpisodeRecord, get_db_engine
from velora.metrics.db import METRICS_DB
from velora.models import NeuroFlow
from velora.training import TrainConfig, TrainState
from velora.training.config import ACTOR_NEURONS, CRITIC_NEURONS

#: NeuroFlow's required sizes, used when the search space leaves them out.
AGENT_DEFAULTS = {"actor_neurons": ACTOR_NEURONS, "critic_neurons": CRITIC_NEURONS}
#: The `train()` settings a search space may set; the sweep owns the others.
SWEEP_SETTINGS = ("n_episodes", "log_freq", "display_count", "db_path")
TRAIN_PARAMS = tuple(f.name for f in fields(TrainConfig) if f.name not in SWEEP_SETTINGS)
#: The metric trials report and the scheduler ranks by, and its time attribute.
METRIC = "reward_moving_avg"
TIME_ATTR = "episode"
FINAL = "final"


@dataclass(frozen=True)
class TrialSettings:
    """The sweep-wide settings every trial shares."""

    env_id: str
    sweep_dir: str
    n_episodes: int
    batch_size: int
    log_freq: int
    target: float | None
    patience: int


class _TrialCut(Exception):
    """Tune stopped the trial (its scheduler cut it); unwinds the training loop."""


def _save_replacing(agent: NeuroFlow, target: Path) -> None:
    """Save `agent` to `target`, replacing an earlier save there."""
    fresh = target.with_name(f"{target.name}.next")
    shutil.rmtree(fresh, ignore_errors=True)
    agent.save(fresh, buffer=False, config=True)
    if target.exists():
        old = target.with_name(f"{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(target, old)
        os.rename(fresh, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(fresh, target)


class TuneReport(TrainCallback):
    """Reports a trial's progress to Ray Tune after every metrics write.

    Each report carries the last logged episode's numbers (`reward_moving_avg`,
    `episode`, `steps`, ...) and the best moving average so far. The agent is saved to
    `checkpoint_dir` just before each report, so a trial the scheduler cuts still
    leaves a checkpoint matching what it last reported. Use it inside a Ray Tune
    trainable of your own, or let `run_sweep` do it.

    Args:
        checkpoint_dir: the folder the agent is saved to (replaced at every report).
        early_stopping: the run's `EarlyStopping`, if any, so the report of the last
            episode already says the run stopped early.
    """

    def __init__(
        self, checkpoint_dir: str | os.PathLike, *, early_stopping: EarlyStopping | None = None
    ) -> None:
        self.checkpoint_dir = Path(checkpoint_dir).absolute()
        self.early_stopping = early_stopping
        self.node_id: str | None = None
        self.best = -math.inf
        self.last: dict[str, Any] | None = None
        self.cut = False

    def on_train_start(self, state: TrainState) -> None:
        import ray

        self.node_id = ray.get_runtime_context().get_node_id()

    def on_step(self, state: TrainState) -> None:
        if self.cut:
            raise _TrialCut  # before the next episode writes anything Tune never saw

    def _status(self, state: TrainState) -> str:
        """How training ended, already at the write of its last episode."""
        if state.status != "running":
            return state.status
        if state.episode - state.start_episode >= state.n_episodes:
            return "completed"
        early = self.early_stopping
        if early is not None and early.streak >= early.patience:
            return "early_stopped"
        return "running"

    def on_log(self, state: TrainState, records: tuple[EpisodeRecord, ...]) -> None:
        if self.cut:
            return
        self.best = max(self.best, *(record.reward_moving_avg for record in records))
        _save_replacing(state.agent, self.checkpoint_dir)
        last = records[-1]
        self._report(
            {
                TIME_ATTR: last.episode_num,
                "steps": state.step,
                "reward": last.reward,
                METRIC: last.reward_moving_avg,
                "reward_moving_std": last.reward_moving_std,
                "best_moving_avg": self.best,
                "reward_max": state.reward_max,
                "actor_loss": last.actor_loss,
                "critic_loss": last.critic_loss,
                "entropy_loss": last.entropy_loss,
                "status": self._status(state),
                "seed": state.agent.seed,
                "node_id": self.node_id,
                "checkpoint": str(self.checkpoint_dir),
                "trial_dir": str(self.checkpoint_dir.parent),
                "time_s": state.elapsed,
            }
        )

    def on_train_end(self, state: TrainState) -> None:
        # The last write may have happened before the loop knew how it ended.
        done = state.status in ("completed", "early_stopped")
        if done and not self.cut and self.last and self.last["status"] != state.status:
            self._report({**self.last, "status": state.status, "time_s": state.elapsed})

    def summary(self) -> str:
        return f"TuneReport(to Ray Tune, checkpoint {self.checkpoint_dir.name}/)"

    def config(self) -> dict[str, Any]:
        return {"checkpoint_dir": str(self.checkpoint_dir)}

    def _report(self, metrics: dict[str, Any]) -> None:
        from ray import tune

        self.last = metrics
        try:
            tune.report(metrics)
        except SystemExit:
            # How Ray Tune ends a trial it stopped (e.g. ASHA cut it). Raising it through
            # the training loop here would write the logged episodes twice; the loop
            # stops at the next step instead and `run_trial` re-raises it.
            self.cut = True


def run_trial(config: dict[str, Any], settings: TrialSettings) -> None:
    """The Tune function trainable: build the trial's agent and train it.

    Works in `<sweep_dir>/<trial_id>/`, so the trial's `metrics.db`, `checkpoints/` and
    `final/` save are its own.
    """
    from ray import tune

    trial_dir = Path(settings.sweep_dir) / tune.get_context().get_trial_id()
    trial_dir.mkdir(parents=True, exist_ok=True)
    params = dict(config)
    seed = params.pop("seed", None)
    train_kwargs = {name: params.pop(name) for name in TRAIN_PARAMS if name in params}
    batch_size = train_kwargs.pop("batch_size", settings.batch_size)
    agent_kwargs = {**AGENT_DEFAULTS, **params}
    if isinstance(agent_kwargs.get("optim"), str):  # e.g. tune.choice(["Adam", "AdamW"])
        agent_kwargs["optim"] = getattr(torch.optim, agent_kwargs["optim"])
    early = None
    if settings.target is not None:
        early = EarlyStopping(settings.target, patience=settings.patience)
    report = TuneReport(trial_dir / FINAL, early_stopping=early)
    callbacks: list[TrainCallback] = [cb for cb in (early, report) if cb is not None]

    previous = os.getcwd()
    os.chdir(trial_dir)
    try:
        agent = NeuroFlow(settings.env_id, seed=seed, **agent_kwargs)
        agent.train(
            batch_size,
            n_episodes=settings.n_episodes,
            callbacks=callbacks,
            log_freq=settings.log_freq,
            display_count=settings.n_episodes,
            **train_kwargs,
        )
    except _TrialCut:
        pass
    finally:
        os.chdir(previous)
        if (trial_dir / METRICS_DB).exists():  # fold the WAL into metrics.db
            get_db_engine(trial_dir / METRICS_DB).dispose()
    if report.cut:
        raise SystemExit(0)  # Tune waits for the trial's thread to end this way

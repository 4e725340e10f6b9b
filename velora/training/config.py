"""Every training setting, written once: `train()`, `velora train` and sweeps read it here.

Imports neither torch nor gymnasium, so the command line builds its options quickly.
"""

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from velora.metrics.db import METRICS_DB

#: NeuroFlow's sizes where a caller (the command line, a sweep) needs a default, and
#: the replay buffer's default capacity.
ACTOR_NEURONS = 20
CRITIC_NEURONS = 128
BUFFER_SIZE = 1_000_000

DISCRETE_TARGET_SCALE = 0.5
"""The default target entropy of a `Discrete(n)` policy, as a share of log n.

Christodoulou (2019) used 0.98: a target so close to the uniform policy's entropy that
a policy which has learned anything stays below it, and the temperature grows without
bound. The suite (`benchmarks/suite`) measured the share chosen here."""

DISCRETE_INITIAL_ALPHA = 0.1
"""The default starting temperature of a `Discrete` policy.

Starting at 1, the entropy bonus outweighs rewards of order one and holds the policy at
uniform until the temperature has come down; by then the critics' early, optimistic
differences between actions are gone, and on tasks whose reward comes only at a goal
(Acrobot, MountainCar) a uniform policy never reaches it. A small start lets the policy
act on those differences, as DQN's greedy policy does, and the temperature rises from
there towards its target."""


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one `train()` call, each with its default and a line of help.

    Building one checks every value, so bad input fails before any work starts.
    """

    batch_size: int = _setting(128, "Transitions in each gradient step's batch.")
    n_episodes: int = _setting(10_000, "Episodes to train for (at most).")
    log_freq: int = _setting(10, "Write finished episodes to the metrics database every N.")
    display_count: int = _setting(100, "Print a progress line every N episodes.")
    window_size: int = _setting(100, "Episodes in the reward moving average.")
    max_steps: int = _setting(1000, "Steps after which an episode is cut (a truncation).")
    warmup_steps: int | None = _setting(
        None, "Random-action steps before learning (None: twice the batch size)."
    )
    updates_per_step: int = _setting(
        1, "Gradient steps after each env step (each vector step with n_envs > 1)."
    )
    n_envs: int = _setting(
        1, "Env copies stepped together (a vector env); each vector step stores n_envs."
    )
    db_path: str = _setting(METRICS_DB, "The SQLite metrics database to append to.")
    sequence_length: int = _setting(
        1,
        "Transitions per replayed window; the actor trains through time over each "
        "(1: single stored steps).",
    )
    burn_in: int = _setting(
        0, "Steps at the start of each window that only warm the actor's state up."
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "db_path", str(self.db_path))
        for f in fields(TrainConfig):  # a subclass's own fields check themselves
            value, minimum = getattr(self, f.name), 0 if f.name in _FROM_ZERO else 1
            if f.name == "db_path" or (f.name == "warmup_steps" and value is None):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{f.name} must be an integer >= {minimum}, got {value!r}.")
        if self.sequence_length > 1 and self.burn_in >= self.sequence_length:
            raise ValueError(
                f"burn_in ({self.burn_in}) must be smaller than sequence_length "
                f"({self.sequence_length}): a window needs steps left to train on."
            )
        if self.sequence_length == 1 and self.burn_in:
            raise ValueError(
                f"burn_in ({self.burn_in}) needs sequence_length > 1: single stored steps "
                "have nothing to warm up."
            )

    @property
    def warmup(self) -> int:
        """The warm-up in steps, its default resolved."""
        return 2 * self.batch_size if self.warmup_steps is None else self.warmup_steps

    @staticmethod
    def help(name: str) -> str:
        """The line of help for setting `name`."""
        return _FIELDS[name].metadata["help"]

    def record(self, callbacks: dict[str, dict[str, Any]] | None = None) -> "TrainRecord":
        """These settings as the run's config records them: the warm-up resolved, and
        each callback's own config."""
        values = {**asdict(self), "warmup_steps": self.warmup}
        return TrainRecord(**values, callbacks=dict(callbacks or {}))


@dataclass(frozen=True)
class TrainRecord(TrainConfig):
    """A `train()` call as `model_config.json` and the metrics database record it."""

    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)


_FIELDS = {f.name: f for f in fields(TrainConfig)}
_FROM_ZERO = {"warmup_steps", "burn_in"}

"""The callback base class: named hooks the training loop calls, each a no-op by default.

It belongs to the loop that calls it (`velora.callbacks` re-exports it with the
built-in callbacks).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gymnasium as gym

    from velora.metrics import EpisodeRecord
    from velora.training.state import TrainState


class TrainCallback:
    """Base class of every callback.

    Override the hooks you need. Each receives the read-only `TrainState`; returning
    `False` from `on_step` or `on_episode_end` stops training after that step or
    episode. Create folders and clients in `on_train_start`, not in `__init__`, so that
    building a callback has no side effects.

    Example, a callback that stops after a wall-time budget::

        class TimeLimit(TrainCallback):
            def __init__(self, seconds: float) -> None:
                self.seconds = seconds

            def on_episode_end(self, state):
                return state.elapsed < self.seconds
    """

    #: Callbacks run in this order (lower first; ties keep the list's order), so that
    #: one that makes something (an evaluation) runs before those that act on it.
    order: int = 0

    #: Whether it evaluates the policy into `TrainState.latest_evaluation` (`Evaluate`):
    #: callbacks that act on evaluations check that some callback does.
    evaluates: bool = False

    #: The render mode this callback needs from the training env ("rgb_array" for
    #: videos); agents render only when a callback asks.
    render_mode: str | None = None

    def wrap_env(self, env: "gym.Env") -> "gym.Env":
        """Wrap the raw training env; called once, after `on_train_start`, only when some
        callback sets `render_mode` (the loop then trains on a rendering copy)."""
        return env

    def on_train_start(self, state: "TrainState") -> None:
        """Before the first episode."""

    def on_step(self, state: "TrainState") -> bool | None:
        """After every environment step (and its gradient update)."""

    def on_episode_end(self, state: "TrainState") -> bool | None:
        """After each episode, once its statistics are in `state`."""

    def on_log(self, state: "TrainState", records: tuple["EpisodeRecord", ...]) -> None:
        """After a batch of episodes was written to the metrics database."""

    def on_train_end(self, state: "TrainState") -> None:
        """When training ends: budget used, stopped early or interrupted (Ctrl-C)."""

    def summary(self) -> str:
        """A one-line description shown when training starts."""
        return type(self).__name__

    def config(self) -> dict[str, Any]:
        """The callback's settings, recorded with the run's config."""
        return {}

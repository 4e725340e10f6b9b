"""What the training loop needs of an agent, and nothing more."""

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import gymnasium as gym
    import torch

    from velora.buffer import ReplayBuffer
    from velora.training.config import TrainRecord
    from velora.training.progress import TrainProgress


class TrainableAgent(Protocol):
    """An agent the loop can train (`NeuroFlow` is one).

    The loop steps `env` (or copies of `env_id`), stores transitions in `buffer`,
    advances `progress` and records the run with `record_training`.
    """

    env_id: str
    seed: int
    device: "torch.device"
    env: "gym.Env"
    buffer: "ReplayBuffer"
    progress: "TrainProgress"

    @property
    def entropy(self) -> "torch.Tensor":
        """The entropy temperature alpha, detached (recorded with every episode)."""

    def initial_hidden(self, batch_size: int) -> "torch.Tensor":
        """The recurrent state an episode starts from."""

    def observe(self, states: "torch.Tensor") -> None:
        """Observations met while training, before acting on them (running statistics)."""

    def act(
        self, state: "torch.Tensor", hidden: "torch.Tensor", *, deterministic: bool
    ) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Policy-space actions for a batch of states, and the next hidden state."""

    def random_act(
        self, state: "torch.Tensor", hidden: "torch.Tensor"
    ) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Uniformly random actions (warm-up), and the next hidden state all the same."""

    def to_env(self, action: "torch.Tensor") -> "torch.Tensor":
        """Policy-space actions as the env's `step` takes them."""

    def update(
        self, batch_size: int, *, sequence_length: int = 1, burn_in: int = 0
    ) -> "torch.Tensor":
        """One gradient step; the losses `[actor, critic, entropy]`, left on the device.
        With `sequence_length > 1`, on windows of that many consecutive transitions
        (the first `burn_in` of each only warming the actor's state up)."""

    def record_training(self, record: "TrainRecord") -> str:
        """Note this run's settings in the agent's config; the config as JSON."""

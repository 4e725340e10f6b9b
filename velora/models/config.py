"""The agent's configuration: what `model_config.json` and the metrics DB record."""

from pydantic import BaseModel, ConfigDict

from velora.training.config import TrainRecord


class AgentConfig(BaseModel):
    """Everything needed to rebuild an agent, as plain JSON values."""

    model_config = ConfigDict(frozen=True)

    agent: str
    env_id: str
    action_type: str
    actor_neurons: int
    critic_neurons: int
    optim: str
    buffer_size: int
    actor_lr: float
    critic_lr: float
    alpha_lr: float
    initial_alpha: float
    log_std: tuple[float, float]
    tau: float
    gamma: float
    seed: int
    device: str
    actor_params: int
    critic_params: int
    normalize_obs: bool = False
    target_entropy: float | None = None
    target_entropy_scale: float | None = None
    critic_history: str = "none"
    exploration_noise: str = "white"
    n_steps: int = 1
    #: the last `train()` call's settings and its callbacks' configs.
    train: TrainRecord | None = None

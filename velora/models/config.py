"""The agent's configuration: what `model_config.json` and the metrics DB record."""

from pydantic import BaseModel, ConfigDict


class TrainConfig(BaseModel):
    """The arguments of the last `train()` call."""

    model_config = ConfigDict(frozen=True)

    batch_size: int
    n_episodes: int
    log_freq: int
    display_count: int
    window_size: int
    max_steps: int
    warmup_steps: int
    updates_per_step: int = 1
    n_envs: int = 1
    callbacks: dict[str, dict] = {}


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
    train: TrainConfig | None = None

"""The learning suite's tasks: env, threshold, env-step budget and SB3's tuned settings.

Plain data with no velora or SB3 imports, so the runner and the report share one table
and neither worker depends on it (the runner passes the SB3 settings as JSON).

The SB3 settings are rl-baselines3-zoo's tuned hyper-parameters (DLR-RM/rl-baselines3-zoo,
`hyperparams/dqn.yml` and `hyperparams/sac.yml`): the zoo's LunarLander-v2 entry is used
for LunarLander-v3, and its MuJoCo SAC defaults (`learning_starts: 10000`, the rest SB3's
defaults) for HalfCheetah-v5 and InvertedPendulum-v5. The budgets are the zoo's
`n_timesteps`, except HalfCheetah's (the zoo trains 1e6 steps; 5e4 here), which will not
reach its threshold: there the final return is what compares.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

EVALUATIONS = 20
"""Evaluations per run, evenly spaced over the budget (the last one at its end)."""

EVAL_EPISODES = 10
"""Deterministic episodes per evaluation."""

EVAL_SEED = 10_000
"""Episode i of every evaluation of seed s resets with seed EVAL_SEED + s + i."""

# Params that SB3 takes inside `policy_kwargs` rather than as constructor arguments.
_POLICY_KEYS = ("net_arch", "log_std_init")


@dataclass(frozen=True)
class Task:
    """One env of the suite and how each agent is judged on it.

    `zoo` holds the zoo's settings as its YAML files write them (flat, `net_arch`
    included); `zoo_kwargs` turns them into SB3 constructor arguments.
    """

    env_id: str
    kind: Literal["discrete", "continuous"]
    threshold: float
    budget: int
    zoo: dict[str, Any] = field(default_factory=dict)

    @property
    def eval_every(self) -> int:
        """Env steps between evaluations."""
        return max(self.budget // EVALUATIONS, 1)

    @property
    def algo(self) -> Literal["dqn", "sac"]:
        """The SB3 algorithm: DQN for discrete actions, SAC for continuous ones."""
        return "dqn" if self.kind == "discrete" else "sac"

    def scaled(self, scale: float) -> Task:
        """The task with its budget (and SB3's `learning_starts`) times `scale`.

        For smoke tests: scaling `learning_starts` too keeps a tiny run from ending
        before SB3's first gradient step, so the smoke test still times the updates.
        """
        if scale == 1.0:
            return self
        zoo = dict(self.zoo)
        if "learning_starts" in zoo:
            zoo["learning_starts"] = int(zoo["learning_starts"] * scale)
        return replace(self, budget=max(int(self.budget * scale), EVALUATIONS), zoo=zoo)


# rl-baselines3-zoo, hyperparams/dqn.yml: LunarLander-v2 (its Acrobot-v1 entry has the same values).
_DQN_LUNAR = {
    "learning_rate": 6.3e-4,
    "batch_size": 128,
    "buffer_size": 50_000,
    "learning_starts": 0,
    "gamma": 0.99,
    "target_update_interval": 250,
    "train_freq": 4,
    "gradient_steps": -1,
    "exploration_fraction": 0.12,
    "exploration_final_eps": 0.1,
    "net_arch": [256, 256],
}

# rl-baselines3-zoo, hyperparams/sac.yml: the MuJoCo default (other settings SB3's own).
_SAC_MUJOCO = {"learning_starts": 10_000}

TASKS: dict[str, Task] = {
    t.env_id: t
    for t in [
        Task(
            "CartPole-v1",
            "discrete",
            475.0,
            50_000,
            {
                "learning_rate": 2.3e-3,
                "batch_size": 64,
                "buffer_size": 100_000,
                "learning_starts": 1000,
                "gamma": 0.99,
                "target_update_interval": 10,
                "train_freq": 256,
                "gradient_steps": 128,
                "exploration_fraction": 0.16,
                "exploration_final_eps": 0.04,
                "net_arch": [256, 256],
            },
        ),
        Task("Acrobot-v1", "discrete", -100.0, 100_000, _DQN_LUNAR),
        Task(
            "MountainCar-v0",  # the goal-only reward: -1 per step until the flag
            "discrete",
            -110.0,
            120_000,
            {
                "learning_rate": 4e-3,
                "batch_size": 128,
                "buffer_size": 10_000,
                "learning_starts": 1000,
                "gamma": 0.98,
                "target_update_interval": 600,
                "train_freq": 16,
                "gradient_steps": 8,
                "exploration_fraction": 0.2,
                "exploration_final_eps": 0.07,
                "net_arch": [256, 256],
            },
        ),
        Task("LunarLander-v3", "discrete", 200.0, 100_000, _DQN_LUNAR),
        Task("Pendulum-v1", "continuous", -200.0, 20_000, {"learning_rate": 1e-3}),
        Task("InvertedPendulum-v5", "continuous", 1000.0, 50_000, _SAC_MUJOCO),
        Task(
            "MountainCarContinuous-v0",
            "continuous",
            90.0,
            50_000,
            {
                "learning_rate": 3e-4,
                "buffer_size": 50_000,
                "batch_size": 512,
                "ent_coef": 0.1,
                "train_freq": 32,
                "gradient_steps": 32,
                "gamma": 0.9999,
                "tau": 0.01,
                "learning_starts": 0,
                "use_sde": True,
                "log_std_init": -3.67,
                "net_arch": [64, 64],
            },
        ),
        Task("HalfCheetah-v5", "continuous", 4800.0, 50_000, _SAC_MUJOCO),
    ]
}
"""The suite's tasks by env id, discrete first."""


def _partially_observed(base: str, env_id: str) -> Task:
    """`base` seen through `velora.gym.partially_observed` (its id), judged as `base`."""
    return replace(TASKS[base], env_id=env_id)


MEMORY_TASKS: dict[str, Task] = {
    t.env_id: t
    for t in [
        _partially_observed("CartPole-v1", "PO/CartPole-hide-1-3-v1"),
        _partially_observed("Pendulum-v1", "PO/Pendulum-hide-2-v1"),
        _partially_observed("InvertedPendulum-v5", "PO/InvertedPendulum-hide-2-3-v5"),
        _partially_observed("CartPole-v1", "PO/CartPole-noise-0.1-v1"),
        _partially_observed("InvertedPendulum-v5", "PO/InvertedPendulum-noise-0.1-v5"),
    ]
}
"""The memory benchmark's tasks (`benchmarks/memory.py`): the velocities hidden, or
Gaussian observation noise, with the fully observed task's threshold, budget and SB3
settings."""

ALL_TASKS = {**TASKS, **MEMORY_TASKS}


def file_stem(env_id: str) -> str:
    """The env id as part of a file name (`PO/CartPole-...` has a slash)."""
    return env_id.replace("/", "_")


def zoo_kwargs(task: Task) -> dict[str, Any]:
    """SB3 constructor keyword arguments (`policy` included) from the task's zoo settings."""
    kwargs: dict[str, Any] = {"policy": "MlpPolicy"}
    policy_kwargs: dict[str, Any] = {}
    for key, value in task.zoo.items():
        if key in _POLICY_KEYS:
            policy_kwargs[key] = list(value) if isinstance(value, list) else value
        else:
            kwargs[key] = value
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    return kwargs

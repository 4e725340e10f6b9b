"""Gymnasium helpers: making, wrapping and finding environments for NeuroFlow agents."""

from velora.gym.make import configure_headless_rendering, env_name, make_env
from velora.gym.partial import (
    DropObservations,
    HideComponents,
    ObservationNoise,
    partially_observed,
)
from velora.gym.search import EnvResult, EnvSearch
from velora.gym.wrappers import add_core_env_wrappers, wrap_gym_env

# Runs before anything can import MuJoCo, which reads MUJOCO_GL only when it first loads.
configure_headless_rendering()

__all__ = [
    "make_env",
    "env_name",
    "configure_headless_rendering",
    "wrap_gym_env",
    "add_core_env_wrappers",
    "EnvSearch",
    "EnvResult",
    "partially_observed",
    "HideComponents",
    "ObservationNoise",
    "DropObservations",
]

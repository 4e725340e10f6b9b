"""Making Gymnasium environments that NeuroFlow agents can actually train on."""

import difflib
import os
import re

import gymnasium as gym
from gymnasium import spaces
from gymnasium.envs.registration import parse_env_id
from gymnasium.error import DependencyNotInstalled

# Entry-point module prefix -> the Gymnasium pip extra that provides its dependencies.
_EXTRAS = {
    "gymnasium.envs.box2d": "box2d",
    "gymnasium.envs.mujoco": "mujoco",
    "gymnasium.envs.classic_control": "classic-control",
    "gymnasium.envs.toy_text": "toy-text",
}


def configure_headless_rendering() -> None:
    """Pick offscreen render backends when there is no display and the user chose none.

    MuJoCo reads `MUJOCO_GL` when it first loads, so this must run before it is imported;
    pygame (classic control, Box2D) needs `SDL_VIDEODRIVER=dummy` to open no window.
    """
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    if not os.environ.get("MUJOCO_GL"):
        os.environ["MUJOCO_GL"] = "egl"
    if not os.environ.get("SDL_VIDEODRIVER"):
        os.environ["SDL_VIDEODRIVER"] = "dummy"


def env_name(env_id: str) -> str:
    """The bare environment name, without namespace or version (for run and file names)."""
    try:
        return parse_env_id(env_id)[1]
    except gym.error.Error:
        return re.sub(r"-v\d+$", "", env_id.rsplit("/", 1)[-1])


def _unknown_id_error(env_id: str) -> ValueError:
    """A `ValueError` that suggests the registered ids closest to a mistyped one."""
    ids = list(gym.registry)
    by_lower = {}
    for i in ids:
        by_lower.setdefault(i.lower(), i)
    close = difflib.get_close_matches(env_id.lower(), list(by_lower), n=3, cutoff=0.6)
    hint = ""
    if close:
        hint = " Did you mean: " + ", ".join(repr(by_lower[c]) for c in close) + "?"
    return ValueError(
        f"Unknown environment {env_id!r}.{hint} Use velora.gym.EnvSearch.find(...) to browse ids."
    )


def check_spaces(env: gym.Env, env_id: str) -> None:
    """Raise `ValueError` unless the env has a 1-D Box observation and Discrete/Box action."""
    act = env.action_space
    if not isinstance(act, spaces.Discrete | spaces.Box):
        raise ValueError(
            f"Environment {env_id!r} has a {type(act).__name__} action space; "
            "NeuroFlow supports Discrete or Box action spaces only."
        )
    if isinstance(act, spaces.Box) and len(act.shape) != 1:
        raise ValueError(
            f"Environment {env_id!r} has a Box action space of shape {act.shape}; "
            "NeuroFlow needs a 1-D Box (a flat action vector)."
        )
    obs = env.observation_space
    if not isinstance(obs, spaces.Box) or len(obs.shape) != 1:
        shape = f" of shape {obs.shape}" if isinstance(obs, spaces.Box) else ""
        raise ValueError(
            f"Environment {env_id!r} has a {type(obs).__name__} observation space{shape}; "
            "NeuroFlow needs a 1-D Box observation space (a flat vector of features)."
        )


def _missing_dependency(env_id: str, err: DependencyNotInstalled) -> DependencyNotInstalled:
    """Name the pip extra to install, so the fix is one copy-paste away."""
    entry = str(gym.registry[env_id].entry_point) if env_id in gym.registry else ""
    extra = next((x for mod, x in _EXTRAS.items() if entry.startswith(mod)), None)
    fix = f'pip install "gymnasium[{extra}]"' if extra else "install its optional dependencies"
    return DependencyNotInstalled(
        f"Environment {env_id!r} needs an optional dependency that is missing: {fix}. ({err})"
    )


def make_env(
    env_id: str,
    *,
    render_mode: str | None = None,
    max_episode_steps: int | None = None,
    **kwargs,
) -> gym.Env:
    """Make a Gymnasium env, failing early with a helpful message if NeuroFlow can't use it."""
    if env_id not in gym.registry:
        from velora.gym.partial import register_from_id  # PO/... ids name their wrappers

        if not register_from_id(env_id):
            raise _unknown_id_error(env_id)
    if "mujoco" in str(gym.registry[env_id].entry_point):
        configure_headless_rendering()
    try:
        env = gym.make(
            env_id, render_mode=render_mode, max_episode_steps=max_episode_steps, **kwargs
        )
    except DependencyNotInstalled as err:
        raise _missing_dependency(env_id, err) from err
    try:
        check_spaces(env, env_id)
    except ValueError:
        env.close()
        raise
    return env

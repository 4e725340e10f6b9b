"""Browse the Gymnasium environments a NeuroFlow agent can train on."""

import contextlib
import functools
import warnings
from collections import defaultdict
from collections.abc import Iterator
from typing import Literal, NamedTuple

import gymnasium as gym
from gymnasium import spaces
from gymnasium.envs.registration import parse_env_id

from velora.gym.make import make_env

# Namespaces with functional (jax) duplicates and old-gym compatibility shims: not trainable
# envs of their own, so listing them would only confuse.
_SKIP_NAMESPACES = frozenset({"phys2d", "tabular"})
_SKIP_NAMES = frozenset({"GymV21Environment", "GymV26Environment"})


class EnvResult(NamedTuple):
    """One searchable environment: its id and whether its actions are discrete or continuous."""

    name: str
    type: Literal["discrete", "continuous"]


def _try_make(env_id: str) -> EnvResult | None:
    """The env's result if `make_env` accepts it, else None (missing deps, unusable spaces)."""
    try:
        # Constructing without reset and without the env checker only reads the spaces,
        # which keeps the whole scan well under a second.
        env = make_env(env_id, disable_env_checker=True)
    except Exception:
        return None
    kind = "discrete" if isinstance(env.action_space, spaces.Discrete) else "continuous"
    env.close()
    return EnvResult(env_id, kind)


@contextlib.contextmanager
def _quiet_mujoco() -> Iterator[None]:
    """Silence MuJoCo's model-compiler warnings, which it also appends to MUJOCO_LOG.TXT in
    the working directory: browsing ids should leave no files behind."""
    try:
        import mujoco
    except ImportError:
        yield
        return
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(lambda message: None)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


@functools.cache
def _all_envs() -> tuple[EnvResult, ...]:
    """Latest buildable version of every registered env, built once per process."""
    versions: dict[tuple[str | None, str], list[tuple[int, str]]] = defaultdict(list)
    for env_id in gym.registry:
        ns, name, version = parse_env_id(env_id)
        if ns in _SKIP_NAMESPACES or name in _SKIP_NAMES:
            continue
        versions[(ns, name)].append((-1 if version is None else version, env_id))

    results = []
    with warnings.catch_warnings(), _quiet_mujoco():
        warnings.simplefilter("ignore")  # deprecation notices for old versions we skip past
        for candidates in versions.values():
            for _, env_id in sorted(candidates, reverse=True):
                result = _try_make(env_id)
                if result is not None:
                    results.append(result)
                    break
    return tuple(sorted(results, key=lambda r: r.name))


class EnvSearch:
    """Find environment ids by name or by action type (discrete or continuous)."""

    @staticmethod
    def find(query: str) -> list[EnvResult]:
        """Environments whose id contains `query`, ignoring case."""
        q = query.lower()
        return [r for r in _all_envs() if q in r.name.lower()]

    @staticmethod
    def discrete() -> list[EnvResult]:
        """Environments with a Discrete action space."""
        return [r for r in _all_envs() if r.type == "discrete"]

    @staticmethod
    def continuous() -> list[EnvResult]:
        """Environments with a continuous (Box) action space."""
        return [r for r in _all_envs() if r.type == "continuous"]

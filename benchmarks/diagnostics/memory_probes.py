"""Where does learning with hidden velocities break? Two probes on CartPole-v1 whose
velocities (components 1 and 3) the actor cannot see, run through the learning suite's
NeuroFlow worker (same settings, evaluations and JSON result):

- `stacked`: the env shows the last two observations of positions-only CartPole side
  by side, so the velocity is a difference of inputs, to actor and critics alike;
- `privileged`: the env shows the full state, but the actor's sensory synapses from
  the velocities are removed (mask and weights zeroed, so they stay zero): the actor
  acts from positions and its memory, the critics see the velocities.

    python benchmarks/diagnostics/memory_probes.py privileged --seed 0 --budget 50000 \
        --eval-every 2500 --sequence-length 8 --burn-in 2 --compile --out probe.json

Any option of `benchmarks/workers/velora_learning.py` passes through (`--env` is set
here). CartPole's bundled preset applies, as in the memory benchmark.
"""

import sys
from pathlib import Path

import gymnasium as gym
import torch
from gymnasium.wrappers import FlattenObservation, FrameStackObservation

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workers"))
import velora_learning  # noqa: E402

from velora.gym.partial import HideComponents  # noqa: E402
from velora.models import NeuroFlow  # noqa: E402
from velora.presets import load_preset  # noqa: E402

VELOCITIES = [1, 3]


def _stacked_env(**kwargs) -> gym.Env:
    env = HideComponents(gym.make("CartPole-v1", **kwargs), VELOCITIES)
    return FlattenObservation(FrameStackObservation(env, 2))


def _actor_blind_to_velocities(*args, **kwargs) -> NeuroFlow:
    agent = NeuroFlow(*args, **kwargs)
    inter = agent.actor.inter
    with torch.no_grad():
        inter.mask[:, VELOCITIES] = 0.0
        inter.weight.mul_(inter.mask)
    return agent


def main() -> None:
    probe = sys.argv.pop(1) if len(sys.argv) > 1 else ""
    if probe == "stacked":
        env_id = "Probe/CartPole-stacked-positions-v1"
        limit = gym.spec("CartPole-v1").max_episode_steps
        gym.register(env_id, _stacked_env, max_episode_steps=limit)
    elif probe == "privileged":
        velora_learning.NeuroFlow = _actor_blind_to_velocities
        env_id = "CartPole-v1"
    else:
        sys.exit("usage: memory_probes.py {stacked,privileged} [worker options]")
    velora_learning.preset_or_defaults = lambda _: load_preset("CartPole-v1")
    sys.argv += ["--env", env_id]
    velora_learning.main()


if __name__ == "__main__":
    main()

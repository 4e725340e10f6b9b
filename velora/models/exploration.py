"""Pink action noise: exploration that keeps its direction for a while.

A Gaussian policy explores with a fresh standard normal draw each step (white noise),
which averages out within a few steps. Where only a sustained push finds the reward
(MountainCarContinuous: rock back and forth until the car reaches the hill's top), the
agent never meets it and learns to stand still. Pink noise has power falling as 1/f:
each draw is still standard normal, but consecutive draws are correlated, so the
actions drift one way and then another. Only the rollouts' draws change; the losses,
the policy's spread and its log-density are as before (Eberhard et al. 2023, "Pink
Noise Is All You Need"). The sequences come from `pink-noise-rl`.
"""

import numpy as np
import torch
from pink import PinkNoiseProcess

#: `NeuroFlow(exploration_noise=...)`: "white", a fresh draw each step, or "pink".
EXPLORATION_NOISES = ("white", "pink")


class PinkNoise:
    """Standard normal draws for a batch of envs, correlated along each env's steps.

    Each env and action dimension follows its own pink sequence of `horizon` steps (an
    episode's length: the slowest drift it holds); a new sequence starts after each.

    Args:
        action_dim: action dimensions.
        horizon: steps per sequence.
        seed: seed of the sequences' generator.
    """

    def __init__(self, action_dim: int, horizon: int, seed: int) -> None:
        self.action_dim = action_dim
        self.horizon = horizon
        self.rng = np.random.default_rng(seed)
        self._process: PinkNoiseProcess | None = None

    def _start(self, n_envs: int) -> PinkNoiseProcess:
        process = PinkNoiseProcess(size=(n_envs, self.action_dim, self.horizon), rng=self.rng)
        self._process = process
        return process

    def sample(self, n_envs: int, device: torch.device) -> torch.Tensor:
        """The next step's draws, `(n_envs, action_dim)` float32 (a new batch size
        starts new sequences)."""
        process = self._process
        if process is None or process.size[0] != n_envs:
            process = self._start(n_envs)
        draw = np.asarray(process.sample(), dtype=np.float32).reshape(n_envs, self.action_dim)
        return torch.from_numpy(draw).to(device)

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """JSON values and tensors that `restore` takes: where the sequences are and
        the generator's state, so a resumed run draws the same noise."""
        meta: dict = {"rng": self.rng.bit_generator.state, "position": None}
        if self._process is None:
            return meta, {}
        meta["position"] = self._process.idx
        return meta, {"rng.pink_noise": torch.from_numpy(np.array(self._process.buffer))}

    def restore(self, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
        """Put back what `state` returned."""
        self._process = None
        if meta["position"] is not None:
            buffer = tensors["rng.pink_noise"].numpy()
            process = self._start(buffer.shape[0])  # draws a sequence: replaced below
            process.buffer, process.idx = buffer, int(meta["position"])
        self.rng.bit_generator.state = meta["rng"]

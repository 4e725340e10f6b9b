"""Neural Circuit Policy wiring: which neuron may talk to which.

The wiring is plain data: boolean-free float masks shaped like `nn.Linear` weights
(`out_features x in_features`). Networks read the masks; the wiring knows nothing about
layers, cells or training.
"""

from dataclasses import dataclass

import torch

from velora.utils.checks import check_int


@dataclass(frozen=True)
class WiringMasks:
    """The sparse connection masks of one NCP, each shaped `(out, in)`."""

    sensory_to_inter: torch.Tensor
    inter_to_command: torch.Tensor
    command_to_command: torch.Tensor
    command_to_motor: torch.Tensor


class Wiring:
    """Splits `n_neurons` decision neurons into inter and command neurons and draws masks.

    Sensory inputs feed the inter neurons, inter neurons feed the command neurons (which
    also connect recurrently to each other), and command neurons feed the motor outputs.
    Each possible synapse is dropped with probability `sparsity_level`, but every neuron
    keeps at least one incoming and one outgoing connection. The same seed always gives
    the same masks.

    Args:
        in_features: number of sensory inputs (the observation size).
        n_neurons: number of decision neurons (inter + command).
        out_features: number of motor outputs.
        sparsity_level: fraction of synapses removed, in [0.1, 0.9].
        seed: seed of the mask generator.
    """

    def __init__(
        self,
        in_features: int,
        n_neurons: int,
        out_features: int,
        *,
        sparsity_level: float = 0.5,
        seed: int = 0,
    ) -> None:
        for name, value in (
            ("in_features", in_features),
            ("n_neurons", n_neurons),
            ("out_features", out_features),
        ):
            check_int(name, value)
        # At least one inter and one command neuron.
        check_int("n_neurons", n_neurons, minimum=2)
        if not 0.1 <= sparsity_level <= 0.9:
            raise ValueError(f"sparsity_level must be in [0.1, 0.9], got {sparsity_level}.")

        self.in_features = in_features
        self.out_features = out_features
        self.n_neurons = n_neurons
        self.n_command = max(int(0.4 * n_neurons), 1)
        self.n_inter = n_neurons - self.n_command
        self.sparsity_level = sparsity_level
        self.seed = seed

        generator = torch.Generator().manual_seed(seed)
        self.masks = WiringMasks(
            sensory_to_inter=self._draw(self.n_inter, in_features, generator),
            inter_to_command=self._draw(self.n_command, self.n_inter, generator),
            command_to_command=self._draw(self.n_command, self.n_command, generator),
            command_to_motor=self._draw(out_features, self.n_command, generator),
        )

    def _draw(self, n_out: int, n_in: int, generator: torch.Generator) -> torch.Tensor:
        """A random `(n_out, n_in)` mask where every row and column has a connection."""
        keep = torch.rand(n_out, n_in, generator=generator) >= self.sparsity_level
        # Give each neuron left without an input (row) or output (column) one random synapse.
        for row in torch.nonzero(~keep.any(dim=1)).flatten().tolist():
            keep[row, torch.randint(n_in, (1,), generator=generator)] = True
        for col in torch.nonzero(~keep.any(dim=0)).flatten().tolist():
            keep[torch.randint(n_out, (1,), generator=generator), col] = True
        return keep.float()

    def config(self) -> dict:
        """Everything needed to rebuild these exact masks."""
        return {
            "in_features": self.in_features,
            "n_neurons": self.n_neurons,
            "out_features": self.out_features,
            "sparsity_level": self.sparsity_level,
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        return (
            f"Wiring(sensory={self.in_features}, inter={self.n_inter}, "
            f"command={self.n_command}, motor={self.out_features}, "
            f"sparsity_level={self.sparsity_level}, seed={self.seed})"
        )

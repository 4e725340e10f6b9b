"""The two NCP networks: a recurrent liquid one (actor) and a feed-forward one (critics)."""

import torch
from torch import nn

from velora.nn.activation import Mish
from velora.nn.cell import LiquidCell
from velora.nn.sparse import SparseLinear
from velora.nn.wiring import Wiring


class LiquidNCPNetwork(nn.Module):
    """Sparse inter layer → Mish → liquid command cell → Mish → sparse motor layer.

    The command layer is recurrent: `forward` takes and returns its hidden state, so
    the network remembers across environment steps.

    Args:
        in_features: observation size.
        n_neurons: decision neurons (inter + command).
        out_features: outputs (motor neurons).
        sparsity_level: fraction of synapses removed, in [0.1, 0.9].
        seed: wiring seed.
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
        super().__init__()
        self.wiring = Wiring(
            in_features, n_neurons, out_features, sparsity_level=sparsity_level, seed=seed
        )
        masks = self.wiring.masks
        self.hidden_size = self.wiring.n_command
        self.inter = SparseLinear(masks.sensory_to_inter)
        self.command = LiquidCell(
            self.wiring.n_inter,
            self.hidden_size,
            torch.cat((masks.inter_to_command, masks.command_to_command), dim=1),
        )
        self.motor = SparseLinear(masks.command_to_motor)
        self.activation = Mish()

    def initial_hidden(self, batch_size: int = 1) -> torch.Tensor:
        """A zero hidden state on the network's device."""
        return self.motor.weight.new_zeros(batch_size, self.hidden_size)

    def forward(
        self, x: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`x` is `(batch, in_features)`; returns `(output, new_hidden)`."""
        if hidden is None:
            hidden = self.initial_hidden(x.shape[0])
        x = self.activation(self.inter(x))
        x, new_hidden = self.command(x, hidden)
        return self.motor(self.activation(x)), new_hidden


class NCPNetwork(nn.Module):
    """Feed-forward NCP: sparse inter → Mish → sparse command → Mish → sparse motor.

    Args: as `LiquidNCPNetwork`.
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
        super().__init__()
        self.wiring = Wiring(
            in_features, n_neurons, out_features, sparsity_level=sparsity_level, seed=seed
        )
        masks = self.wiring.masks
        self.layers = nn.Sequential(
            SparseLinear(masks.sensory_to_inter),
            Mish(),
            SparseLinear(masks.inter_to_command),
            Mish(),
            SparseLinear(masks.command_to_motor),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

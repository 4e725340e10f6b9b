"""The two NCP networks: a recurrent liquid one (actor) and a feed-forward one (critics)."""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from velora.nn.activation import Mish, MishTerms, mish_backward, mish_with_terms
from velora.nn.cell import LiquidCell
from velora.nn.sparse import SparseLinear, masked_weight_grad
from velora.nn.wiring import Wiring


class LiquidTape(NamedTuple):
    """What the hand-written backward of one liquid step reuses from its forward."""

    x: torch.Tensor
    weights: list[torch.Tensor]  # inter, cell heads, motor
    joined: torch.Tensor  # the cell's input: inter activity | hidden state
    ff: torch.Tensor  # tanh(ff1) | tanh(ff2)
    gate: torch.Tensor  # sigmoid(time_a + time_b)
    command: torch.Tensor  # Mish of the cell's output
    inter_mish: MishTerms
    command_mish: MishTerms


class LiquidNCPNetwork(nn.Module):
    """Sparse inter layer → Mish → liquid command cell → Mish → sparse motor layer.

    The command layer is recurrent: `forward` takes and returns its hidden state, so
    the network remembers across environment steps. The default cell mode runs as one
    fused step that uses the weights without their masks: weights outside the masks
    are zero and stay zero (see `SparseLinear`).

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
        if self.command.mode != "default" or (
            torch.is_grad_enabled()
            and (x.requires_grad or hidden.requires_grad or self.motor.weight.requires_grad)
        ):
            # Under autograd (or another cell mode): the layer modules, masks applied.
            return self.forward_modules(x, hidden)
        with torch.no_grad():  # acting: one fused step, no graph
            return _liquid_step(x, hidden, self._fused_params())[:2]

    def forward_saved(
        self, x: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, LiquidTape]:
        """`forward` without autograd, and what `backward` needs: for the hand-written
        update (default cell mode only; other modes train through autograd)."""
        if self.command.mode != "default":
            raise ValueError(
                f"forward_saved covers the default cell mode only, not {self.command.mode!r}; "
                "call the network under autograd instead."
            )
        with torch.no_grad():
            return _liquid_step(x, hidden, self._fused_params(), save=True)

    def backward(self, tape: LiquidTape, grad_output: torch.Tensor) -> list[torch.Tensor]:
        """The parameters' gradients, in `parameters()` order, of a `forward_saved` pass
        from `grad_output` w.r.t. its output (the new hidden state's taken as zero)."""
        with torch.no_grad():
            return _liquid_step_backward(tape, grad_output, self._fused_masks())

    def _fused_layers(self) -> tuple[SparseLinear, SparseLinear, SparseLinear]:
        """The default-mode step's three sparse layers, in `parameters()` order."""
        return self.inter, self.command.heads, self.motor

    def _fused_params(self) -> list[torch.Tensor]:
        """What the fused step computes with: each layer's weight and bias."""
        return [p for layer in self._fused_layers() for p in (layer.weight, layer.bias)]

    def _fused_masks(self) -> list[torch.Tensor]:
        """What only its backward needs (acting skips them): each layer's mask."""
        return [layer.mask for layer in self._fused_layers()]

    def forward_modules(
        self, x: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same step through the layer modules: autograd, every cell mode, and the
        reference the fused default-mode step is tested against."""
        x = self.activation(self.inter(x))
        x, new_hidden = self.command(x, hidden)
        return self.motor(self.activation(x)), new_hidden


def _liquid_step(
    x: torch.Tensor,
    hidden: torch.Tensor,
    params: list[torch.Tensor],
    *,
    save: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, LiquidTape | None]:
    """inter → Mish → default-mode CfC cell (ts = 1) → Mish → motor, without autograd.

    The weights are used as they are: outside their masks they are exactly zero (see
    `LiquidNCPNetwork`). Returns the output, the new hidden state and, with `save`, the
    tape `_liquid_step_backward` reuses; without it (acting) Mish is `F.mish`, one op
    instead of the ones that keep its backward's terms.
    """
    w_in, b_in, w_cell, b_cell, w_out, b_out = params
    size = hidden.shape[-1]
    inter_pre = F.linear(x, w_in, b_in)
    inter, inter_mish = mish_with_terms(inter_pre) if save else (F.mish(inter_pre), None)
    joined = torch.cat((inter, hidden), dim=-1)
    # `split_with_sizes`, not `split`: the latter is a Python wrapper around it.
    ff, time_a, time_b, projection = F.linear(joined, w_cell, b_cell).split_with_sizes(
        (2 * size, size, size, size), dim=-1
    )
    ff = torch.tanh(ff)  # ff1 | ff2
    ff1, ff2 = ff.chunk(2, dim=-1)
    gate = torch.sigmoid(time_a + time_b)
    new_hidden = torch.lerp(ff1, ff2, gate)
    command_pre = projection + new_hidden
    if not save:
        return F.linear(F.mish(command_pre), w_out, b_out), new_hidden, None
    command, command_mish = mish_with_terms(command_pre)
    output = F.linear(command, w_out, b_out)
    weights = [w_in, w_cell, w_out]
    tape = LiquidTape(x, weights, joined, ff, gate, command, inter_mish, command_mish)
    return output, new_hidden, tape


def _liquid_step_backward(
    tape: LiquidTape, grad_output: torch.Tensor, masks: list[torch.Tensor]
) -> list[torch.Tensor]:
    """The chain rule of `_liquid_step` from the output's gradient (the new hidden
    state's taken as zero): the 6 parameters' gradients, in `parameters()` order, the
    weights' masked by `masks`."""
    w_in, w_cell, w_out = tape.weights
    mask_in, mask_cell, mask_out = masks
    size = tape.gate.shape[-1]
    gate, ff = tape.gate, tape.ff
    grad_pre = mish_backward(grad_output @ w_out, tape.command_mish)  # d/d(projection + h')
    ff1, ff2 = ff[:, :size], ff[:, size:]
    grad_ff2 = grad_pre * gate
    grad_ff = torch.cat((grad_pre - grad_ff2, grad_ff2), dim=-1)
    grad_ff.addcmul_(grad_ff * ff, ff, value=-1.0)  # tanh': times 1 - ff^2
    sigmoid_slope = torch.addcmul(gate, gate, gate, value=-1.0)  # gate (1 - gate)
    grad_gate = (grad_pre * (ff2 - ff1)).mul_(sigmoid_slope)
    grad_heads = torch.cat((grad_ff, grad_gate, grad_gate, grad_pre), dim=-1)
    n_inter = tape.joined.shape[-1] - size
    grad_inter = mish_backward((grad_heads @ w_cell)[:, :n_inter], tape.inter_mish)
    return [
        masked_weight_grad(grad_inter, tape.x, mask_in),
        grad_inter.sum(dim=0),
        masked_weight_grad(grad_heads, tape.joined, mask_cell),
        grad_heads.sum(dim=0),
        masked_weight_grad(grad_output, tape.command, mask_out),
        grad_output.sum(dim=0),
    ]


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

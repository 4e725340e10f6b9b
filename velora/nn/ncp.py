"""The two NCP networks: a recurrent liquid one (actor) and a feed-forward one (critics)."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from velora.nn.activation import Mish, mish_backward, mish_with_terms
from velora.nn.cell import LiquidCell
from velora.nn.sparse import SparseLinear
from velora.nn.wiring import Wiring

# `_liquid_step_backward`'s needs: the six parameters' gradients, not x's or hidden's.
_PARAMS_ONLY = (False, False) + (True,) * 6


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
            return _liquid_step(x, hidden, self._fused_params(), save=False)

    def forward_saved(
        self, x: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """`forward` without autograd, and what `backward` needs: for the hand-written
        update (default cell mode only; other modes train through autograd)."""
        if self.command.mode != "default":
            raise ValueError(
                f"forward_saved covers the default cell mode only, not {self.command.mode!r}; "
                "call the network under autograd instead."
            )
        with torch.no_grad():
            output, new_hidden, *saved = _liquid_step(x, hidden, self._fused_params())
        return output, new_hidden, (x, self._fused_masks(), *saved)

    def backward(self, saved: tuple, grad_output: torch.Tensor) -> list[torch.Tensor]:
        """The parameters' gradients, in `parameters()` order, of a `forward_saved` pass
        from `grad_output` w.r.t. its output (the new hidden state's taken as zero)."""
        with torch.no_grad():
            return _liquid_step_backward(saved, grad_output, None, _PARAMS_ONLY)[2:]

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
    save: bool = True,
) -> tuple[torch.Tensor, ...]:
    """inter → Mish → default-mode CfC cell (ts = 1) → Mish → motor, without autograd.

    The weights are used as they are: outside their masks they are exactly zero (see
    `LiquidNCPNetwork`). Returns the output, the new hidden state and, with `save`,
    what `_liquid_step_backward` reuses; without it (acting), Mish is `F.mish`, one op
    instead of the six that keep its backward's terms.
    """
    w_in, b_in, w_cell, b_cell, w_out, b_out = params
    activation = mish_with_terms if save else _mish_without_terms
    size = hidden.shape[-1]
    inter, inter_terms = activation(F.linear(x, w_in, b_in))
    joined = torch.cat((inter, hidden), dim=-1)
    # `split_with_sizes`, not `split`: the latter is a Python wrapper, twice the cost here.
    ff, time_a, time_b, projection = F.linear(joined, w_cell, b_cell).split_with_sizes(
        (2 * size, size, size, size), dim=-1
    )
    ff = torch.tanh(ff)  # ff1 | ff2
    ff1, ff2 = ff.chunk(2, dim=-1)
    gate = torch.sigmoid(time_a + time_b)
    new_hidden = torch.lerp(ff1, ff2, gate)
    command, command_terms = activation(projection + new_hidden)
    output = F.linear(command, w_out, b_out)
    if not save:
        return output, new_hidden
    return (
        output,
        new_hidden,
        (w_in, w_cell, w_out),
        joined,
        ff,
        gate,
        command,
        (inter_terms, command_terms),
    )


def _mish_without_terms(x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """`mish_with_terms`'s shape for a pass no backward follows: `F.mish`, one op."""
    return F.mish(x), ()


def _liquid_step_backward(
    saved: tuple,
    grad_output: torch.Tensor | None,
    grad_hidden: torch.Tensor | None,
    needs: Sequence[bool],
) -> list[torch.Tensor | None]:
    """The chain rule of `_liquid_step`: gradients w.r.t. x, hidden and the 6 parameters.

    `saved` is `(x, masks, masked weights, joined, ff, gate, command, Mish terms)`;
    `needs` says which of the 8 gradients to compute (the others come back None). A
    None incoming gradient is zero.
    """
    x, masks, (w_in, w_cell, w_out), joined, ff, gate, command, terms = saved
    size = gate.shape[-1]
    grads: list[torch.Tensor | None] = [None] * 8
    if grad_output is None:
        grad_output = torch.zeros(x.shape[0], w_out.shape[0], dtype=x.dtype, device=x.device)
    if needs[6]:
        grads[6] = (grad_output.t() @ command).mul_(masks[2])
    if needs[7]:
        grads[7] = grad_output.sum(dim=0)
    grad_pre = mish_backward(grad_output @ w_out, terms[1])  # d/d(projection + h')
    grad_new = grad_pre if grad_hidden is None else grad_pre + grad_hidden
    ff1, ff2 = ff[:, :size], ff[:, size:]
    grad_ff2 = grad_new * gate
    grad_ff = torch.cat((grad_new - grad_ff2, grad_ff2), dim=-1)
    grad_ff.addcmul_(grad_ff * ff, ff, value=-1.0)  # tanh': times 1 - ff^2
    sigmoid_slope = torch.addcmul(gate, gate, gate, value=-1.0)  # gate (1 - gate)
    grad_gate = (grad_new * (ff2 - ff1)).mul_(sigmoid_slope)
    grad_heads = torch.cat((grad_ff, grad_gate, grad_gate, grad_pre), dim=-1)
    if needs[4]:
        grads[4] = (grad_heads.t() @ joined).mul_(masks[1])
    if needs[5]:
        grads[5] = grad_heads.sum(dim=0)
    if not (needs[0] or needs[1] or needs[2] or needs[3]):
        return grads
    grad_joined = grad_heads @ w_cell
    n_inter = joined.shape[-1] - size
    if needs[1]:
        grads[1] = grad_joined[:, n_inter:]
    grad_inter = mish_backward(grad_joined[:, :n_inter], terms[0])
    if needs[2]:
        grads[2] = (grad_inter.t() @ x).mul_(masks[0])
    if needs[3]:
        grads[3] = grad_inter.sum(dim=0)
    if needs[0]:
        grads[0] = grad_inter @ w_in
    return grads


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

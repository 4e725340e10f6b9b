"""The closed-form continuous-time (CfC) liquid cell (Hasani et al., 2022)."""

import torch
from torch import nn

from velora.nn.sparse import SparseLinear
from velora.utils.checks import check_choice

CELL_MODES = ("default", "no_gate", "pure")


class LiquidCell(nn.Module):
    """A sparse CfC cell: one recurrent step of a liquid time-constant network.

    The input joined with the hidden state feeds every head through the same sparse
    mask. In the default mode two tanh heads `ff1`, `ff2` are mixed by the time gate
    `t_interp = sigmoid(time_a * ts + time_b)` (paper eq. 10):
    `h' = ff1 * (1 - t_interp) + t_interp * ff2`. `no_gate` uses `ff1 + t_interp * ff2`;
    `pure` is the direct closed-form solution `-A * exp(-ts * (|w_tau| + |ff1|)) * ff1 + A`.
    The output is a sparse projection of the joined input plus `h'`.

    All heads share one fused `SparseLinear`, so a step costs one matrix product.

    Args:
        in_features: size of the input (without the hidden state).
        hidden_size: number of (command) neurons carrying the state.
        mask: `(hidden_size, in_features + hidden_size)` connection mask; dense if None.
        mode: one of "default", "no_gate", "pure".
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        mask: torch.Tensor | None = None,
        *,
        mode: str = "default",
    ) -> None:
        super().__init__()
        check_choice("mode", mode, CELL_MODES)
        joined = in_features + hidden_size
        if mask is None:
            mask = torch.ones(hidden_size, joined)
        if tuple(mask.shape) != (hidden_size, joined):
            raise ValueError(
                f"mask must have shape (hidden_size, in_features + hidden_size) = "
                f"({hidden_size}, {joined}), got {tuple(mask.shape)}."
            )
        self.in_features = in_features
        self.hidden_size = hidden_size
        self.mode = mode
        # pure: ff1 + projection; gated modes: ff1, ff2, time_a, time_b + projection.
        self.n_heads = 2 if mode == "pure" else 5
        self.heads = SparseLinear(mask.repeat(self.n_heads, 1))
        if mode == "pure":
            self.w_tau = nn.Parameter(torch.zeros(hidden_size))
            self.A = nn.Parameter(torch.ones(hidden_size))

    def forward(
        self, x: torch.Tensor, hx: torch.Tensor, ts: float | torch.Tensor = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: returns `(output, new_hidden)`, both `(batch, hidden_size)`."""
        if hx.shape[-1] != self.hidden_size or x.shape[-1] != self.in_features:
            raise ValueError(
                f"LiquidCell expects x (batch, {self.in_features}) and hx "
                f"(batch, {self.hidden_size}), got {tuple(x.shape)} and {tuple(hx.shape)}."
            )
        joined = torch.cat((x, hx), dim=-1)
        heads = self.heads(joined).chunk(self.n_heads, dim=-1)
        if self.mode == "pure":
            ff1, projection = heads
            new_hidden = -self.A * torch.exp(-ts * (self.w_tau.abs() + ff1.abs())) * ff1 + self.A
        else:
            ff1, ff2, time_a, time_b, projection = heads
            ff1, ff2 = torch.tanh(ff1), torch.tanh(ff2)
            unit_step = isinstance(ts, int | float) and ts == 1  # skip a multiply by 1
            t_interp = torch.sigmoid(time_a + time_b if unit_step else time_a * ts + time_b)
            if self.mode == "default":
                new_hidden = torch.lerp(ff1, ff2, t_interp)
            else:
                new_hidden = ff1 + t_interp * ff2
        return projection + new_hidden, new_hidden

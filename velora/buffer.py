"""Experience replay with preallocated storage that also keeps the actor's hidden state."""

from typing import Any, NamedTuple

import numpy as np
import torch

from velora.utils.checks import check_int


class Batch(NamedTuple):
    """A sampled batch; every field is `(batch_size, width)`.

    `hidden` is the actor's hidden state fed in when acting in `states`; `next_hidden`
    is the hidden state the actor returned at that step, i.e. the one to feed with
    `next_states`.
    """

    states: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_states: torch.Tensor
    dones: torch.Tensor
    hidden: torch.Tensor
    next_hidden: torch.Tensor


def _flat(value: Any) -> np.ndarray:
    """A field as a flat NumPy array; a CPU tensor is viewed, not copied."""
    if isinstance(value, torch.Tensor):
        return value.numpy(force=True).reshape(-1)
    return np.asarray(value).reshape(-1)


class ReplayBuffer:
    """A ring buffer of transitions held in one preallocated float tensor.

    Each row is one transition laid out as the fields of `Batch`; sampling is a single
    indexing op followed by cheap column views. Discrete actions are stored as floats
    (exact for any realistic number of actions).

    Args:
        capacity: maximum number of transitions kept.
        state_dim: observation size.
        action_dim: action width (1 for a discrete action index).
        hidden_dim: size of the actor's hidden state.
        device: where the storage lives.
    """

    def __init__(
        self,
        capacity: int,
        state_dim: int,
        action_dim: int,
        hidden_dim: int,
        *,
        device: torch.device | str = "cpu",
    ) -> None:
        for name, value in (
            ("capacity", capacity),
            ("state_dim", state_dim),
            ("action_dim", action_dim),
            ("hidden_dim", hidden_dim),
        ):
            check_int(name, value)
        self.capacity = capacity
        self.widths = (state_dim, action_dim, 1, state_dim, 1, hidden_dim, hidden_dim)
        self.device = torch.device(device)
        self.storage = torch.zeros(capacity, sum(self.widths), device=self.device)
        self.position = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        reward: float,
        next_state: torch.Tensor,
        done: bool,
        hidden: torch.Tensor,
        next_hidden: torch.Tensor,
    ) -> None:
        """Store one transition, overwriting the oldest once full.

        On the CPU the fields are written straight into the row through a NumPy view
        of the storage: one NumPy concatenate costs far less than building, casting
        and joining seven tensors (the row is the same: every value cast to float32).
        """
        fields = (state, action, reward, next_state, done, hidden, next_hidden)
        if self.storage.device.type != "cpu":
            self.add_batch(*(torch.as_tensor(field).reshape(1, -1) for field in fields))
            return
        values = [_flat(field) for field in fields]
        if tuple(value.size for value in values) != self.widths:
            raise ValueError(
                f"transition fields have {[value.size for value in values]} values, "
                f"expected {list(self.widths)}."
            )
        row = self.storage.numpy()[self.position]  # a view: writes land in the storage
        np.concatenate(values, out=row, casting="unsafe")  # unsafe: int actions, bool done
        self.position = (self.position + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def add_batch(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_states: torch.Tensor,
        dones: torch.Tensor,
        hidden: torch.Tensor,
        next_hidden: torch.Tensor,
    ) -> None:
        """Store `n` transitions at once (e.g. one step of `n` vectorised envs).

        Every argument has `n` rows in its first dimension (rewards and dones may be
        `(n,)` or `(n, 1)`). The rows are joined and written with one indexing op,
        wrapping around the end of the ring; if `n` exceeds the capacity only the last
        `capacity` rows are kept, as `n` calls to `add` would.
        """
        n = states.shape[0]
        rows = torch.cat(
            [
                torch.as_tensor(field, device=self.device).reshape(n, -1).float()
                for field in (states, actions, rewards, next_states, dones, hidden, next_hidden)
            ],
            dim=1,
        )
        if rows.shape[1] != self.storage.shape[1]:
            raise ValueError(
                f"transitions have {rows.shape[1]} values per row, expected "
                f"{self.storage.shape[1]} (widths {self.widths})."
            )
        if n > self.capacity:  # only the newest `capacity` rows would survive
            self.position = (self.position + n - self.capacity) % self.capacity
            rows, n = rows[-self.capacity :], self.capacity
        end = self.position + n
        if end <= self.capacity:
            self.storage[self.position : end] = rows
        else:
            index = torch.arange(self.position, end, device=self.device) % self.capacity
            self.storage[index] = rows
        self.position = end % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int) -> Batch:
        """A uniform random batch, drawn with the global torch generator."""
        if self.size < batch_size:
            raise ValueError(
                f"cannot sample {batch_size} transitions from a buffer holding {self.size}."
            )
        indices = torch.randint(0, self.size, (batch_size,), device=self.device)
        return Batch(*self.storage[indices].split_with_sizes(self.widths, dim=1))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Only the filled rows, in insertion order, so a mostly empty buffer saves small."""
        if self.size < self.capacity:
            rows = self.storage[: self.size]
        else:
            rows = torch.roll(self.storage, -self.position, dims=0)
        return {"transitions": rows.cpu().contiguous()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Refill from `state_dict()` output; keeps the most recent rows if it overflows."""
        rows = state["transitions"]
        if rows.dim() != 2 or rows.shape[1] != self.storage.shape[1]:
            raise ValueError(
                f"buffer rows have shape {tuple(rows.shape)}, "
                f"expected (n, {self.storage.shape[1]})."
            )
        rows = rows[-self.capacity :]
        self.storage.zero_()
        self.storage[: len(rows)] = rows.to(self.device)
        self.size = len(rows)
        self.position = self.size % self.capacity

"""Experience replay with preallocated storage that also keeps the actor's hidden state,
and knows which transitions follow each other in an episode (for sequence replay)."""

from typing import Any, NamedTuple

import numpy as np
import torch

from velora.utils.checks import check_int


class Batch(NamedTuple):
    """A sampled batch; every transition field is `(batch_size, width)`.

    `hidden` is the actor's hidden state fed in when acting in `states`; `next_hidden`
    is the hidden state the actor returned at that step, i.e. the one to feed with
    `next_states`. `weights`, `(batch_size,)` or None for equal ones, weigh the rows in
    the losses' means (`mean`): sequence replay keeps every position of its windows,
    so that shapes stay fixed, and gives those past an episode's end weight 0.
    `discounts`, `(batch_size, 1)` or None for the agent's gamma, discount each row's
    bootstrapped value: n-step returns (`ReplayBuffer.sample_n_step`) sum the rewards
    of up to n steps and bootstrap from the state after them with gamma^steps.
    """

    states: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_states: torch.Tensor
    dones: torch.Tensor
    hidden: torch.Tensor
    next_hidden: torch.Tensor
    weights: torch.Tensor | None = None
    discounts: torch.Tensor | None = None

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The weighted mean over the rows of per-row `values`, `(..., batch_size)`."""
        if self.weights is None:
            return values.mean(dim=-1)
        return (values * self.weights).sum(dim=-1) / self.weights.sum().clamp(min=1e-12)

    def transitions(self) -> tuple[torch.Tensor, ...]:
        """The transition fields (all but `weights` and `discounts`), in order."""
        return self[:7]


class Windows(NamedTuple):
    """Sampled windows of consecutive transitions: every transition field of `batch` is
    `(batch_size, length, width)`; `valid[b, t]` is False where window `b` has run past
    its episode's end (or past the newest transition), from there to the window's end.
    """

    batch: Batch
    valid: torch.Tensor


class NStepReturns(NamedTuple):
    """n-step returns at the first `positions` of windows, `(batch, positions, ...)`:
    `rewards` and `discounts` are `(batch, positions, 1)`; `last[b, t]` is the window
    position of the transition that row `(b, t)` bootstraps after."""

    rewards: torch.Tensor
    discounts: torch.Tensor
    last: torch.Tensor

    def at_last(self, field: torch.Tensor) -> torch.Tensor:
        """A window field `(batch, length, ...)` at each row's last transition."""
        index = self.last.reshape(*self.last.shape, *[1] * (field.dim() - 2))
        return field.gather(1, index.expand(-1, -1, *field.shape[2:]))


def n_step_returns(
    rewards: torch.Tensor, valid: torch.Tensor, n_steps: int, gamma: float
) -> NStepReturns:
    """For each position t of windows whose `n_steps - 1` last positions only look
    ahead: the rows that start at t and cover its m <= n_steps valid transitions
    t..t+m-1 (`Windows.valid`: an episode's end or the newest transition shortens m).

    A row's reward is the discounted sum of those m rewards, its discount gamma^m, and
    it bootstraps after transition t+m-1 (its next state, next hidden state and done).
    `rewards` is `(batch, length, 1)`, `valid` `(batch, length)`; positions past an
    episode's end (m = 0) get discount 1 and stay where they are, for the caller to mask.
    """
    positions = valid.shape[1] - n_steps + 1
    covered = valid.to(rewards.dtype).unfold(1, n_steps, 1)  # (batch, positions, n)
    ahead = rewards.squeeze(-1).unfold(1, n_steps, 1)
    powers = gamma ** torch.arange(n_steps, device=rewards.device, dtype=rewards.dtype)
    steps = covered.sum(dim=-1, keepdim=True)
    start = torch.arange(positions, device=valid.device)
    last = start + steps.squeeze(-1).to(torch.int64).clamp(min=1) - 1
    return NStepReturns((ahead * covered * powers).sum(dim=-1, keepdim=True), gamma**steps, last)


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

    Beside each row the buffer keeps its episode's number, its step in the episode and
    its stride (how many rows on the episode's next transition lies: the number of envs
    stepped together), so windows of consecutive transitions are found by index
    arithmetic (`sample_windows`). Writers that give no `episode_steps` store each
    transition as an episode of its own.

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
        self.episode_ids = torch.full((capacity,), -1, dtype=torch.int64, device=self.device)
        self.episode_steps = torch.zeros(capacity, dtype=torch.int32, device=self.device)
        self.strides = torch.ones(capacity, dtype=torch.int32, device=self.device)
        self.next_episode_id = 0
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
        episode_step: int = 0,
    ) -> None:
        """Store one transition, overwriting the oldest once full; `episode_step` is
        its step in its episode (0 starts a new one).

        On the CPU the fields are written straight into the row through a NumPy view
        of the storage: one NumPy concatenate costs far less than building, casting
        and joining seven tensors (the row is the same: every value cast to float32).
        """
        fields = (state, action, reward, next_state, done, hidden, next_hidden)
        if self.storage.device.type != "cpu":
            rows = (torch.as_tensor(field).reshape(1, -1) for field in fields)
            self.add_batch(*rows, episode_steps=np.array([episode_step]))
            return
        values = [_flat(field) for field in fields]
        if tuple(value.size for value in values) != self.widths:
            raise ValueError(
                f"transition fields have {[value.size for value in values]} values, "
                f"expected {list(self.widths)}."
            )
        row = self.storage.numpy()[self.position]  # a view: writes land in the storage
        np.concatenate(values, out=row, casting="unsafe")  # unsafe: int actions, bool done
        episode_ids = self.episode_ids.numpy()  # views too: no tensor op per step
        if episode_step == 0:
            episode_ids[self.position] = self.next_episode_id
            self.next_episode_id += 1
        else:  # the episode's previous transition is the previous row
            episode_ids[self.position] = episode_ids[self.position - 1]  # -1: the last row
        self.episode_steps.numpy()[self.position] = episode_step
        self.strides.numpy()[self.position] = 1
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
        episode_steps: np.ndarray | None = None,
    ) -> None:
        """Store `n` transitions at once (e.g. one step of `n` vectorised envs).

        Every argument has `n` rows in its first dimension (rewards and dones may be
        `(n,)` or `(n, 1)`). The rows are joined and written with one indexing op,
        wrapping around the end of the ring; if `n` exceeds the capacity only the last
        `capacity` rows are kept, as `n` calls to `add` would. `episode_steps` gives each
        row's step in its episode, row `i` continuing the episode of row `i` of the
        previous call (the same sub-env); None stores each as an episode of its own. The
        steps are a host array (the loop counts them there), so numbering the episodes
        never waits for the device.
        """
        n = states.shape[0]
        host_steps = np.zeros(n, dtype=np.int32)
        if episode_steps is not None:
            host_steps = np.asarray(episode_steps, dtype=np.int32).reshape(n)
        host_starts = host_steps == 0
        new_ids = self.next_episode_id + np.cumsum(host_starts, dtype=np.int64) - 1
        self.next_episode_id += int(host_starts.sum())
        steps = torch.as_tensor(host_steps, device=self.device)
        previous = (self.position - n + torch.arange(n, device=self.device)) % self.capacity
        ids = torch.where(
            torch.as_tensor(host_starts, device=self.device),
            torch.as_tensor(new_ids, device=self.device),
            self.episode_ids[previous],
        )
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
            rows, steps, ids = (
                rows[-self.capacity :],
                steps[-self.capacity :],
                ids[-self.capacity :],
            )
            stride, n = n, self.capacity
        else:
            stride = n
        end = self.position + n
        if end <= self.capacity:
            index = slice(self.position, end)
        else:
            index = torch.arange(self.position, end, device=self.device) % self.capacity
        self.storage[index] = rows
        self.episode_ids[index] = ids
        self.episode_steps[index] = steps
        self.strides[index] = stride
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

    def sample_windows(self, batch_size: int, length: int) -> Windows:
        """`batch_size` windows of `length` consecutive transitions of one episode each,
        from uniformly drawn first transitions; no Python loop over samples.

        A window's transitions lie `stride` rows apart; where the episode ends (or the
        newest transition is reached) before `length`, the rest is marked invalid.
        """
        if self.size < batch_size:
            raise ValueError(
                f"cannot sample {batch_size} windows from a buffer holding {self.size}."
            )
        if not 1 <= length <= self.capacity:
            raise ValueError(f"window length must be in 1..{self.capacity}, got {length}.")
        heads = torch.randint(0, self.size, (batch_size,), device=self.device)
        offsets = torch.arange(length, device=self.device)
        strides = self.strides[heads].to(torch.int64)
        rows = (heads[:, None] + offsets * strides[:, None]) % self.capacity
        same_episode = self.episode_ids[rows] == self.episode_ids[heads, None]
        in_order = self.episode_steps[rows] == self.episode_steps[heads, None] + offsets
        valid = (same_episode & in_order).to(torch.int8).cummin(dim=1).values.bool()
        fields = self.storage[rows].split_with_sizes(self.widths, dim=-1)
        return Windows(Batch(*fields), valid)

    def sample_n_step(self, batch_size: int, n_steps: int, gamma: float) -> Batch:
        """A batch of n-step transitions from uniformly drawn first transitions.

        Each row starts as the drawn transition (its state, action and hidden state)
        and looks up to `n_steps` transitions ahead within its episode (`sample_windows`,
        then `n_step_returns`).
        """
        windows = self.sample_windows(batch_size, n_steps)  # checks n_steps' range
        seq = windows.batch
        ahead = n_step_returns(seq.rewards, windows.valid, n_steps, gamma)
        return Batch(
            seq.states[:, 0],
            seq.actions[:, 0],
            ahead.rewards[:, 0],
            ahead.at_last(seq.next_states)[:, 0],
            ahead.at_last(seq.dones)[:, 0],
            seq.hidden[:, 0],
            ahead.at_last(seq.next_hidden)[:, 0],
            discounts=ahead.discounts[:, 0],
        )

    def _in_insertion_order(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.size < self.capacity:
            return tensor[: self.size]
        return torch.roll(tensor, -self.position, dims=0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Only the filled rows, in insertion order, so a mostly empty buffer saves small;
        with each row's episode, step and stride."""
        state = {
            "transitions": self._in_insertion_order(self.storage),
            "episode_ids": self._in_insertion_order(self.episode_ids),
            "episode_steps": self._in_insertion_order(self.episode_steps),
            "strides": self._in_insertion_order(self.strides),
            "next_episode_id": torch.tensor([self.next_episode_id], dtype=torch.int64),
        }
        return {key: value.cpu().contiguous() for key, value in state.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Refill from `state_dict()` output; keeps the most recent rows if it overflows."""
        rows = state["transitions"]
        if rows.dim() != 2 or rows.shape[1] != self.storage.shape[1]:
            raise ValueError(
                f"buffer rows have shape {tuple(rows.shape)}, "
                f"expected (n, {self.storage.shape[1]})."
            )
        kept = slice(max(len(rows) - self.capacity, 0), len(rows))
        rows = rows[kept]
        n = len(rows)
        self.storage.zero_()
        self.storage[:n] = rows.to(self.device)
        self.episode_ids.fill_(-1)
        self.episode_steps.zero_()
        self.strides.fill_(1)
        if "episode_ids" in state:
            for key in ("episode_ids", "episode_steps", "strides"):
                if state[key].shape != (len(state["transitions"]),):
                    raise ValueError(
                        f"buffer {key} has shape {tuple(state[key].shape)}, expected "
                        f"({len(state['transitions'])},)."
                    )
            self.episode_ids[:n] = state["episode_ids"][kept].to(self.device)
            self.episode_steps[:n] = state["episode_steps"][kept].to(self.device)
            self.strides[:n] = state["strides"][kept].to(self.device)
            self.next_episode_id = int(state["next_episode_id"][0])
        else:  # saved before episodes were kept: each transition an episode of its own
            self.episode_ids[:n] = torch.arange(n, device=self.device)
            self.next_episode_id = n
        self.size = n
        self.position = self.size % self.capacity

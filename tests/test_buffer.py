"""velora.buffer.ReplayBuffer: exact round-trips, ring wrap-around, state_dict, sampling."""

import pytest
import torch

from velora.buffer import Batch, ReplayBuffer

STATE, ACTION, HIDDEN = 3, 2, 4
WIDTH = 2 * STATE + ACTION + 2 + 2 * HIDDEN


def transition(i: int) -> dict:
    """Transition `i`: every field encodes `i` differently, so rows can't be confused."""
    base = float(i)
    return {
        "state": torch.tensor([base, base + 0.25, base + 0.5]),
        "action": torch.tensor([-base, -base - 0.5]),
        "reward": 100.0 + base,
        "next_state": torch.tensor([base + 1000.0, base + 1000.25, base + 1000.5]),
        "done": i % 3 == 0,
        # the actor returns its hidden with a batch dimension: (1, hidden)
        "hidden": torch.arange(HIDDEN, dtype=torch.float32).reshape(1, HIDDEN) + 10 * base,
        "next_hidden": -(torch.arange(HIDDEN, dtype=torch.float32) + 10 * base),
    }


def fill(buffer: ReplayBuffer, ids) -> None:
    for i in ids:
        buffer.add(**transition(i))


def expected_row(i: int) -> torch.Tensor:
    t = transition(i)
    return torch.cat(
        (
            t["state"],
            t["action"],
            torch.tensor([t["reward"]]),
            t["next_state"],
            torch.tensor([float(t["done"])]),
            t["hidden"].reshape(-1),
            t["next_hidden"].reshape(-1),
        )
    )


def ids_of(batch: Batch) -> list[int]:
    return [int(v) for v in batch.states[:, 0].tolist()]


def assert_batch_consistent(batch: Batch, allowed: set[int]) -> None:
    for r, i in enumerate(ids_of(batch)):
        assert i in allowed, f"sampled transition {i} is not stored"
        t = transition(i)
        assert torch.equal(batch.states[r], t["state"])
        assert torch.equal(batch.actions[r], t["action"])
        assert batch.rewards[r].item() == t["reward"]
        assert torch.equal(batch.next_states[r], t["next_state"])
        assert batch.dones[r].item() == float(t["done"])
        assert torch.equal(batch.hidden[r], t["hidden"].reshape(-1))
        assert torch.equal(batch.next_hidden[r], t["next_hidden"])


def new_buffer(capacity: int) -> ReplayBuffer:
    return ReplayBuffer(capacity, STATE, ACTION, HIDDEN)


def test_round_trip_returns_exactly_stored_transitions():
    torch.manual_seed(0)
    buffer = new_buffer(50)
    fill(buffer, range(20))
    assert len(buffer) == 20
    seen = set()
    for _ in range(10):
        batch = buffer.sample(16)
        assert isinstance(batch, Batch)
        widths = (STATE, ACTION, 1, STATE, 1, HIDDEN, HIDDEN)
        for field, width in zip(batch.transitions(), widths, strict=True):
            assert field.shape == (16, width)
            assert field.dtype == torch.float32
        assert_batch_consistent(batch, set(range(20)))
        seen.update(ids_of(batch))
    assert len(seen) > 15  # sampling really spreads over the stored rows


def test_discrete_action_index_is_stored_exactly():
    torch.manual_seed(0)
    buffer = ReplayBuffer(8, 2, 1, 3)
    for i in range(4):
        buffer.add(
            torch.tensor([float(i), 0.0]),
            torch.tensor(i + 5),  # an int64 action index, 0-d
            0.0,
            torch.zeros(2),
            False,
            torch.zeros(3),
            torch.zeros(3),
        )
    batch = buffer.sample(4)
    assert batch.actions.shape == (4, 1)
    assert torch.equal(batch.actions[:, 0], batch.states[:, 0] + 5)


def test_sampled_batch_is_a_copy():
    torch.manual_seed(0)
    buffer = new_buffer(10)
    fill(buffer, range(5))
    before = buffer.state_dict()["transitions"].clone()
    batch = buffer.sample(5)
    batch.states.add_(1.0)
    batch.hidden.zero_()
    assert torch.equal(buffer.state_dict()["transitions"], before)


def test_ring_wraps_around_keeping_newest_capacity_transitions():
    torch.manual_seed(0)
    buffer = new_buffer(5)
    fill(buffer, range(12))
    assert len(buffer) == 5
    newest = set(range(7, 12))
    seen = set()
    for _ in range(40):
        batch = buffer.sample(5)
        assert_batch_consistent(batch, newest)
        seen.update(ids_of(batch))
    assert seen == newest
    rows = buffer.state_dict()["transitions"]
    assert torch.equal(rows, torch.stack([expected_row(i) for i in range(7, 12)]))


def add_batch(buffer: ReplayBuffer, ids) -> None:
    """Transitions `ids` in one `add_batch` call: rewards and dones as `(n,)` vectors."""
    ts = [transition(i) for i in ids]
    buffer.add_batch(
        torch.stack([t["state"] for t in ts]),
        torch.stack([t["action"] for t in ts]),
        torch.tensor([t["reward"] for t in ts]),
        torch.stack([t["next_state"] for t in ts]),
        torch.tensor([t["done"] for t in ts]),
        torch.cat([t["hidden"] for t in ts]),
        torch.stack([t["next_hidden"] for t in ts]),
    )


@pytest.mark.parametrize(
    "before, batch, capacity",
    [(0, 3, 5), (2, 3, 5), (3, 4, 5), (4, 6, 5), (1, 12, 5), (0, 5, 5)],
    ids=["fits", "fills-exactly", "wraps", "wraps-full", "more-than-capacity", "all"],
)
def test_add_batch_equals_adding_one_by_one(before, batch, capacity):
    one_by_one, batched = new_buffer(capacity), new_buffer(capacity)
    fill(one_by_one, range(before + batch))
    fill(batched, range(before))
    add_batch(batched, range(before, before + batch))
    assert len(batched) == len(one_by_one) == min(before + batch, capacity)
    assert batched.position == one_by_one.position
    assert torch.equal(batched.storage, one_by_one.storage)
    newest = range(max(0, before + batch - capacity), before + batch)
    rows = batched.state_dict()["transitions"]
    assert torch.equal(rows, torch.stack([expected_row(i) for i in newest]))
    # And the next single add lands where it would have.
    one_by_one.add(**transition(99))
    batched.add(**transition(99))
    assert torch.equal(batched.storage, one_by_one.storage)


def test_add_batch_takes_integer_actions_and_rejects_wrong_widths():
    buffer = ReplayBuffer(4, 2, 1, 3)
    buffer.add_batch(
        torch.zeros(2, 2),
        torch.tensor([[3], [1]]),  # discrete action indices, int64
        torch.zeros(2, 1),
        torch.zeros(2, 2),
        torch.tensor([True, False]),
        torch.zeros(2, 3),
        torch.zeros(2, 3),
    )
    assert buffer.storage[:2, 2].tolist() == [3.0, 1.0]
    assert buffer.storage[:2, 6].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="values per row"):
        buffer.add_batch(*(torch.zeros(2, 1),) * 7)
    assert len(buffer) == 2


def test_add_rejects_a_wrong_width_field_and_writes_nothing():
    buffer = new_buffer(2)
    fill(buffer, range(2))
    before = buffer.storage.clone()
    wrong = {**transition(5), "hidden": torch.zeros(1)}  # would broadcast if written
    with pytest.raises(ValueError, match="values"):
        buffer.add(**wrong)
    assert torch.equal(buffer.storage, before) and buffer.position == 0


def test_exactly_full_buffer_keeps_everything():
    buffer = new_buffer(4)
    fill(buffer, range(4))
    assert len(buffer) == 4
    rows = buffer.state_dict()["transitions"]
    assert torch.equal(rows, torch.stack([expected_row(i) for i in range(4)]))


def test_state_dict_holds_only_filled_rows():
    buffer = new_buffer(100_000)
    fill(buffer, range(3))
    rows = buffer.state_dict()["transitions"]
    assert rows.shape == (3, WIDTH)
    assert rows.numel() * rows.element_size() < 1_000
    assert torch.equal(rows, torch.stack([expected_row(i) for i in range(3)]))
    empty = new_buffer(100_000).state_dict()["transitions"]
    assert empty.shape == (0, WIDTH)


@pytest.mark.parametrize("n_added", [0, 3, 6, 7, 13, 20])
def test_load_state_dict_restores_contents_in_insertion_order(n_added):
    source = new_buffer(6)
    fill(source, range(n_added))
    restored = new_buffer(6)
    fill(restored, range(500, 504))  # stale contents must be replaced
    restored.load_state_dict(source.state_dict())

    kept = list(range(max(0, n_added - 6), n_added))
    assert len(restored) == len(source) == len(kept)
    rows = restored.state_dict()["transitions"]
    assert torch.equal(rows, source.state_dict()["transitions"])
    if kept:
        assert torch.equal(rows, torch.stack([expected_row(i) for i in kept]))

    # both keep evolving identically: the restored write position is the right one
    fill(source, range(900, 903))
    fill(restored, range(900, 903))
    assert torch.equal(restored.state_dict()["transitions"], source.state_dict()["transitions"])
    if len(restored) >= 1:
        torch.manual_seed(3)
        assert_batch_consistent(restored.sample(len(restored)), set(kept) | {900, 901, 902})


def test_load_state_dict_into_smaller_buffer_keeps_most_recent():
    source = new_buffer(10)
    fill(source, range(8))
    small = new_buffer(3)
    small.load_state_dict(source.state_dict())
    assert len(small) == 3
    assert torch.equal(
        small.state_dict()["transitions"], torch.stack([expected_row(i) for i in (5, 6, 7)])
    )
    fill(small, [50])
    assert torch.equal(
        small.state_dict()["transitions"], torch.stack([expected_row(i) for i in (6, 7, 50)])
    )


def test_load_state_dict_rejects_wrong_width():
    buffer = new_buffer(5)
    with pytest.raises(ValueError, match="shape"):
        buffer.load_state_dict({"transitions": torch.zeros(2, WIDTH + 1)})


def test_sampling_more_than_size_raises():
    buffer = new_buffer(10)
    with pytest.raises(ValueError):
        buffer.sample(1)
    fill(buffer, range(4))
    with pytest.raises(ValueError, match="4"):
        buffer.sample(5)
    assert buffer.sample(4).states.shape == (4, STATE)


@pytest.mark.parametrize("name", ["capacity", "state_dim", "action_dim", "hidden_dim"])
@pytest.mark.parametrize("value", [0, -1])
def test_non_positive_sizes_raise(name, value):
    sizes = {"capacity": 10, "state_dim": 3, "action_dim": 2, "hidden_dim": 4, name: value}
    with pytest.raises(ValueError, match=name):
        ReplayBuffer(**sizes)


def test_seeded_sampling_is_reproducible():
    buffer = new_buffer(64)
    fill(buffer, range(40))
    torch.manual_seed(123)
    first = buffer.sample(16)
    torch.manual_seed(123)
    second = buffer.sample(16)
    for a, b in zip(first.transitions(), second.transitions(), strict=True):
        assert torch.equal(a, b)
    torch.manual_seed(124)
    third = buffer.sample(16)
    assert ids_of(third) != ids_of(first)

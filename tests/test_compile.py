"""`NeuroFlow.compile`: the same agent, run through `torch.compile`.

The compiled update is checked against the float64 reference SAC in
`tests/test_update_reference.py`; here, acting and a whole training run.
"""

import pytest
import torch
from torch._dynamo.utils import counters

from velora.models import NeuroFlow


@pytest.mark.parametrize(
    "env_id, noise",
    [
        ("Pendulum-v1", "white"),
        ("Pendulum-v1", "pink"),
        ("CartPole-v1", "white"),
        ("CartPole-v1", "pink"),
    ],
)
def test_compiled_acting_draws_the_same_actions(env_id, noise):
    eager = NeuroFlow(env_id, 8, 16, buffer_size=100, seed=3, exploration_noise=noise)
    compiled = NeuroFlow(env_id, 8, 16, buffer_size=100, seed=3, exploration_noise=noise).compile()
    assert compiled.compile() is compiled
    states = torch.randn(5, eager.actor.wiring.in_features)
    hidden = torch.randn(5, eager.actor.hidden_size)
    for deterministic in (True, False):
        torch.manual_seed(9)
        expected = eager.act(states, hidden, deterministic=deterministic)
        torch.manual_seed(9)
        actual = compiled.act(states, hidden, deterministic=deterministic)
        # The same draws from the eager generator; only float rounding may differ.
        if eager.head.kind == "discrete":
            assert torch.equal(actual[0], expected[0])
        else:
            torch.testing.assert_close(actual[0], expected[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(actual[1], expected[1], rtol=1e-5, atol=1e-6)
    # A second call reuses the compiled code: nothing recompiles for the same shapes.
    frames = counters["frames"]["total"]
    compiled.act(states, hidden, deterministic=False)
    assert counters["frames"]["total"] == frames
    # Other batch sizes (n_envs, predict) compile at most twice more: once for one row
    # (PyTorch specialises size 1) and once with a dynamic batch for all others.
    for rows in (1, 2, 7, 12):
        batch = (states[:1].expand(rows, -1), hidden[:1].expand(rows, -1))
        torch.manual_seed(rows)
        expected = eager.act(*batch, deterministic=False)
        torch.manual_seed(rows)
        actual = compiled.act(*batch, deterministic=False)
        assert actual[0].shape == expected[0].shape == (rows, eager.head.action_dim)
        torch.testing.assert_close(actual[1], expected[1], rtol=1e-5, atol=1e-6)
    assert counters["frames"]["total"] <= frames + 2


def test_compiled_agent_trains_like_the_eager_one(tmp_path, monkeypatch):
    """A short seeded run: the same episodes and nearly the same losses and weights."""
    monkeypatch.chdir(tmp_path)
    results = []
    for compile_it in (False, True):
        agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=1000, seed=5)
        if compile_it:
            agent.compile()
            torch._dynamo.reset()  # compile afresh, whatever ran before in this process
            counters.clear()
        summary = agent.train(16, n_episodes=3, warmup_steps=32, display_count=100)
        results.append((agent, summary))
    (eager, eager_summary), (compiled, summary) = results
    assert counters["stats"]["unique_graphs"] >= 3  # both update stages and acting ran compiled
    assert summary.steps == eager_summary.steps and summary.episodes == 3
    assert compiled.progress.recent_rewards == eager.progress.recent_rewards
    for (name, p), q in zip(
        compiled.actor.named_parameters(), eager.actor.parameters(), strict=True
    ):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4, msg=name)


def test_compile_without_a_cpp_compiler_is_a_clear_error_up_front(tmp_path, monkeypatch):
    from torch._inductor.cpp_builder import cpp_compiler_search  # inductor caches its search

    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=100, seed=0)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no g++, no clang++
    monkeypatch.delenv("CXX", raising=False)
    cpp_compiler_search.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="needs a C.. compiler"):
            agent.compile()
    finally:
        monkeypatch.undo()
        cpp_compiler_search.cache_clear()
    torch.manual_seed(0)
    states = torch.randn(3, 4)
    # Nothing was half-switched: the agent still acts (eagerly) as before.
    assert agent.act(states, None, deterministic=True)[0].shape == (3, 1)


@pytest.mark.parametrize(("critic_history", "n_steps"), [("none", 1), ("own", 1), ("own", 3)])
def test_compiled_sequence_updates_match_eager_and_compile_once(tmp_path, critic_history, n_steps):
    """Sequence replay keeps every window position (weighted), so each update has the
    same shapes: the compiled unroll (and the critics' memory) runs every update
    without recompiling, with n-step returns looking ahead too."""
    trained = NeuroFlow(
        "Pendulum-v1",
        8,
        16,
        buffer_size=1000,
        seed=2,
        critic_history=critic_history,
        n_steps=n_steps,
    )
    trained.train(
        16,
        n_episodes=2,
        warmup_steps=64,
        sequence_length=4,
        burn_in=1,
        db_path=str(tmp_path / "m.db"),
    )
    trained.save(tmp_path / "agent", buffer=True)
    eager = NeuroFlow.load(tmp_path / "agent", buffer=True)
    compiled = NeuroFlow.load(tmp_path / "agent", buffer=True).compile()
    torch._dynamo.reset()
    frames = None
    for step in range(4):
        losses = []
        for agent in (eager, compiled):
            torch.manual_seed(step)  # the same windows and the same policy noise
            losses.append(agent.update(16, sequence_length=4, burn_in=1))
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-5)
        if step == 0:
            frames = counters["frames"]["total"]
    assert counters["frames"]["total"] == frames  # later windows reuse the compiled code
    for module in ("actor", "critic_memory") if critic_history == "own" else ("actor",):
        for (name, p), q in zip(
            getattr(compiled, module).named_parameters(),
            getattr(eager, module).parameters(),
            strict=True,
        ):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=f"{module}.{name}")

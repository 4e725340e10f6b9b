"""NeuroFlow agents on real Gymnasium envs: heads, input checks, predict, config, update."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces
from pydantic import BaseModel
from sqlmodel import Session, select

from velora.callbacks import EarlyStopping
from velora.metrics import Experiment, get_db_engine
from velora.models import AgentConfig, NeuroFlow, NeuroFlowCT

TINY = {"actor_neurons": 8, "critic_neurons": 16, "buffer_size": 10_000}
# The action space of the `box_env_id` fixture (see conftest.py).
BOX_SPACE = spaces.Box(
    low=np.array([-2.0, 0.0], dtype=np.float32),
    high=np.array([5.0, 10.0], dtype=np.float32),
    dtype=np.float32,
)

# --------------------------------------------------------------------------- heads


@pytest.mark.parametrize("train_mode", [False, True])
def test_box_actions_are_inside_bounds_other_than_unit(box_env_id, train_mode):
    agent = NeuroFlow(box_env_id, **TINY, seed=0)
    low = torch.as_tensor(BOX_SPACE.low)
    high = torch.as_tensor(BOX_SPACE.high)
    # Random states well beyond the observation box push the policy to its extremes.
    states = torch.randn(512, 3) * 5.0
    actions, hidden = agent.predict(states, train_mode=train_mode)
    assert actions.shape == (512, 2)
    assert actions.dtype == torch.float32
    assert torch.all(actions >= low) and torch.all(actions <= high)
    # The actions are rescaled to the space, not left in [-1, 1]: the second dimension's
    # range is [0, 10], centred on 5.
    assert (actions[:, 1] > 1.0).any()
    # The env (which checks `action_space.contains`) accepts each of them.
    agent.eval_env.reset(seed=0)
    for action in actions[:20]:
        assert BOX_SPACE.contains(action.numpy())
        agent.eval_env.step(action)


def test_box_actions_from_unbatched_predict_step_the_env(box_env_id):
    agent = NeuroFlow(box_env_id, **TINY, seed=1)
    state, _ = agent.eval_env.reset(seed=1)
    hidden = None
    for _ in range(8):
        action, hidden = agent.predict(state, hidden, train_mode=True)
        assert action.shape == (2,)
        assert BOX_SPACE.contains(action.numpy())
        state, *_ = agent.eval_env.step(action)


def test_deterministic_predict_is_repeatable(box_env_id):
    agent = NeuroFlow(box_env_id, **TINY, seed=0)
    states = torch.randn(16, 3)
    hidden = torch.randn(16, agent.actor.hidden_size)
    a1, h1 = agent.predict(states, hidden)
    a2, h2 = agent.predict(states, hidden)
    assert torch.equal(a1, a2)
    assert torch.equal(h1, h2)


def test_stochastic_predict_varies(box_env_id):
    agent = NeuroFlow(box_env_id, **TINY, seed=0)
    states = torch.randn(16, 3)
    a1, _ = agent.predict(states, train_mode=True)
    a2, _ = agent.predict(states, train_mode=True)
    assert not torch.equal(a1, a2)


@pytest.mark.parametrize("train_mode", [False, True])
def test_discrete_actions_respect_start(discrete_env_id, train_mode):
    agent = NeuroFlow(discrete_env_id, **TINY, seed=0)
    assert agent.config.action_type == "discrete"
    states = torch.randn(500, 3) * 3.0
    actions, _ = agent.predict(states, train_mode=train_mode)
    assert actions.shape == (500,)
    assert set(actions.tolist()) <= {-1, 0, 1}
    if train_mode:
        # 500 samples from a freshly initialised categorical policy cover every action,
        # the shifted -1 included.
        assert set(actions.tolist()) == {-1, 0, 1}
    agent.eval_env.reset(seed=0)
    for action in actions[:20]:
        assert agent.env.unwrapped.action_space.contains(action.numpy())
        agent.eval_env.step(action)


@pytest.mark.parametrize(
    "env_id, kind", [("CartPole-v1", "discrete"), ("InvertedPendulum-v5", "continuous")]
)
def test_head_is_picked_from_the_action_space(env_id, kind):
    agent = NeuroFlow(env_id, **TINY, seed=0)
    assert agent.config.action_type == kind
    assert agent.head.kind == kind


def test_neuroflow_ct_refuses_discrete_env():
    with pytest.raises(ValueError, match=r"(?i)box.*discrete|discrete.*box"):
        NeuroFlowCT("CartPole-v1", **TINY)


def test_neuroflow_ct_accepts_box_env():
    agent = NeuroFlowCT("InvertedPendulum-v5", **TINY, seed=0)
    assert agent.config.action_type == "continuous"
    assert agent.config.agent == "NeuroFlowCT"
    state, _ = agent.eval_env.reset(seed=0)
    action, _ = agent.predict(state)
    agent.eval_env.step(action)


# ----------------------------------------------------------------------- bad input


def test_unknown_env_id_suggests_close_id():
    with pytest.raises(ValueError, match="CartPol-v1") as info:
        NeuroFlow("CartPol-v1", **TINY)
    assert "CartPole-v1" in str(info.value)


@pytest.mark.parametrize(
    "fixture, name", [("multidiscrete_env_id", "MultiDiscrete"), ("dict_env_id", "Dict")]
)
def test_unsupported_action_spaces_rejected(request, fixture, name):
    env_id = request.getfixturevalue(fixture)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        NeuroFlow(env_id, **TINY)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"actor_neurons": 0}, "actor_neurons"),
        ({"actor_neurons": -4}, "actor_neurons"),
        ({"critic_neurons": 0}, "critic_neurons"),
        ({"critic_neurons": -1}, "critic_neurons"),
        ({"buffer_size": 0}, "buffer_size"),
        ({"buffer_size": -10}, "buffer_size"),
    ],
)
def test_non_positive_sizes_rejected(kwargs, name):
    with pytest.raises(ValueError, match=name):
        NeuroFlow("CartPole-v1", **{**TINY, **kwargs})


def _experiment_count() -> int:
    if not Path("metrics.db").exists():
        return 0
    with Session(get_db_engine("metrics.db")) as session:
        return len(session.exec(select(Experiment)).all())


@pytest.mark.parametrize(
    "batch_size, kwargs, name",
    [
        (0, {}, "batch_size"),
        (-8, {}, "batch_size"),
        (20_000, {}, "batch_size"),  # larger than the buffer
        (16, {"n_episodes": 0}, "n_episodes"),
        (16, {"n_episodes": -3}, "n_episodes"),
        (16, {"warmup_steps": -1}, "warmup_steps"),
    ],
)
def test_bad_train_arguments_rejected_before_training(batch_size, kwargs, name):
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    with pytest.raises(ValueError, match=name):
        agent.train(batch_size, max_steps=5, **kwargs)
    assert agent.steps_done == 0 and agent.episodes_done == 0
    assert len(agent.buffer) == 0
    assert _experiment_count() == 0


def test_early_stopping_patience_must_be_positive():
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(target=15.0, patience=0)


def test_predict_rejects_wrong_state_shape():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    with pytest.raises(ValueError, match=r"state.*\(4,\)"):
        agent.predict(torch.zeros(3))
    with pytest.raises(ValueError, match="state"):
        agent.predict(torch.zeros(2, 5))


def test_predict_rejects_wrong_hidden_shape():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    size = agent.actor.hidden_size
    with pytest.raises(ValueError, match="hidden"):
        agent.predict(torch.zeros(4), torch.zeros(size + 1))
    with pytest.raises(ValueError, match="hidden"):
        agent.predict(torch.zeros(3, 4), torch.zeros(2, size))


# -------------------------------------------------------------------------- predict


def test_predict_shapes_discrete():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    size = agent.actor.hidden_size
    state, _ = agent.eval_env.reset(seed=0)
    action, hidden = agent.predict(state)
    assert action.shape == ()
    assert hidden.shape == (size,)
    agent.eval_env.step(action)

    action, hidden = agent.predict(torch.zeros(5, 4))
    assert action.shape == (5,) and hidden.shape == (5, size)
    action, hidden = agent.predict(torch.zeros(1, 4))
    assert action.shape == (1,) and hidden.shape == (1, size)

    action, hidden = agent.predict(np.zeros(4, dtype=np.float64))
    assert action.shape == () and hidden.shape == (size,)
    action, hidden = agent.predict(np.zeros((3, 4), dtype=np.float32))
    assert action.shape == (3,) and hidden.shape == (3, size)


def test_predict_shapes_continuous(box_env_id):
    agent = NeuroFlow(box_env_id, **TINY, seed=0)
    size = agent.actor.hidden_size
    action, hidden = agent.predict(torch.zeros(3))
    assert action.shape == (2,) and hidden.shape == (size,)
    action, hidden = agent.predict(torch.zeros(5, 3))
    assert action.shape == (5, 2) and hidden.shape == (5, size)
    action, hidden = agent.predict(torch.zeros(1, 3))
    assert action.shape == (1, 2) and hidden.shape == (1, size)
    action, hidden = agent.predict(np.ones(3))
    assert action.shape == (2,) and hidden.shape == (size,)


def test_hidden_state_changes_outputs(box_env_id):
    agent = NeuroFlow(box_env_id, **TINY, seed=0)
    state = torch.tensor([0.5, -0.3, 0.8])
    action0, hidden1 = agent.predict(state)
    assert hidden1.abs().sum() > 0
    # Fed back, the hidden state changes the next action and hidden versus a zero start.
    action_fed, hidden_fed = agent.predict(state, hidden1)
    action_zero, hidden_zero = agent.predict(state, torch.zeros_like(hidden1))
    assert torch.equal(action_zero, action0)
    assert not torch.equal(action_fed, action_zero)
    assert not torch.equal(hidden_fed, hidden_zero)


# --------------------------------------------------------------- config and params


def test_config_is_pydantic_and_round_trips_json():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=3)
    config = agent.config
    assert isinstance(config, BaseModel)
    text = config.model_dump_json()
    data = json.loads(text)
    assert data["env_id"] == "CartPole-v1"
    assert data["actor_neurons"] == 8 and data["critic_neurons"] == 16
    assert data["seed"] == 3
    assert AgentConfig.model_validate_json(text) == config
    assert type(config).model_validate_json(text).model_dump_json() == text


def test_sparse_networks_have_fewer_active_params():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    assert 0 < agent.active_params < agent.total_params


# --------------------------------------------------------------------------- update


def _fill_buffer(agent: NeuroFlow, n: int) -> None:
    """Random-policy transitions from the agent's own env, with the actor's hidden."""
    obs, _ = agent.env.reset(seed=agent.seed)
    hidden = agent.actor.initial_hidden(1)
    for _ in range(n):
        action = agent.head.random_action(1, agent.device)
        with torch.no_grad():
            _, next_hidden = agent.actor(obs.unsqueeze(0), hidden)
        next_obs, reward, terminated, truncated, _ = agent.env.step(agent.head.to_env(action)[0])
        agent.buffer.add(obs, action, reward, next_obs, terminated, hidden, next_hidden)
        obs, hidden = next_obs, next_hidden
        if terminated or truncated:
            obs, _ = agent.env.reset()
            hidden = agent.actor.initial_hidden(1)


def _snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(b, p) for b, p in zip(before, module.parameters(), strict=True))


@pytest.mark.parametrize("env_id", ["CartPole-v1", "InvertedPendulum-v5"])
def test_update_changes_every_part(env_id):
    tau = 0.05
    agent = NeuroFlow(env_id, **TINY, tau=tau, seed=0)
    _fill_buffer(agent, 64)
    actor, critic = _snapshot(agent.actor), _snapshot(agent.critic)
    target = _snapshot(agent.critic_target)
    log_alpha = agent.log_alpha.detach().clone()

    losses = agent.update(32)

    assert losses.shape == (3,)
    assert torch.isfinite(losses).all()
    assert _changed(actor, agent.actor)
    assert _changed(critic, agent.critic)
    assert not torch.equal(log_alpha, agent.log_alpha.detach())
    assert _changed(target, agent.critic_target)
    # Polyak: new_target = old_target + tau * (new_critic - old_target), for every param.
    for old_t, new_t, new_c in zip(
        target, agent.critic_target.parameters(), agent.critic.parameters(), strict=True
    ):
        expected = old_t + tau * (new_c.detach() - old_t)
        torch.testing.assert_close(new_t.detach(), expected, rtol=1e-5, atol=1e-6)
    assert not any(p.requires_grad for p in agent.critic_target.parameters())
    assert all(math.isfinite(v) for v in losses.tolist())

"""Observation normalisation: running statistics inside the agent, updated only while
training, applied wherever the networks see an observation, saved with the agent."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from velora.models import NeuroFlow
from velora.nn import ObservationNormalizer
from velora.training import evaluate_policy

TINY = {"actor_neurons": 8, "critic_neurons": 16, "buffer_size": 5000}


def merged_with_prior(seen: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Count, mean and variance of everything seen, merged with the normaliser's prior
    (count 1e-4, mean 0, variance 1) in one step: batch order and sizes do not matter."""
    prior, n = 1e-4, len(seen)
    total = n + prior
    mean = seen.mean(axis=0) * n / total
    var = (prior + n * seen.var(axis=0) + seen.mean(axis=0) ** 2 * prior * n / total) / total
    return total, mean, var


def test_running_statistics_equal_those_of_all_batches_seen():
    rng = np.random.default_rng(0)
    normalizer = ObservationNormalizer(3)
    batches = [rng.normal([5.0, -2.0, 0.0], [3.0, 0.5, 1e-3], (n, 3)) for n in (1, 7, 64, 2)]
    for batch in batches:
        normalizer.update(torch.as_tensor(batch, dtype=torch.float32))
    seen = np.concatenate([b.astype(np.float32) for b in batches]).astype(np.float64)
    count, mean, var = merged_with_prior(seen)
    assert normalizer.count.item() == pytest.approx(count, rel=1e-12)
    assert normalizer.mean.numpy() == pytest.approx(mean, rel=1e-9)
    assert normalizer.var.numpy() == pytest.approx(var, rel=1e-9)

    x = torch.tensor([[5.0, -2.0, 0.0], [100.0, -2.5, 0.0]])
    expected = (x.double() - normalizer.mean) / torch.sqrt(normalizer.var + 1e-8)
    assert torch.allclose(normalizer(x), expected.clamp(-10, 10).float())
    assert normalizer(x)[1, 0] == 10.0  # clipped


def test_training_counts_every_observation_acted_on_and_nothing_else(tmp_path):
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0, normalize_obs=True)
    agent.train(16, n_episodes=5, db_path=str(tmp_path / "m.db"))
    # Every observation acted on is a buffer row's `states`, and nothing else was counted.
    states = agent.buffer.storage[: len(agent.buffer), :4].double().numpy()
    count, mean, var = merged_with_prior(states)
    norm = agent.obs_norm
    assert len(states) == agent.steps_done
    assert norm.count.item() == pytest.approx(count, rel=1e-12)
    assert norm.mean.numpy() == pytest.approx(mean, rel=1e-9)
    assert norm.var.numpy() == pytest.approx(var, rel=1e-9)

    frozen = {k: v.clone() for k, v in norm.state_dict().items()}
    evaluate_policy(agent, 2, seed=123)
    agent.predict(np.zeros(4, dtype=np.float32))
    for key, value in norm.state_dict().items():
        assert torch.equal(value, frozen[key]), key


def test_vector_envs_count_every_sub_env(tmp_path):
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0, normalize_obs=True)
    agent.train(16, n_episodes=4, n_envs=3, db_path=str(tmp_path / "m.db"))
    assert agent.obs_norm.count.item() == pytest.approx(agent.steps_done + 1e-4)


def test_the_networks_see_normalized_observations(tmp_path):
    agent = NeuroFlow("InvertedPendulum-v5", **TINY, seed=0, normalize_obs=True)
    agent.train(16, n_episodes=3, db_path=str(tmp_path / "m.db"))
    obs = torch.tensor([[0.1, -0.2, 0.3, 0.05]])
    action, hidden = agent.predict(obs)
    with torch.no_grad():
        output, expected_hidden = agent.actor(agent.obs_norm(obs), None)
        _, raw_hidden = agent.actor(obs, None)
    assert torch.allclose(hidden, expected_hidden, atol=1e-6)
    assert torch.allclose(action, agent.head.to_env(agent.head.act(output, True)))
    assert not torch.allclose(hidden, raw_hidden, atol=1e-3)  # the statistics do change the input

    seen = []

    class Recording(NeuroFlow):
        def critic_loss(self, batch, output):
            seen.append((batch.states.clone(), batch.next_states.clone()))
            return super().critic_loss(batch, output)

    recording = Recording("InvertedPendulum-v5", **TINY, seed=0, normalize_obs=True)
    recording.train(16, n_episodes=8, warmup_steps=16, db_path=str(tmp_path / "m.db"))
    norm, raw = recording.obs_norm, recording.buffer.storage[: len(recording.buffer)]
    scale = torch.sqrt(norm.var + 1e-8).float()
    states, next_states = seen[-1]
    # Undoing the (final) normalisation gives back rows of the buffer's raw observations.
    for normalized, columns in ((states, slice(0, 4)), (next_states, slice(6, 10))):
        restored = (normalized * scale + norm.mean.float()).double()
        gaps = restored[:, None, :] - raw[None, :, columns].double()
        distance = gaps.abs().amax(dim=-1).min(dim=1).values
        assert distance.max() < 1e-4


def test_statistics_are_saved_in_the_model_state(tmp_path):
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0, normalize_obs=True)
    agent.train(16, n_episodes=3, db_path=str(tmp_path / "m.db"))
    agent.save(tmp_path / "agent")
    tensors = load_file(tmp_path / "agent" / "model_state.safetensors")
    assert torch.equal(tensors["obs_norm.mean"], agent.obs_norm.mean)
    loaded = NeuroFlow.load(tmp_path / "agent")
    assert loaded.config.normalize_obs
    for key, value in agent.obs_norm.state_dict().items():
        assert torch.equal(loaded.obs_norm.state_dict()[key], value), key
    obs = np.array([0.01, 0.2, -0.03, 0.1], dtype=np.float32)
    assert torch.equal(loaded.predict(obs)[1], agent.predict(obs)[1])

    plain = NeuroFlow("CartPole-v1", **TINY, seed=0)
    plain.save(tmp_path / "plain")
    keys = load_file(tmp_path / "plain" / "model_state.safetensors").keys()
    assert plain.obs_norm is None and not any(k.startswith("obs_norm") for k in keys)
    assert NeuroFlow.load(tmp_path / "plain").obs_norm is None


def test_normalize_obs_must_be_a_bool():
    with pytest.raises(ValueError, match="normalize_obs must be True or False"):
        NeuroFlow("CartPole-v1", **TINY, normalize_obs="yes")

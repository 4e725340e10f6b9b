"""ONNX export: the file acts as `predict` does, over whole episodes, in onnxruntime."""

import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from velora.export import onnx as onnx_export
from velora.models import NeuroFlow

TINY = {"actor_neurons": 12, "critic_neurons": 16, "buffer_size": 2000}


def trained(env_id: str, tmp_path, **kwargs) -> NeuroFlow:
    agent = NeuroFlow(env_id, **TINY, seed=0, **kwargs)
    agent.train(16, n_episodes=4, warmup_steps=16, db_path=str(tmp_path / "m.db"))
    return agent


def session(path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def play_both(agent: NeuroFlow, runtime, episodes: int = 2) -> int:
    """Whole deterministic episodes stepped by `predict`, with the file fed the same
    observations and its own hidden state; returns the steps compared."""
    steps = 0
    for episode in range(episodes):
        obs, _ = agent.eval_env.reset(seed=100 + episode)
        hidden, file_hidden = None, np.zeros((1, agent.actor.hidden_size), np.float32)
        done = False
        while not done:
            action, hidden = agent.predict(obs, hidden)
            feeds = {"obs": obs.cpu().numpy()[None].astype(np.float32), "hidden": file_hidden}
            file_action, file_hidden = runtime.run(["action", "next_hidden"], feeds)
            if agent.config.action_type == "discrete":
                assert file_action.dtype == np.int64 and file_action.shape == (1,)
                assert file_action[0] == action.item()
            else:
                assert file_action.shape == (1, action.shape[-1])
                np.testing.assert_allclose(file_action[0], action.numpy(), rtol=0, atol=1e-5)
            np.testing.assert_allclose(file_hidden[0], hidden.numpy(), rtol=0, atol=1e-5)
            obs, _, terminated, truncated, _ = agent.eval_env.step(action)
            done = terminated or truncated
            steps += 1
    return steps


@pytest.mark.parametrize("normalize_obs", [False, True], ids=["raw", "normalized"])
@pytest.mark.parametrize("env_id", ["CartPole-v1", "InvertedPendulum-v5"])
def test_the_file_acts_as_predict_over_whole_episodes(env_id, normalize_obs, tmp_path):
    agent = trained(env_id, tmp_path, normalize_obs=normalize_obs)
    path = agent.export(tmp_path / "policy.onnx")
    assert play_both(agent, session(path)) > 2

    agent.save(tmp_path / "saved")
    loaded = NeuroFlow.load(tmp_path / "saved")
    again = loaded.export(tmp_path / "again.onnx")
    assert play_both(loaded, session(again)) > 2
    assert play_both(loaded, session(path)) > 2  # the first file, the loaded agent

    properties = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert properties["env_id"] == env_id
    assert properties["normalize_obs"] == str(normalize_obs).lower()
    assert properties["episodes_trained"] == "4"


def test_batches_and_the_spaces_mapping(discrete_env_id, box_env_id, tmp_path):
    for env_id in (discrete_env_id, box_env_id):
        agent = trained(env_id, tmp_path, normalize_obs=True)
        runtime = session(agent.export(tmp_path / f"{env_id}.onnx"))
        obs = np.random.default_rng(0).uniform(-1, 1, (6, 3)).astype(np.float32)
        hidden = np.random.default_rng(1).uniform(-1, 1, (6, agent.actor.hidden_size))
        hidden = hidden.astype(np.float32)
        action, next_hidden = runtime.run(None, {"obs": obs, "hidden": hidden})
        expected, expected_hidden = agent.predict(obs, torch.as_tensor(hidden))
        np.testing.assert_allclose(next_hidden, expected_hidden.numpy(), atol=1e-5)
        if env_id == discrete_env_id:  # Discrete(3, start=-1)
            assert action.tolist() == expected.tolist()
            assert set(action.tolist()) <= {-1, 0, 1}
        else:  # Box([-2, 0], [5, 10])
            np.testing.assert_allclose(action, expected.numpy(), atol=1e-5)
            assert (action >= [-2, 0]).all() and (action <= [5, 10]).all()


@pytest.mark.parametrize("mode", ["no_gate", "pure"])
def test_every_cell_mode_exports(mode, tmp_path):
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    command = agent.actor.command
    agent.actor.command = type(command)(
        command.in_features, command.hidden_size, command.heads.mask[: command.hidden_size],
        mode=mode,
    )  # fmt: skip
    assert play_both(agent, session(agent.export(tmp_path / "p.onnx")), episodes=1) > 2


def test_an_existing_file_needs_overwrite_and_a_failed_check_writes_nothing(tmp_path, monkeypatch):
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    path = tmp_path / "policy.onnx"
    path.write_text("keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        agent.export(path)
    assert path.read_text() == "keep me"

    def disagree(*args):
        raise RuntimeError("the exported action differs")

    monkeypatch.setattr(onnx_export, "_check", disagree)
    with pytest.raises(RuntimeError, match="differs"):
        agent.export(path, overwrite=True)
    assert path.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.onnx"]  # no leftovers
    monkeypatch.undo()
    agent.export(path, overwrite=True)
    assert session(path).get_inputs()[0].name == "obs"


def test_a_mode_that_cannot_be_exported_and_a_missing_extra_are_clear_errors(tmp_path, monkeypatch):
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    monkeypatch.setattr(onnx_export, "EXPORTABLE_CELL_MODES", ("no_gate",))
    with pytest.raises(ValueError, match="cell mode 'default' cannot be exported"):
        agent.export(tmp_path / "p.onnx")
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r'pip install "velora\[export\]"'):
        agent.export(tmp_path / "p.onnx")
    assert not (tmp_path / "p.onnx").exists()

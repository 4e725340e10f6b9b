"""`NeuroFlow.save` / `NeuroFlow.load`: exact round trips, exact resume, safety and atomicity.

Every test runs in its own temp dir: training writes `metrics.db` into the working dir.
"""

import json
import math
import os
import sqlite3
import struct
import sys
from pathlib import Path

import pytest
import torch

import velora.models.persistence as persistence
from velora.models import NeuroFlow, NeuroFlowCT
from velora.models.persistence import SaveError

BATCH = 16
SMALL = {"buffer_size": 5_000}
SAVE_FILES = {"metadata.json", "model_state.safetensors", "optim_state.safetensors"}


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_agent(env_id="CartPole-v1", cls=NeuroFlow, seed=7, **kwargs):
    return cls(env_id, 8, 16, seed=seed, **{**SMALL, **kwargs})


def train(agent, n_episodes, max_steps=1000):
    return agent.train(
        BATCH, n_episodes=n_episodes, max_steps=max_steps, display_count=1_000, log_freq=2
    )


def states_for(agent, n=6, seed=123):
    gen = torch.Generator().manual_seed(seed)
    obs_dim = agent.env.observation_space.shape[0]
    return torch.randn(n, obs_dim, generator=gen)


def hidden_for(agent, n=6, seed=321):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, agent.actor.hidden_size, generator=gen)


def rollout(agent, states, hidden, *, train_mode, torch_seed=None):
    """Three chained `predict` calls, feeding the hidden state back."""
    if torch_seed is not None:
        torch.manual_seed(torch_seed)
    outputs = []
    h = hidden
    for _ in range(3):
        action, h = agent.predict(states, h, train_mode=train_mode)
        outputs.append((action.clone(), h.clone()))
    single_action, single_hidden = agent.predict(states[0], hidden[0], train_mode=train_mode)
    outputs.append((single_action.clone(), single_hidden.clone()))
    return outputs


def assert_same_outputs(left, right):
    assert len(left) == len(right)
    for (a1, h1), (a2, h2) in zip(left, right, strict=True):
        assert a1.dtype == a2.dtype
        assert torch.equal(a1, a2)
        assert torch.equal(h1, h2)


def module_tensors(agent):
    out = {}
    for name, module in agent.state_modules().items():
        for key, value in module.state_dict().items():
            out[f"{name}.{key}"] = value
    out["log_alpha"] = agent.log_alpha.detach()
    return out


def _groups(groups):
    return [
        {k: tuple(v) if isinstance(v, list | tuple) and k != "params" else v for k, v in g.items()}
        for g in groups
    ]


def assert_same_optimizers(a, b):
    for name, optim_a in a.optimizers().items():
        optim_b = b.optimizers()[name]
        assert type(optim_a) is type(optim_b)
        sa, sb = optim_a.state_dict(), optim_b.state_dict()
        assert _groups(sa["param_groups"]) == _groups(sb["param_groups"]), name
        assert sa["state"].keys() == sb["state"].keys(), name
        assert sa["state"], f"{name} has no state: no update happened"
        for index, values in sa["state"].items():
            assert values.keys() == sb["state"][index].keys()
            for key, value in values.items():
                other = sb["state"][index][key]
                if isinstance(value, torch.Tensor):
                    assert torch.equal(value, other), f"{name}.{index}.{key}"
                else:
                    assert value == other, f"{name}.{index}.{key}"


def safetensors_data_offset(path: Path) -> int:
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
    return 8 + header_len


# --------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------

ENVS = [
    pytest.param("CartPole-v1", 3, 1000, id="cartpole-discrete"),
    pytest.param("InvertedPendulum-v5", 12, 1000, id="invertedpendulum-box"),
    pytest.param("Pendulum-v1", 2, 30, id="pendulum-box-2"),
]


@pytest.mark.parametrize("with_buffer", [False, True], ids=["no-buffer", "buffer"])
@pytest.mark.parametrize(("env_id", "episodes", "max_steps"), ENVS)
def test_round_trip_predicts_identically(env_id, episodes, max_steps, with_buffer, tmp_path):
    agent = make_agent(env_id)
    train(agent, episodes, max_steps=max_steps)
    assert agent.steps_done > 2 * BATCH, "no gradient update happened before the save"
    agent.save(tmp_path / "save", buffer=with_buffer)
    loaded = NeuroFlow.load(tmp_path / "save", buffer=with_buffer)

    assert type(loaded) is NeuroFlow
    assert loaded.episodes_done == agent.episodes_done == episodes
    assert loaded.steps_done == agent.steps_done
    assert loaded.experiment_id == agent.experiment_id is not None
    assert loaded.progress == agent.progress
    assert loaded.seed == agent.seed
    assert loaded.config.model_dump(exclude={"device"}) == agent.config.model_dump(
        exclude={"device"}
    )
    for key, value in module_tensors(agent).items():
        assert torch.equal(value, module_tensors(loaded)[key]), key

    states, hidden = states_for(agent), hidden_for(agent)
    # Deterministic: no seeding needed, twice in a row gives the same answer.
    assert_same_outputs(
        rollout(agent, states, hidden, train_mode=False),
        rollout(loaded, states, hidden, train_mode=False),
    )
    # Stochastic: identical after re-seeding torch identically.
    stochastic = rollout(agent, states, hidden, train_mode=True, torch_seed=99)
    assert_same_outputs(stochastic, rollout(loaded, states, hidden, train_mode=True, torch_seed=99))
    # ...and the stochastic path really is stochastic (else the check above proves little).
    other_seed = rollout(agent, states, hidden, train_mode=True, torch_seed=100)
    assert any(not torch.equal(a, b) for (a, _), (b, _) in zip(stochastic, other_seed, strict=True))

    # The loaded agent's actions are valid actions of the env.
    space = loaded.eval_env.action_space
    action, _ = loaded.predict(states[0], train_mode=True)
    assert space.contains(action.cpu().numpy() if action.dim() else int(action))
    if env_id == "Pendulum-v1":
        actions, _ = loaded.predict(states * 50, train_mode=True)
        assert actions.abs().max() <= 2.0

    if with_buffer:
        assert len(loaded.buffer) == len(agent.buffer) == agent.steps_done
        assert loaded.buffer.position == agent.buffer.position
        assert torch.equal(loaded.buffer.storage, agent.buffer.storage)
    else:
        assert len(loaded.buffer) == 0


def test_untrained_agent_round_trip(tmp_path):
    agent = make_agent("Pendulum-v1", cls=NeuroFlowCT)
    agent.save(tmp_path / "fresh")
    loaded = NeuroFlowCT.load(tmp_path / "fresh")
    assert (loaded.episodes_done, loaded.steps_done, loaded.experiment_id) == (0, 0, None)
    states, hidden = states_for(agent), hidden_for(agent)
    assert_same_outputs(
        rollout(agent, states, hidden, train_mode=True, torch_seed=5),
        rollout(loaded, states, hidden, train_mode=True, torch_seed=5),
    )


def test_load_buffer_from_save_without_buffer_is_clear_error(tmp_path):
    agent = make_agent()
    train(agent, 1)
    agent.save(tmp_path / "nobuf")
    with pytest.raises(SaveError, match="buffer"):
        NeuroFlow.load(tmp_path / "nobuf", buffer=True)
    # buffer=False still works
    assert NeuroFlow.load(tmp_path / "nobuf").steps_done == agent.steps_done


# --------------------------------------------------------------------------------------
# Exact resume
# --------------------------------------------------------------------------------------


def episode_rows(db: Path, experiment_id: int) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(
            "SELECT episode_num, reward, length, reward_moving_avg, reward_moving_std, "
            "actor_loss, critic_loss, entropy_loss FROM episode WHERE experiment_id = ? "
            "ORDER BY episode_num, id",
            (experiment_id,),
        ).fetchall()


def same_number(a, b) -> bool:
    if a is None or b is None:  # NaN is stored as NULL
        return a is None and b is None
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("normalize_obs", [False, True], ids=["raw", "normalized"])
def test_resume_from_save_is_exact(tmp_path, normalize_obs):
    n = 4
    a = make_agent(seed=11, normalize_obs=normalize_obs)
    train(a, 2 * n)

    b = make_agent(seed=11, normalize_obs=normalize_obs)
    train(b, n)
    assert b.steps_done > 2 * BATCH, "the first half must get past the warm-up"
    b.save(tmp_path / "half", buffer=True)
    steps_half = b.steps_done
    del b
    resumed = NeuroFlow.load(tmp_path / "half", buffer=True)
    summary = train(resumed, n)

    assert summary.episodes == n
    assert resumed.episodes_done == a.episodes_done == 2 * n
    assert resumed.steps_done == a.steps_done > steps_half
    assert summary.steps == a.steps_done - steps_half
    assert resumed.progress.recent_rewards == a.progress.recent_rewards

    ta, tr = module_tensors(a), module_tensors(resumed)
    assert ta.keys() == tr.keys()
    assert ("obs_norm.mean" in ta) == normalize_obs
    assert any(k.startswith("critic_target.") for k in ta)
    for key in ta:
        assert torch.equal(ta[key], tr[key]), key
    assert_same_optimizers(a, resumed)
    assert torch.equal(a.buffer.storage, resumed.buffer.storage)

    db = tmp_path / "metrics.db"
    assert db.is_file()
    rows_a = episode_rows(db, a.experiment_id)
    rows_r = episode_rows(db, resumed.experiment_id)
    assert resumed.experiment_id != a.experiment_id
    assert [r[0] for r in rows_a] == list(range(1, 2 * n + 1))
    # One experiment, episodes 1..2n, no duplicates: the resumed run continued it.
    assert [r[0] for r in rows_r] == list(range(1, 2 * n + 1))
    with sqlite3.connect(db) as con:
        (n_experiments,) = con.execute("SELECT COUNT(*) FROM experiment").fetchone()
    assert n_experiments == 2
    for row_a, row_r in zip(rows_a[n:], rows_r[n:], strict=True):
        assert all(same_number(x, y) for x, y in zip(row_a, row_r, strict=True)), (row_a, row_r)
    # Losses after the resume are real numbers (updates happened).
    assert all(r[5] is not None and r[6] is not None for r in rows_r[n:])


# --------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------


def test_saved_files_and_config_written_once(tmp_path):
    agent = make_agent()
    parent = tmp_path / "runs"
    agent.save(parent / "first", config=True)
    assert {p.name for p in (parent / "first").iterdir()} == SAVE_FILES
    assert {p.name for p in parent.iterdir()} == {"first", "model_config.json"}
    config_path = parent / "model_config.json"
    first_text = config_path.read_text()
    assert json.loads(first_text) == agent.config.model_dump(mode="json")
    first_mtime = config_path.stat().st_mtime_ns

    train(agent, 2)  # changes agent.config (it now records the train() arguments)
    assert agent.config.train is not None
    agent.save(parent / "second", buffer=True, config=True)
    assert {p.name for p in (parent / "second").iterdir()} == SAVE_FILES | {
        "buffer_state.safetensors"
    }
    assert config_path.read_text() == first_text
    assert config_path.stat().st_mtime_ns == first_mtime
    assert {p.name for p in parent.iterdir()} == {"first", "second", "model_config.json"}

    agent.save(parent / "third")  # config=False: no config anywhere new
    assert {p.name for p in parent.iterdir()} == {
        "first",
        "second",
        "third",
        "model_config.json",
    }

    meta = json.loads((parent / "second" / "metadata.json").read_text())
    assert meta["agent"] == "NeuroFlow"
    assert meta["buffer"]["size"] == agent.steps_done
    assert json.loads((parent / "first" / "metadata.json").read_text())["buffer"] is None


def test_mostly_empty_buffer_saves_small(tmp_path):
    agent = make_agent(buffer_size=100_000)
    gen = torch.Generator().manual_seed(0)
    hidden = agent.actor.hidden_size
    for i in range(200):
        agent.buffer.add(
            torch.randn(4, generator=gen),
            torch.tensor([i % 2]),
            1.0,
            torch.randn(4, generator=gen),
            i % 20 == 19,
            torch.randn(hidden, generator=gen),
            torch.randn(hidden, generator=gen),
        )
    agent.save(tmp_path / "small", buffer=True)
    size = (tmp_path / "small" / "buffer_state.safetensors").stat().st_size
    assert size < 100_000
    loaded = NeuroFlow.load(tmp_path / "small", buffer=True)
    assert loaded.buffer.capacity == 100_000
    assert len(loaded.buffer) == 200
    assert torch.equal(loaded.buffer.storage, agent.buffer.storage)


@pytest.mark.parametrize("make_target", ["empty-dir", "full-save", "file"])
def test_save_into_existing_path_raises(tmp_path, make_target):
    agent = make_agent()
    target = tmp_path / "exists"
    if make_target == "empty-dir":
        target.mkdir()
    elif make_target == "file":
        target.write_text("keep me")
    else:
        agent.save(target)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(FileExistsError):
        agent.save(target, buffer=True, config=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if make_target == "file":
        assert target.read_text() == "keep me"
    if make_target == "full-save":
        assert {p.name for p in target.iterdir()} == SAVE_FILES


# --------------------------------------------------------------------------------------
# Atomicity
# --------------------------------------------------------------------------------------


def failing_after(real, n_ok, exc):
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise exc
        return real(*args, **kwargs)

    return wrapper


FAILURES = [
    pytest.param("save_file", 0, id="first-save_file"),
    pytest.param("save_file", 1, id="second-save_file"),
    pytest.param("save_file", 2, id="buffer-save_file"),
    pytest.param("_sha256", 0, id="sha256"),
    pytest.param("_sha256", 2, id="sha256-last"),
    pytest.param("fsync_path", 2, id="fsync"),
    pytest.param("fsync_path", 4, id="fsync-folder"),
]


def assert_no_leftovers(parent: Path, target: Path):
    assert not target.exists()
    leftovers = [p.name for p in parent.iterdir() if "partial" in p.name or p.name.startswith(".")]
    assert leftovers == []


@pytest.mark.parametrize(("name", "n_ok"), FAILURES)
def test_failed_save_leaves_nothing(tmp_path, monkeypatch, name, n_ok):
    agent = make_agent()
    train(agent, 2)
    parent = tmp_path / "saves"
    parent.mkdir()
    with monkeypatch.context() as m:
        m.setattr(
            persistence, name, failing_after(getattr(persistence, name), n_ok, OSError("disk full"))
        )
        with pytest.raises(OSError, match="disk full"):
            agent.save(parent / "broken", buffer=True, config=True)
    assert_no_leftovers(parent, parent / "broken")
    assert not (parent / "model_config.json").exists()
    with pytest.raises(SaveError, match="does not exist"):
        NeuroFlow.load(parent / "broken")
    # The same path can be used for a real save afterwards.
    agent.save(parent / "broken", buffer=True)
    assert NeuroFlow.load(parent / "broken", buffer=True).steps_done == agent.steps_done


@pytest.mark.parametrize(("name", "n_ok"), FAILURES)
def test_keyboard_interrupt_during_save(tmp_path, monkeypatch, name, n_ok):
    agent = make_agent()
    train(agent, 2)
    parent = tmp_path / "saves"
    parent.mkdir()
    with monkeypatch.context() as m:
        m.setattr(
            persistence, name, failing_after(getattr(persistence, name), n_ok, KeyboardInterrupt())
        )
        with pytest.raises(KeyboardInterrupt):
            agent.save(parent / "interrupted", buffer=True)
    assert_no_leftovers(parent, parent / "interrupted")
    with pytest.raises(SaveError):
        NeuroFlow.load(parent / "interrupted")


# --------------------------------------------------------------------------------------
# Missing, partial, corrupt folders
# --------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path) -> tuple[NeuroFlow, Path]:
    agent = make_agent()
    train(agent, 2)
    path = tmp_path / "good"
    agent.save(path, buffer=True)
    return agent, path


def _remove_metadata(path):
    (path / "metadata.json").unlink()


def _truncate_model(path):
    f = path / "model_state.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])


def _flip_tensor_byte(path):
    f = path / "model_state.safetensors"
    data = bytearray(f.read_bytes())
    offset = safetensors_data_offset(f)
    index = offset + (len(data) - offset) // 2
    data[index] ^= 0x01
    f.write_bytes(bytes(data))


def _flip_buffer_byte(path):
    f = path / "buffer_state.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0x10
    f.write_bytes(bytes(data))


def _bad_json(path):
    f = path / "metadata.json"
    f.write_text(f.read_text()[:-40] + "{,,")


def _binary_json(path):
    (path / "metadata.json").write_bytes(b"\xff\xfe\x00garbage\x80")


def _metadata_not_object(path):
    (path / "metadata.json").write_text("[1, 2, 3]")


def _remove_optim(path):
    (path / "optim_state.safetensors").unlink()


def _truncate_model_and_fix_checksum(path):
    _truncate_model(path)
    meta_path = path / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["checksums"]["model_state.safetensors"] = persistence._sha256(
        path / "model_state.safetensors"
    )
    meta_path.write_text(json.dumps(meta))


def _wrong_format_version(path):
    meta_path = path / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 999
    meta_path.write_text(json.dumps(meta))


CORRUPTIONS = [
    pytest.param(_remove_metadata, "metadata.json is missing", id="no-metadata"),
    pytest.param(
        _truncate_model, "model_state.safetensors does not match its checksum", id="truncated-model"
    ),
    pytest.param(
        _flip_tensor_byte,
        "model_state.safetensors does not match its checksum",
        id="flipped-tensor-byte",
    ),
    pytest.param(
        _flip_buffer_byte,
        "buffer_state.safetensors does not match its checksum",
        id="flipped-buffer-byte",
    ),
    pytest.param(_bad_json, "metadata.json is corrupt", id="invalid-json"),
    pytest.param(_binary_json, "metadata.json is corrupt", id="binary-metadata"),
    pytest.param(_metadata_not_object, "metadata.json is corrupt", id="json-not-object"),
    pytest.param(_remove_optim, "optim_state.safetensors is missing", id="no-optim"),
    pytest.param(
        _truncate_model_and_fix_checksum, "not a readable safetensors", id="truncated-rehashed"
    ),
    pytest.param(_wrong_format_version, "format 999", id="format-version"),
]


@pytest.mark.parametrize(("corrupt", "pattern"), CORRUPTIONS)
def test_corrupt_folder_is_clear_error(saved, corrupt, pattern):
    _, path = saved
    corrupt(path)
    with pytest.raises(SaveError, match=pattern) as info:
        NeuroFlow.load(path, buffer=True)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value)


def test_load_missing_folder_is_clear_error(tmp_path):
    with pytest.raises(SaveError, match="does not exist"):
        NeuroFlow.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SaveError, match="metadata.json"):
        NeuroFlow.load(tmp_path / "empty")


# --------------------------------------------------------------------------------------
# No code execution
# --------------------------------------------------------------------------------------

EVIL_NAMES = ["os.system", "torch.optim.Adam", "xmlrpc.server.SimpleXMLRPCServer", "Optimizer"]


@pytest.mark.parametrize("where", ["config", "optimizer", "both"])
@pytest.mark.parametrize("evil", EVIL_NAMES)
def test_load_refuses_names_outside_allow_list(saved, monkeypatch, where, evil):
    _, path = saved
    persistence.read_metadata(path)  # warm up whatever a valid read imports lazily
    meta_path = path / "metadata.json"
    meta = json.loads(meta_path.read_text())
    if where in ("config", "both"):
        meta["config"]["optim"] = evil
    if where in ("optimizer", "both"):
        meta["optimizers"]["actor_optim"]["class"] = evil
    meta_path.write_text(json.dumps(meta))

    calls = []
    monkeypatch.setattr(os, "system", lambda *args: calls.append(args) or 0)
    before = set(sys.modules)
    with pytest.raises(SaveError, match="allowed") as info:
        NeuroFlow.load(path, buffer=True)
    assert evil in str(info.value)
    assert "Adam" in str(info.value)  # the allow-list is spelled out
    assert calls == []
    new_modules = set(sys.modules) - before
    module_path = evil.rsplit(".", 1)[0]
    assert module_path not in new_modules
    assert not any(m.startswith("xmlrpc") for m in new_modules)
    assert new_modules == set()


def test_allowed_optimizer_round_trips(tmp_path):
    agent = make_agent(optim=torch.optim.RMSprop)
    train(agent, 2)
    agent.save(tmp_path / "rms")
    loaded = NeuroFlow.load(tmp_path / "rms")
    assert type(loaded.actor_optim) is torch.optim.RMSprop
    assert loaded.config.optim == "RMSprop"
    assert_same_optimizers(agent, loaded)


# --------------------------------------------------------------------------------------
# Agent class and device
# --------------------------------------------------------------------------------------


def test_load_with_wrong_class_is_refused(tmp_path):
    ct = make_agent("Pendulum-v1", cls=NeuroFlowCT)
    ct.save(tmp_path / "ct")
    nf = make_agent("Pendulum-v1", cls=NeuroFlow)
    nf.save(tmp_path / "nf")

    with pytest.raises(SaveError, match=r"NeuroFlowCT\.load"):
        NeuroFlow.load(tmp_path / "ct")
    with pytest.raises(SaveError, match=r"holds a NeuroFlow agent.*NeuroFlow\.load"):
        NeuroFlowCT.load(tmp_path / "nf")

    assert type(NeuroFlowCT.load(tmp_path / "ct")) is NeuroFlowCT
    assert type(NeuroFlow.load(tmp_path / "nf")) is NeuroFlow


def test_load_on_cpu(saved):
    agent, path = saved
    loaded = NeuroFlow.load(path, buffer=True, device="cpu")
    assert loaded.device == torch.device("cpu")
    assert loaded.config.device == "cpu"
    assert all(p.device.type == "cpu" for p in loaded.actor.parameters())
    assert all(p.device.type == "cpu" for p in loaded.critic.parameters())
    assert loaded.log_alpha.device.type == "cpu"
    assert loaded.buffer.storage.device.type == "cpu"
    action, hidden = loaded.predict(states_for(loaded)[0])
    assert action.device.type == "cpu" and hidden.device.type == "cpu"
    # ...and it can go on training.
    summary = train(loaded, 1)
    assert loaded.episodes_done == agent.episodes_done + 1
    assert summary.episodes == 1


def _set_saved_device(path: Path, device: str) -> None:
    meta_path = path / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["device"] = device
    meta_path.write_text(json.dumps(meta))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_save_loads_on_cpu_only_machine(saved):
    agent, path = saved
    _set_saved_device(path, "cuda:0")
    loaded = NeuroFlow.load(path, buffer=True)  # default: the saved device if usable, else CPU
    assert loaded.device == torch.device("cpu")
    assert loaded.config.device == "cpu"
    explicit = NeuroFlow.load(path, device="cpu")
    assert explicit.device == torch.device("cpu")
    states, hidden = states_for(agent), hidden_for(agent)
    assert_same_outputs(
        rollout(agent, states, hidden, train_mode=False),
        rollout(loaded, states, hidden, train_mode=False),
    )


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without MPS")
def test_mps_save_loads_on_machine_without_mps(saved):
    _, path = saved
    _set_saved_device(path, "mps")
    loaded = NeuroFlow.load(path, buffer=True)
    assert loaded.device == torch.device("cpu")


# --------------------------------------------------------------------------------------
# Saves of earlier versions
# --------------------------------------------------------------------------------------


def test_a_format_1_save_loads_with_its_counters(saved):
    """Format 1 (Velora 0.3.0 before `TrainProgress`) kept the counters as five fields."""
    agent, path = saved
    meta_path = path / "metadata.json"
    meta = json.loads(meta_path.read_text())
    progress = meta.pop("progress")
    meta |= {
        "format_version": 1,
        "episodes_done": progress["episodes"],
        "steps_done": progress["steps"],
        "experiment_id": progress["experiment_id"],
        "recent_rewards": progress["recent_rewards"],
        "reward_max": progress["reward_max"],
    }
    meta_path.write_text(json.dumps(meta))
    loaded = NeuroFlow.load(path, buffer=True)
    assert loaded.progress == agent.progress and loaded.progress.episodes > 0


def test_a_save_from_a_later_format_names_the_version_that_wrote_it(saved):
    _, path = saved
    meta_path = path / "metadata.json"
    meta = json.loads(meta_path.read_text()) | {"format_version": 7, "velora_version": "9.1.0"}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SaveError, match=r"format 7, written by Velora 9\.1\.0"):
        NeuroFlow.load(path)


def test_the_counters_are_saved_as_one_progress_object(saved):
    agent, path = saved
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["progress"] == {
        "episodes": agent.progress.episodes,
        "steps": agent.progress.steps,
        "recent_rewards": agent.progress.recent_rewards,
        "reward_max": agent.progress.reward_max,
        "experiment_id": agent.progress.experiment_id,
        "callback_state": agent.progress.callback_state,
    }
    assert not {"episodes_done", "steps_done", "recent_rewards"} & meta.keys()

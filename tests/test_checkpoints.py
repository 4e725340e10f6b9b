"""`SaveCheckpoints`: folder layout, completed.json, refusal, buffers, Ctrl-C, early stopping.

Every test runs in its own temp dir: training writes `metrics.db` and `checkpoints/` into
the working dir.
"""

import json
import math
import sqlite3
from pathlib import Path

import pytest
from callback_helpers import CtrlCAtEpisode, CtrlCAtStep

from velora.callbacks import EarlyStopping, SaveCheckpoints
from velora.models import NeuroFlow, NeuroFlowCT

BATCH = 16
SAVE_FILES = {"metadata.json", "model_state.safetensors", "optim_state.safetensors"}


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_agent(env_id="CartPole-v1", cls=NeuroFlow, seed=5):
    return cls(env_id, 8, 16, buffer_size=5_000, seed=seed)


def train(agent, n_episodes, callbacks, **kwargs):
    kwargs = {"display_count": 1_000, "log_freq": 2, **kwargs}
    return agent.train(BATCH, n_episodes=n_episodes, callbacks=callbacks, **kwargs)


def saves(dirname="nf") -> Path:
    return Path("checkpoints") / dirname / "saves"


def listing(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


def completed(dirname="nf") -> dict:
    return json.loads((saves(dirname) / "completed.json").read_text())


def db_rows(sql: str, *params) -> list[tuple]:
    with sqlite3.connect("metrics.db") as con:
        return con.execute(sql, params).fetchall()


# --------------------------------------------------------------------------------------
# Layout and completed.json
# --------------------------------------------------------------------------------------


def test_layout_completed_json_and_loadable_checkpoints():
    agent = make_agent()
    summary = train(agent, 5, [SaveCheckpoints("nf", frequency=2)])

    assert listing(Path("checkpoints")) == {"nf"}
    assert listing(Path("checkpoints") / "nf") == {"saves"}
    assert listing(saves()) == {
        "CartPole_2",
        "CartPole_4",
        "CartPole_final",
        "model_config.json",
        "completed.json",
    }
    for name in ("CartPole_2", "CartPole_4", "CartPole_final"):
        assert listing(saves() / name) == SAVE_FILES

    info = completed()
    assert info["episodes"] == 5 == summary.episodes
    assert info["steps"] == summary.steps == agent.steps_done
    assert info["status"] == "completed"
    assert info["early_stopped"] is False
    assert info["interrupted"] is False
    assert info["reward_avg"] == pytest.approx(summary.reward_avg)
    assert info["reward_max"] == summary.reward_max
    assert info["reward_max"] >= info["reward_avg"] > 0
    assert isinstance(info["time_taken"], int | float) and info["time_taken"] >= 0
    assert set(info["losses"]) >= {"actor_loss", "critic_loss", "entropy_loss"}
    assert all(math.isfinite(v) for v in info["losses"].values())

    # model_config.json is the agent's config, and the same JSON as the metrics DB's.
    model_config = json.loads((saves() / "model_config.json").read_text())
    assert model_config == agent.config.model_dump(mode="json")
    assert model_config["env_id"] == "CartPole-v1"
    ((db_config,),) = db_rows("SELECT config FROM experiment WHERE id = ?", agent.experiment_id)
    assert json.loads(db_config) == model_config

    for name, episodes in (("CartPole_2", 2), ("CartPole_4", 4), ("CartPole_final", 5)):
        loaded = NeuroFlow.load(saves() / name)
        assert loaded.episodes_done == episodes
        assert loaded.experiment_id == agent.experiment_id
    final = NeuroFlow.load(saves() / "CartPole_final")
    assert final.steps_done == agent.steps_done
    assert NeuroFlow.load(saves() / "CartPole_2").steps_done < final.steps_done


def test_box_env_naming():
    agent = make_agent("InvertedPendulum-v5", cls=NeuroFlowCT)
    train(agent, 3, [SaveCheckpoints("pend", frequency=1)])
    assert listing(saves("pend")) == {
        "InvertedPendulum_1",
        "InvertedPendulum_2",
        "InvertedPendulum_3",
        "InvertedPendulum_final",
        "model_config.json",
        "completed.json",
    }
    loaded = NeuroFlowCT.load(saves("pend") / "InvertedPendulum_2")
    assert loaded.episodes_done == 2
    assert completed("pend")["episodes"] == 3


def test_construction_has_no_side_effects():
    SaveCheckpoints("nf", frequency=3, buffer=True)
    assert not Path("checkpoints").exists()


# --------------------------------------------------------------------------------------
# Refusing an existing saves folder
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("existing", ["file", "checkpoint-dir"])
def test_refuses_non_empty_saves_folder(existing):
    folder = saves()
    folder.mkdir(parents=True)
    if existing == "file":
        (folder / "notes.txt").write_text("mine")
    else:
        (folder / "CartPole_100").mkdir()
    agent = make_agent()

    with pytest.raises(FileExistsError, match="dirname") as info:
        train(agent, 2, [SaveCheckpoints("nf", frequency=1)])
    assert "delete" in str(info.value)
    assert agent.steps_done == 0
    assert agent.episodes_done == 0
    assert agent.experiment_id is None
    if Path("metrics.db").exists():
        assert db_rows("SELECT COUNT(*) FROM experiment") == [(0,)]
        assert db_rows("SELECT COUNT(*) FROM episode") == [(0,)]
    assert listing(folder) == ({"notes.txt"} if existing == "file" else {"CartPole_100"})
    if existing == "file":
        assert (folder / "notes.txt").read_text() == "mine"


def test_refusal_after_a_previous_run_records_nothing_new():
    first = make_agent()
    train(first, 1, [SaveCheckpoints("nf", frequency=1)])
    assert db_rows("SELECT COUNT(*) FROM experiment") == [(1,)]
    before = sorted(p.as_posix() for p in Path("checkpoints").rglob("*"))

    second = make_agent(seed=6)
    with pytest.raises(FileExistsError, match="dirname"):
        train(second, 1, [SaveCheckpoints("nf", frequency=1)])
    assert second.steps_done == 0
    assert db_rows("SELECT COUNT(*) FROM experiment") == [(1,)]
    assert db_rows("SELECT COUNT(*) FROM episode") == [(1,)]
    assert sorted(p.as_posix() for p in Path("checkpoints").rglob("*")) == before


def test_empty_saves_folder_is_accepted():
    saves().mkdir(parents=True)
    agent = make_agent()
    train(agent, 1, [SaveCheckpoints("nf", frequency=5)])
    assert listing(saves()) == {"CartPole_final", "model_config.json", "completed.json"}


# --------------------------------------------------------------------------------------
# Buffers
# --------------------------------------------------------------------------------------


def test_buffer_checkpoints_load_with_buffer():
    agent = make_agent()
    train(agent, 4, [SaveCheckpoints("nf", frequency=2, buffer=True)])
    assert listing(saves()) == {
        "CartPole_2",
        "CartPole_4",
        "CartPole_final",
        "model_config.json",
        "completed.json",
    }
    for name in ("CartPole_2", "CartPole_4", "CartPole_final"):
        assert listing(saves() / name) == SAVE_FILES | {"buffer_state.safetensors"}
        loaded = NeuroFlow.load(saves() / name, buffer=True)
        assert len(loaded.buffer) == loaded.steps_done > 0
    final = NeuroFlow.load(saves() / "CartPole_final", buffer=True)
    assert len(final.buffer) == len(agent.buffer)
    assert (final.buffer.storage == agent.buffer.storage).all()


def test_checkpoints_without_buffer_refuse_buffer_load():
    agent = make_agent()
    train(agent, 1, [SaveCheckpoints("nf", frequency=1)])
    with pytest.raises(ValueError, match="buffer"):
        NeuroFlow.load(saves() / "CartPole_1", buffer=True)


# --------------------------------------------------------------------------------------
# Ctrl-C
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("log_freq", [2, 10])
def test_interrupted_training_saves_final_and_keeps_db_consistent(log_freq):
    agent = make_agent()
    with pytest.raises(KeyboardInterrupt):
        train(
            agent,
            10,
            [SaveCheckpoints("nf", frequency=2), CtrlCAtEpisode(3)],
            log_freq=log_freq,
        )

    assert agent.episodes_done == 3
    assert listing(saves()) == {
        "CartPole_2",
        "CartPole_final",
        "model_config.json",
        "completed.json",
    }
    final = NeuroFlow.load(saves() / "CartPole_final")
    assert final.episodes_done == 3
    assert final.steps_done == agent.steps_done

    info = completed()
    assert info["interrupted"] is True
    assert info["status"] == "interrupted"
    assert info["early_stopped"] is False
    assert info["episodes"] == 3
    assert info["steps"] == agent.steps_done

    assert db_rows("PRAGMA integrity_check") == [("ok",)]
    rows = db_rows(
        "SELECT episode_num FROM episode WHERE experiment_id = ? ORDER BY episode_num",
        agent.experiment_id,
    )
    assert rows == [(1,), (2,), (3,)]
    assert db_rows("SELECT COUNT(*) FROM episode") == [(3,)]

    # The final checkpoint continues the same experiment.
    resumed = NeuroFlow.load(saves() / "CartPole_final")
    train(resumed, 1, [])
    rows = db_rows(
        "SELECT episode_num FROM episode WHERE experiment_id = ? ORDER BY episode_num",
        agent.experiment_id,
    )
    assert rows == [(1,), (2,), (3,), (4,)]


def test_interrupt_inside_an_episode():
    agent = make_agent()
    with pytest.raises(KeyboardInterrupt):
        train(agent, 20, [CtrlCAtStep(40), SaveCheckpoints("nf", frequency=100)])
    final = NeuroFlow.load(saves() / "CartPole_final")
    assert final.steps_done == agent.steps_done == 40
    assert final.episodes_done == agent.episodes_done
    assert completed()["interrupted"] is True
    (count,) = db_rows("SELECT COUNT(*) FROM episode")[0]
    assert count == agent.episodes_done
    assert db_rows("PRAGMA integrity_check") == [("ok",)]


# --------------------------------------------------------------------------------------
# Early stopping
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["stop-first", "save-first"])
def test_early_stopping_is_recorded(order):
    stop = EarlyStopping(target=5.0, patience=1)
    save = SaveCheckpoints("nf", frequency=1)
    callbacks = [stop, save] if order == "stop-first" else [save, stop]
    agent = make_agent()
    summary = train(agent, 20, callbacks)

    assert summary.early_stopped is True
    assert summary.episodes == agent.episodes_done == 1  # any CartPole episode scores >= 5
    info = completed()
    assert info["early_stopped"] is True
    assert info["status"] == "early_stopped"
    assert info["interrupted"] is False
    assert info["episodes"] == 1
    assert listing(saves()) == {
        "CartPole_1",
        "CartPole_final",
        "model_config.json",
        "completed.json",
    }
    assert NeuroFlow.load(saves() / "CartPole_final").episodes_done == 1


def test_seed_snippet_combination():
    """The "Recording Videos" combination without RecordVideos (which does not exist yet)."""
    model = NeuroFlow("InvertedPendulum-v5", 8, 16, buffer_size=5_000, seed=3)

    CP_DIR = "nf"
    FREQ = 5

    callbacks = [
        SaveCheckpoints(CP_DIR, frequency=FREQ, buffer=True),
        EarlyStopping(target=15.0, patience=10),
    ]

    summary = model.train(BATCH, n_episodes=7, callbacks=callbacks, display_count=1_000)
    assert summary.early_stopped is False
    assert listing(saves(CP_DIR)) == {
        "InvertedPendulum_5",
        "InvertedPendulum_final",
        "model_config.json",
        "completed.json",
    }
    for name in ("InvertedPendulum_5", "InvertedPendulum_final"):
        assert listing(saves(CP_DIR) / name) == SAVE_FILES | {"buffer_state.safetensors"}
    loaded = NeuroFlow.load(saves(CP_DIR) / "InvertedPendulum_5", buffer=True)
    assert loaded.episodes_done == 5
    assert len(loaded.buffer) == loaded.steps_done
    assert completed(CP_DIR)["episodes"] == 7
    config = json.loads((saves(CP_DIR) / "model_config.json").read_text())
    assert config["train"]["callbacks"]["SaveCheckpoints"] == {
        "dirname": "nf",
        "frequency": 5,
        "buffer": True,
        "best": False,
        "keep_last": None,
        "resume": False,
    }
    assert config["train"]["callbacks"]["EarlyStopping"] == {
        "target": 15.0,
        "patience": 10,
        "eval_every": None,
        "eval_episodes": 5,
    }


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dirname", ["", "   ", None, 3, "/abs/path"])
def test_bad_dirname(dirname):
    with pytest.raises(ValueError, match="dirname"):
        SaveCheckpoints(dirname)


@pytest.mark.parametrize("frequency", [0, -1, 2.5, True, "5", None])
def test_bad_frequency(frequency):
    with pytest.raises(ValueError, match="frequency"):
        SaveCheckpoints("nf", frequency=frequency)


def test_defaults_and_description():
    cb = SaveCheckpoints("nf")
    assert (cb.frequency, cb.buffer) == (100, False)
    assert cb.config() == {
        "dirname": "nf",
        "frequency": 100,
        "buffer": False,
        "best": False,
        "keep_last": None,
        "resume": False,
    }
    assert "nf" in cb.summary()


# --------------------------------------------------------------------------------------
# Ctrl-C while a checkpoint is being written
# --------------------------------------------------------------------------------------


def test_interrupt_during_periodic_save_leaves_no_partial_checkpoint(monkeypatch):
    import velora.models.persistence as persistence

    real_save_file = persistence.save_file
    calls = {"n": 0}

    def save_file_once_interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # inside the CartPole_2 save, after its model file
            raise KeyboardInterrupt
        return real_save_file(*args, **kwargs)

    monkeypatch.setattr(persistence, "save_file", save_file_once_interrupted)
    agent = make_agent()
    with pytest.raises(KeyboardInterrupt):
        train(agent, 10, [SaveCheckpoints("nf", frequency=2, buffer=True)])

    assert agent.episodes_done == 2
    # No half-written CartPole_2 and no hidden staging folder; the final save happened.
    assert listing(saves()) == {"CartPole_final", "model_config.json", "completed.json"}
    final = NeuroFlow.load(saves() / "CartPole_final", buffer=True)
    assert final.episodes_done == 2
    assert completed()["interrupted"] is True


# --------------------------------------------------------------------------------------
# completed.json must be JSON
# --------------------------------------------------------------------------------------


def _strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_completed_json_is_strict_json_when_no_update_happened():
    agent = make_agent()
    # One CartPole episode (< 32 steps) never leaves the 2 * batch_size warm-up: no losses.
    train(agent, 1, [SaveCheckpoints("nf", frequency=1)])
    assert agent.steps_done <= 2 * BATCH
    _strict_json((saves() / "completed.json").read_text())


def test_completed_json_is_strict_json_when_interrupted_in_first_episode():
    agent = make_agent()
    with pytest.raises(KeyboardInterrupt):
        train(agent, 5, [CtrlCAtStep(3), SaveCheckpoints("nf", frequency=1)])
    _strict_json((saves() / "completed.json").read_text())


def test_completed_json_is_strict_json_after_updates():
    agent = make_agent()
    train(agent, 3, [SaveCheckpoints("nf", frequency=10)])
    assert agent.steps_done > 2 * BATCH
    info = _strict_json((saves() / "completed.json").read_text())
    assert info["episodes"] == 3

"""CometAnalytics with the real comet_ml client, offline: read back what was logged."""

import json
import math
import os
import socket
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from velora.callbacks import (
    CometAnalytics,
    EarlyStopping,
    Evaluate,
    MLflowLogger,
    RecordVideos,
    SaveCheckpoints,
)
from velora.callbacks.comet import comet_settings, is_offline
from velora.callbacks.tracking import flatten
from velora.models import NeuroFlow

# comet_ml turns on Sentry error reports (network) for a random half of its imports,
# even offline; it reads this setting once, at import.
os.environ["COMET_ERROR_TRACKING_ENABLE"] = "false"
pytest.importorskip("comet_ml")

COMET_VARS = ("COMET_API_KEY", "COMET_OFFLINE_DIRECTORY", "COMET_MODE", "COMET_OFFLINE")
METRICS = {
    "episode/return": lambda r: r["reward"],
    "episode/length": lambda r: r["length"],
    "reward/moving_avg": lambda r: r["reward_moving_avg"],
    "reward/moving_upper": lambda r: r["reward_moving_avg"] + r["reward_moving_std"],
    "reward/moving_lower": lambda r: r["reward_moving_avg"] - r["reward_moving_std"],
    "losses/actor_loss": lambda r: r["actor_loss"],
    "losses/critic_loss": lambda r: r["critic_loss"],
    "losses/entropy_loss": lambda r: r["entropy_loss"],
    "alpha": lambda r: r["alpha"],
}


@pytest.fixture(autouse=True)
def _no_comet_settings(monkeypatch):
    for name in COMET_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Fail the test if anything (Comet's client included) opens a connection.

    Comet's environment-details logging looks up its server's address and probes
    cloud metadata URLs, even offline; tests switch it off with its own setting.
    """
    monkeypatch.setenv("COMET_AUTO_LOG_ENV_DETAILS", "false")
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield
    assert attempts == []


@pytest.fixture
def offline(monkeypatch, tmp_path) -> Path:
    folder = tmp_path / "comet"
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(folder))
    return folder


def tiny_agent() -> NeuroFlow:
    return NeuroFlow("CartPole-v1", 8, 16, buffer_size=5000, seed=0)


class Archive:
    """The `<key>.zip` an offline experiment writes when it ends."""

    def __init__(self, folder: Path) -> None:
        (path,) = folder.glob("*.zip")
        self.zip = zipfile.ZipFile(path)
        self.experiment = json.loads(self.zip.read("experiment.json"))
        lines = self.zip.read("messages.json").decode().splitlines()
        self.messages = [json.loads(line) for line in lines if line.strip()]

    def of_type(self, kind: str) -> list[dict]:
        return [m["payload"] for m in self.messages if m["type"] == kind]

    def metrics(self) -> dict[tuple[str, int], list[float]]:
        logged: dict[tuple[str, int], list[float]] = {}
        for payload in self.of_type("metric_msg"):
            metric = payload["metric"]
            logged.setdefault((metric["metricName"], metric["step"]), []).append(
                metric["metricValue"]
            )
        return logged

    def others(self) -> dict[str, object]:
        return {p["key"]: p["value"] for p in self.of_type("log_other")}

    def manual_params(self) -> list[tuple[str, object]]:
        params = [p.get("param") or p.get("params") for p in self.of_type("parameter_msg")]
        return [(p["paramName"], p["paramValue"]) for p in params if p["source"] == "manual"]

    def videos(self) -> dict[str, bytes]:
        uploads = [p for p in self.of_type("file_upload") if p["upload_type"] == "video"]
        return {p["additional_params"]["fileName"]: self.zip.read(p["file_path"]) for p in uploads}


def episode_rows() -> list[dict]:
    with sqlite3.connect("metrics.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM episode ORDER BY episode_num")]


def test_offline_run_logs_every_episode_config_name_and_tags(offline):
    agent = tiny_agent()
    agent.train(16, n_episodes=5, callbacks=[CometAnalytics("velora-tests")], log_freq=2)
    archive = Archive(offline)

    logged = archive.metrics()
    rows = episode_rows()
    assert [r["episode_num"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["actor_loss"] is None  # warm-up episode: no updates (NaN, stored NULL)
    for row in rows:
        for name, expected in METRICS.items():
            value = expected(row)
            if value is None or math.isnan(value):  # skipped, never logged as NaN
                assert (name, row["episode_num"]) not in logged
            else:
                assert logged[name, row["episode_num"]] == [pytest.approx(value, rel=1e-6)]

    assert archive.experiment["project_name"] == "velora-tests"
    assert archive.others()["Name"] == "NeuroFlow_CartPole_5ep"
    assert sorted(archive.experiment["tags"]) == ["CartPole", "NeuroFlow"]
    assert archive.others()["status"] == "completed"
    params = archive.manual_params()
    assert len(params) == len({name for name, _ in params})  # each parameter once
    assert dict(params) == flatten(agent.config.model_dump(mode="json"))
    assert dict(params)["train/batch_size"] == 16
    assert dict(params)["train/callbacks/CometAnalytics/project_name"] == "velora-tests"


def test_experiment_key_name_and_tags(offline):
    key = "0123456789abcdef" * 2
    callback = CometAnalytics("velora-tests", "my-run", tags=["a", "b"], experiment_key=key)
    tiny_agent().train(16, n_episodes=1, callbacks=[callback])
    archive = Archive(offline)
    assert archive.experiment["offline_id"] == key
    assert archive.experiment["resume_strategy"] == "get"  # appends to the experiment
    assert archive.others()["Name"] == "my-run"
    assert sorted(archive.experiment["tags"]) == ["a", "b"]
    assert callback.config() == {
        "project_name": "velora-tests",
        "experiment_name": "my-run",
        "tags": ["a", "b"],
        "experiment_key": key,
    }


def test_missing_key_online_fails_before_training():
    agent = tiny_agent()
    with pytest.raises(ValueError, match=r"COMET_API_KEY.*\.env"):
        agent.train(16, n_episodes=2, callbacks=[CometAnalytics("velora-tests")])
    assert agent.steps_done == 0


def test_key_from_dotenv_file_reaches_the_online_experiment(monkeypatch):
    import comet_ml

    Path(".env").write_text("COMET_API_KEY=key-from-dotenv\nOTHER=1\n")
    settings = comet_settings()
    assert settings["COMET_API_KEY"] == "key-from-dotenv" and "OTHER" not in settings
    assert not is_offline(comet_settings())

    seen = {}

    class Stop(Exception):
        pass

    def fake_experiment(**kwargs):  # stands in for the network client
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(comet_ml, "Experiment", fake_experiment)
    agent = tiny_agent()
    with pytest.raises(Stop):
        agent.train(16, n_episodes=1, callbacks=[CometAnalytics("velora-tests")])
    assert seen["api_key"] == "key-from-dotenv"
    assert seen["project_name"] == "velora-tests"
    assert seen["auto_metric_logging"] is False
    assert agent.steps_done == 0

    monkeypatch.setenv("COMET_API_KEY", "key-from-env")  # the environment wins
    assert comet_settings()["COMET_API_KEY"] == "key-from-env"
    seen.clear()
    monkeypatch.setattr(comet_ml, "ExistingExperiment", fake_experiment)
    callback = CometAnalytics("velora-tests", experiment_key="k" * 32)
    with pytest.raises(Stop):
        agent.train(16, n_episodes=1, callbacks=[callback])
    assert seen["api_key"] == "key-from-env" and seen["previous_experiment"] == "k" * 32


@pytest.mark.parametrize(
    "settings, offline",
    [
        ({}, False),
        ({"COMET_API_KEY": "k"}, False),
        ({"COMET_OFFLINE_DIRECTORY": "runs"}, True),
        ({"COMET_MODE": "OFFLINE"}, True),
        ({"COMET_MODE": "online"}, False),
        ({"COMET_OFFLINE": "true"}, True),
    ],
)
def test_offline_mode_selection(settings, offline):
    assert is_offline(settings) is offline


def test_offline_mode_needs_no_key(monkeypatch, tmp_path):
    monkeypatch.setenv("COMET_MODE", "offline")  # comet's default folder, in the cwd
    tiny_agent().train(16, n_episodes=1, callbacks=[CometAnalytics("velora-tests")])
    assert len(list((tmp_path / ".cometml-runs").glob("*.zip"))) == 1


def test_missing_package_says_how_to_install(monkeypatch, offline):
    monkeypatch.setitem(sys.modules, "comet_ml", None)
    agent = tiny_agent()
    with pytest.raises(ImportError, match=r'pip install "velora\[comet\]"'):
        agent.train(16, n_episodes=1, callbacks=[CometAnalytics("velora-tests")])
    assert agent.steps_done == 0


def test_importing_callbacks_does_not_import_comet():
    code = "import sys, velora.callbacks; assert 'comet_ml' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_all_callbacks_together(offline):
    callbacks = [  # Comet first: it must still get the final video, recorded at the end
        CometAnalytics("velora-tests"),
        SaveCheckpoints("nf", frequency=2),
        EarlyStopping(0.0, patience=3),
        RecordVideos("nf", frequency=2),
    ]
    summary = tiny_agent().train(16, n_episodes=6, callbacks=callbacks, log_freq=2)
    assert summary.early_stopped and summary.episodes == 3

    saves, videos = Path("checkpoints/nf/saves"), Path("checkpoints/nf/videos")
    assert sorted(p.name for p in saves.iterdir()) == [
        "CartPole_2",
        "CartPole_final",
        "completed.json",
        "model_config.json",
    ]
    assert json.loads((saves / "completed.json").read_text())["early_stopped"] is True
    names = sorted(p.name for p in videos.iterdir())
    assert names == ["CartPole-episode-2.mp4", "CartPole-final.mp4"]

    archive = Archive(offline)
    uploaded = archive.videos()
    assert sorted(uploaded) == names
    for name in names:
        assert uploaded[name] == (videos / name).read_bytes()
    steps = {
        p["additional_params"]["fileName"]: p["additional_params"]["step"]
        for p in archive.of_type("file_upload")
        if p["upload_type"] == "video"
    }
    assert steps == {"CartPole-episode-2.mp4": 2, "CartPole-final.mp4": 3}
    assert archive.others()["status"] == "early_stopped"
    assert {step for _, step in archive.metrics() if step is not None} >= {1, 2, 3}


def test_summary():
    assert "velora-tests" in CometAnalytics("velora-tests").summary()
    with pytest.raises(ValueError, match="project_name"):
        CometAnalytics("")


def test_evaluations_reach_comet_and_mlflow_in_one_run(offline, tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    callbacks = [CometAnalytics("velora-tests"), MLflowLogger(uri), Evaluate(every=2, episodes=2)]
    tiny_agent().train(16, n_episodes=4, callbacks=callbacks, log_freq=2)
    with sqlite3.connect("metrics.db") as db:
        rows = db.execute("SELECT episode_num, mean_return, std_return FROM evaluation").fetchall()
    assert [row[0] for row in rows] == [2, 4]

    on_comet = Archive(offline).metrics()
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("velora").experiment_id])
    history = client.get_metric_history(run.info.run_id, "eval/mean_return")
    on_mlflow = {metric.step: metric.value for metric in history}
    for episode, mean, std in rows:
        assert on_comet["eval/mean_return", episode] == [pytest.approx(mean)]
        assert on_comet["eval/std_return", episode] == [pytest.approx(std)]
        assert on_mlflow[episode] == pytest.approx(mean)

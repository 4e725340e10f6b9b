"""`MLflowLogger`: an MLflow run on a local SQLite store holds what `metrics.db` holds."""

import socket
import sys

import pytest
from callback_helpers import CtrlCAtEpisode
from mlflow import MlflowClient
from test_tensorboard import database_rows, scalars

from velora.callbacks import Evaluate, MLflowLogger, TensorBoardLogger
from velora.callbacks.tracking import flatten
from velora.models import NeuroFlow


def metric_histories(client: MlflowClient, run_id: str) -> dict[str, dict[int, float]]:
    run = client.get_run(run_id)
    return {
        name: {m.step: m.value for m in client.get_metric_history(run_id, name)}
        for name in run.data.metrics
    }


def only_run(client: MlflowClient, experiment: str):
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return run


def test_mlflow_and_tensorboard_in_one_run_equal_the_metrics_database(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    db = tmp_path / "metrics.db"
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=2000, seed=0)
    callbacks = [
        MLflowLogger(uri, "velora-tests", tags={"team": "rl"}),
        TensorBoardLogger(tmp_path / "runs"),
        Evaluate(every=3, episodes=2),
    ]
    summary = agent.train(16, n_episodes=6, log_freq=4, callbacks=callbacks, db_path=str(db))

    client = MlflowClient(uri)
    run = only_run(client, "velora-tests")
    assert run.info.run_name == f"NeuroFlow_CartPole_{summary.experiment_id}"
    assert run.info.status == "FINISHED"
    assert run.data.tags["team"] == "rl" and run.data.tags["velora.status"] == "completed"
    params = flatten(agent.config.model_dump(mode="json"))
    assert run.data.params == {key: str(value) for key, value in params.items()}

    episodes, evaluations = database_rows(db)
    logged = metric_histories(client, run.info.run_id)
    assert logged["episode/return"] == pytest.approx({e[0]: e[1] for e in episodes})
    assert logged["episode/length"] == pytest.approx({e[0]: e[2] for e in episodes})
    assert logged["reward/moving_lower"] == pytest.approx({e[0]: e[3] - e[4] for e in episodes})
    learned = {e[0]: e[5] for e in episodes if e[5] is not None}
    assert learned and logged["losses/critic_loss"] == pytest.approx(learned)
    assert len(logged["losses/critic_loss"]) < len(episodes)  # warm-up: no NaN logged
    assert logged["alpha"] == pytest.approx({e[0]: e[6] for e in episodes})
    assert logged["eval/mean_return"] == pytest.approx({e[0]: e[1] for e in evaluations})
    assert logged["eval/std_return"] == pytest.approx({e[0]: e[2] for e in evaluations})
    assert sorted(logged["eval/mean_length"]) == [3, 6]

    board = scalars(tmp_path / "runs" / f"NeuroFlow_CartPole_{summary.experiment_id}")
    for name in ("episode/return", "reward/moving_lower", "eval/mean_return"):
        assert board[name] == pytest.approx(logged[name])


def test_a_resumed_agent_goes_on_in_the_same_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    db = str(tmp_path / "metrics.db")
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=2000, seed=0)
    agent.train(16, n_episodes=3, callbacks=[MLflowLogger(uri)], db_path=db)
    agent.save(tmp_path / "agent", buffer=True)
    again = NeuroFlow.load(tmp_path / "agent", buffer=True)
    again.train(16, n_episodes=2, callbacks=[MLflowLogger(uri)], db_path=db)

    client = MlflowClient(uri)
    run = only_run(client, "velora")
    assert run.info.status == "FINISHED"
    returns = metric_histories(client, run.info.run_id)["episode/return"]
    assert sorted(returns) == [1, 2, 3, 4, 5]
    assert run.data.params["train/n_episodes"] == "3"  # parameters keep their first value


def test_interrupted_run_is_killed_not_finished(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=2000, seed=0)
    with pytest.raises(KeyboardInterrupt):
        agent.train(16, n_episodes=5, callbacks=[MLflowLogger(uri), CtrlCAtEpisode(2)])
    run = only_run(MlflowClient(uri), "velora")
    assert run.info.status == "KILLED" and run.data.tags["velora.status"] == "interrupted"
    assert sorted(metric_histories(MlflowClient(uri), run.info.run_id)["episode/return"]) == [1, 2]


def test_an_unreachable_server_fails_before_the_first_episode(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=2000, seed=0)
    logger = MLflowLogger(f"http://127.0.0.1:{port}")
    with pytest.raises(
        ConnectionError, match=rf"cannot reach .*127\.0\.0\.1:{port}.*mlflow server"
    ):
        agent.train(16, n_episodes=3, callbacks=[logger], db_path=str(tmp_path / "m.db"))
    assert agent.progress.episodes == 0 and agent.progress.steps == 0
    assert not (tmp_path / "m.db").exists()


def test_bad_settings_and_a_missing_package(monkeypatch):
    with pytest.raises(ValueError, match="experiment_name"):
        MLflowLogger(experiment_name=" ")
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ImportError, match=r'pip install "velora\[mlflow\]"'):
        MLflowLogger()

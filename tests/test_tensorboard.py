"""`TensorBoardLogger`: the event files hold what `metrics.db` holds, under Comet's names."""

import sqlite3
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from velora.callbacks import Evaluate, TensorBoardLogger
from velora.models import NeuroFlow


def scalars(run_dir) -> dict[str, dict[int, float]]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {
        tag: {event.step: event.value for event in events.Scalars(tag)}
        for tag in events.Tags()["scalars"]
    }


def database_rows(db) -> tuple[list[tuple], list[tuple]]:
    with sqlite3.connect(db) as connection:
        episodes = connection.execute(
            "SELECT episode_num, reward, length, reward_moving_avg, reward_moving_std, "
            "critic_loss, alpha FROM episode ORDER BY episode_num"
        ).fetchall()
        evaluations = connection.execute(
            "SELECT episode_num, mean_return, std_return, mean_length FROM evaluation"
        ).fetchall()
    return episodes, evaluations


def test_event_files_equal_the_metrics_database(tmp_path):
    db = tmp_path / "metrics.db"
    logger = TensorBoardLogger(tmp_path / "runs")
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=2000, seed=0)
    summary = agent.train(
        16,
        n_episodes=6,
        log_freq=2,
        callbacks=[logger, Evaluate(every=3, episodes=2)],
        db_path=str(db),
    )
    run_dir = tmp_path / "runs" / f"NeuroFlow_CartPole_{summary.experiment_id}"
    logged = scalars(run_dir)
    episodes, evaluations = database_rows(db)
    assert logged["episode/return"] == pytest.approx({e[0]: e[1] for e in episodes})
    assert logged["episode/length"] == pytest.approx({e[0]: e[2] for e in episodes})
    assert logged["reward/moving_upper"] == pytest.approx({e[0]: e[3] + e[4] for e in episodes})
    learned = {e[0]: e[5] for e in episodes if e[5] is not None and e[5] == e[5]}
    assert learned and logged["losses/critic_loss"] == pytest.approx(learned)
    assert logged["alpha"] == pytest.approx({e[0]: e[6] for e in episodes})
    assert logged["eval/mean_return"] == pytest.approx({e[0]: e[1] for e in evaluations})
    assert logged["eval/mean_length"] == pytest.approx({e[0]: e[3] for e in evaluations})
    assert len(logged["eval/std_return"]) == len(evaluations) == 2


def test_a_missing_tensorboard_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r'pip install "velora\[tensorboard\]"'):
        TensorBoardLogger()

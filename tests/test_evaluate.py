"""`Evaluate`: deterministic evaluations during training, recorded in `metrics.db`."""

import sqlite3
from pathlib import Path

import pytest
import torch

from velora.callbacks import EarlyStopping, Evaluate
from velora.callbacks.evaluate import EVAL_SEED_OFFSET
from velora.models import NeuroFlow
from velora.training import evaluate_policy

TINY = {"actor_neurons": 8, "critic_neurons": 16, "buffer_size": 2000}


def evaluations(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT experiment_id, episode_num, steps, mean_return, std_return, mean_length "
            "FROM evaluation ORDER BY id"
        ).fetchall()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "InvertedPendulum-v5"])
def test_evaluations_are_recorded_and_reproducible_from_the_agent(env_id, tmp_path):
    db = tmp_path / "metrics.db"
    agent = NeuroFlow(env_id, **TINY, seed=0)
    evaluate = Evaluate(every=3, episodes=2)
    summary = agent.train(16, n_episodes=6, callbacks=[evaluate], db_path=str(db))
    rows = evaluations(db)
    assert [row[1] for row in rows] == [3, 6]
    assert all(row[0] == summary.experiment_id for row in rows)
    assert rows[-1][2] == summary.steps and 0 < rows[0][2] < rows[-1][2]
    assert [episode for episode, _ in evaluate.results] == [3, 6]
    assert evaluate.best == max(result.mean_return for _, result in evaluate.results)

    # The last one ran on the agent as it ended: the same seeds give the same numbers,
    # also after a save and load.
    agent.save(tmp_path / "agent")
    loaded = NeuroFlow.load(tmp_path / "agent")
    for policy in (agent, loaded):
        again = evaluate_policy(policy, 2, seed=policy.seed + EVAL_SEED_OFFSET)
        assert rows[-1][3:] == pytest.approx(
            (again.mean_return, again.std_return, again.mean_length), abs=1e-9
        )


def test_evaluating_leaves_training_exactly_as_it_would_have_been(tmp_path):
    """No learning and no draw from training's random streams: same weights either way."""
    trained = []
    for callbacks in ([], [Evaluate(every=1, episodes=2)]):
        agent = NeuroFlow("InvertedPendulum-v5", **TINY, seed=3)
        agent.train(16, n_episodes=5, callbacks=callbacks, db_path=str(tmp_path / "m.db"))
        trained.append(agent)
    for a, b in zip(trained[0].actor.parameters(), trained[1].actor.parameters(), strict=True):
        assert torch.equal(a, b)
    assert trained[0].progress.steps == trained[1].progress.steps


def test_early_stopping_records_its_evaluations(tmp_path):
    db = tmp_path / "metrics.db"
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    stop = EarlyStopping(target=1e9, eval_every=2, eval_episodes=1)
    agent.train(16, n_episodes=4, callbacks=[stop], db_path=str(db))
    rows = evaluations(db)
    assert [row[1] for row in rows] == [2, 4] and stop.last_score == rows[-1][3]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every": 0}, "every must be an integer >= 1"),
        ({"every": 2, "episodes": -1}, "episodes must be an integer >= 1"),
        ({"every": 2.5}, "every must be an integer >= 1"),
    ],
)
def test_bad_evaluation_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Evaluate(**kwargs)


def test_a_database_from_before_evaluations_gains_the_table_and_keeps_its_rows(tmp_path):
    db = tmp_path / "old.db"
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    agent.train(16, n_episodes=2, db_path=str(db))
    from velora.metrics import db as metrics_db

    for engine in metrics_db._engines.values():
        engine.dispose()
    metrics_db._engines.clear()
    with sqlite3.connect(db) as connection:
        connection.execute("DROP TABLE evaluation")
        episodes = connection.execute("SELECT * FROM episode").fetchall()
    agent.train(16, n_episodes=2, callbacks=[Evaluate(every=2)], db_path=str(db))
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT * FROM episode LIMIT 2").fetchall() == episodes
    assert [row[1] for row in evaluations(db)] == [4]


def test_runs_and_reports_show_the_evaluations(tmp_path):
    from velora.metrics import list_runs, load_runs, plot_runs, write_html_report

    db = tmp_path / "metrics.db"
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    agent.train(16, n_episodes=4, callbacks=[Evaluate(every=2, episodes=2)], db_path=str(db))
    NeuroFlow("CartPole-v1", **TINY, seed=1).train(16, n_episodes=2, db_path=str(db))
    rows = evaluations(db)
    first, second = list_runs(db)
    assert (first.evaluations, first.best_eval) == (2, max(row[3] for row in rows))
    assert second.evaluations == 0 and second.best_eval != second.best_eval  # NaN

    (run,) = load_runs(db, [first.id])
    assert run.eval_episode == [2, 4] and run.eval_mean == [row[3] for row in rows]
    figure = plot_runs(db, [first.id])
    panel = next(ax for ax in figure.axes if ax.get_title().startswith("Episode return"))
    points = [line for line in panel.lines if line.get_marker() == "D"]
    assert len(points) == 1 and list(points[0].get_ydata()) == run.eval_mean
    page = write_html_report(db, [first.id], tmp_path / "report.html").read_text()
    assert "best evaluation" in page and "evaluated after episode" in page


# ------------------------------------------------------------ stopping on no improvement

from velora.callbacks import StopOnNoImprovement  # noqa: E402

NEVER_BETTER = 1e9  # a min_delta no evaluation after the first can beat


@pytest.mark.parametrize(("patience", "min_evals", "stops_at"), [(2, 0, 3), (2, 2, 4), (1, 0, 2)])
def test_no_improvement_stops_at_the_predicted_evaluation(tmp_path, patience, min_evals, stops_at):
    """With nothing counting as better, evaluation 1 sets the best and each later one
    beyond the grace period adds to the count: the stop falls on a known evaluation."""
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    stop = StopOnNoImprovement(patience, min_delta=NEVER_BETTER, min_evals=min_evals)
    # The stop comes first in the list: callbacks still run Evaluate first.
    callbacks = [stop, Evaluate(every=2, episodes=1)]
    summary = agent.train(16, n_episodes=40, callbacks=callbacks, db_path=str(tmp_path / "m.db"))
    assert summary.early_stopped and summary.episodes == 2 * stops_at
    assert len(evaluations(tmp_path / "m.db")) == stops_at


def test_a_new_best_resets_the_count(tmp_path):
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    stop = StopOnNoImprovement(1, min_delta=0.0)
    agent.train(
        16,
        n_episodes=12,
        callbacks=[Evaluate(every=2, episodes=1), stop],
        db_path=str(tmp_path / "m.db"),
    )
    means = [row[3] for row in evaluations(tmp_path / "m.db")]
    # It stopped at the first evaluation that did not beat every one before it.
    first_flat = next((i for i in range(1, len(means)) if means[i] <= max(means[:i])), None)
    expected = len(means) if first_flat is None else first_flat + 1
    assert len(means) == expected


def test_the_count_and_the_best_evaluation_survive_save_and_load(tmp_path):
    db = str(tmp_path / "m.db")
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    agent.train(
        16,
        n_episodes=4,
        callbacks=[Evaluate(every=2, episodes=1), StopOnNoImprovement(3, min_delta=NEVER_BETTER)],
        db_path=db,
    )
    best = agent.progress.callback_state["evaluation"]["best_mean_return"]
    assert agent.progress.callback_state["StopOnNoImprovement"]["without_improvement"] == 1
    agent.save(tmp_path / "agent", buffer=True)
    resumed = NeuroFlow.load(tmp_path / "agent", buffer=True)
    evaluate = Evaluate(every=2, episodes=1)
    summary = resumed.train(
        16,
        n_episodes=40,
        callbacks=[evaluate, StopOnNoImprovement(3, min_delta=NEVER_BETTER)],
        db_path=db,
    )
    # One without improvement was carried over: two more evaluations make three.
    assert summary.early_stopped and summary.episodes == 4
    assert evaluate.best >= best


def test_no_improvement_without_evaluations_refuses_to_start(tmp_path):
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    with pytest.raises(ValueError, match="needs evaluations to rank: add an Evaluate"):
        agent.train(
            16, n_episodes=2, callbacks=[StopOnNoImprovement(2)], db_path=str(tmp_path / "x.db")
        )
    assert agent.progress.episodes == 0
    for bad, message in (
        ({"patience": 0}, "patience must be an integer >= 1"),
        ({"patience": 2, "min_evals": -1}, "min_evals must be an integer >= 0"),
        ({"patience": 2, "min_delta": -0.5}, "min_delta must be a number >= 0"),
    ):
        with pytest.raises(ValueError, match=message):
            StopOnNoImprovement(**bad)

"""The console of a training run: header, progress lines, evaluations, end summary."""

import re
import sqlite3

import pytest

from velora.callbacks import Evaluate
from velora.models import NeuroFlow


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no wrapped lines to parse


def test_the_console_shows_the_run_its_progress_and_every_evaluation(capsys, tmp_path):
    db = tmp_path / "metrics.db"
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=2000, seed=0)
    summary = agent.train(
        16,
        n_episodes=6,
        display_count=2,
        callbacks=[Evaluate(every=3, episodes=2)],
        db_path=str(db),
    )
    out = capsys.readouterr().out
    assert "NeuroFlow (discrete)" in out and "CartPole-v1" in out
    assert "Evaluate(every=3, episodes=2)" in out
    assert re.findall(r"Episode (\d)/6", out) == ["2", "4", "6"]

    with sqlite3.connect(db) as connection:
        evaluations = connection.execute(
            "SELECT episode_num, mean_return, std_return, mean_length FROM evaluation"
        ).fetchall()
    shown = re.findall(
        r"Evaluation at episode (\d+): return ([\d.]+) ± ([\d.]+), length ([\d.]+) "
        r"over 2 episodes\s+(best so far|\(best [\d.]+\))",
        out,
    )
    assert [int(line[0]) for line in shown] == [row[0] for row in evaluations] == [3, 6]
    best = None
    for line, (_, mean, std, length) in zip(shown, evaluations, strict=True):
        assert float(line[1]) == pytest.approx(mean, abs=0.005)
        assert float(line[2]) == pytest.approx(std, abs=0.005)
        assert float(line[3]) == pytest.approx(length, abs=0.05)
        improved = best is None or mean > best
        best = mean if improved else best
        assert line[4] == ("best so far" if improved else f"(best {best:.2f})")

    assert f"6 episodes, {summary.steps:,} steps" in out
    assert f"experiment {summary.experiment_id} in {db}" in out

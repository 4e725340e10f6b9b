"""velora.metrics.report: run summaries, training-curve figures and the HTML report.

The databases are written with `MetricsWriter` directly, so no agent is trained here.
"""

import base64
import io
import json
import math
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from velora.metrics import (
    EpisodeRecord,
    MetricsWriter,
    list_runs,
    load_runs,
    plot_runs,
    write_html_report,
)

WARMUP = 2  # episodes without losses, as during a real warm-up


def record(num: int, reward: float) -> EpisodeRecord:
    loss = math.nan if num <= WARMUP else 1.0 / num
    return EpisodeRecord(
        episode_num=num,
        reward=reward,
        length=int(reward),
        reward_moving_avg=reward - 1.0,
        reward_moving_std=0.5,
        actor_loss=-loss,
        critic_loss=loss,
        entropy_loss=loss / 10,
    )


def add_run(db: Path, env: str, rewards: list[float], seed: int = 0) -> int:
    writer = MetricsWriter(db)
    config = {"actor_neurons": 20, "critic_neurons": 128, "seed": seed, "train": {"batch_size": 64}}
    run_id = writer.start("NeuroFlow", env, json.dumps(config))
    for num, reward in enumerate(rewards, start=1):
        writer.add(record(num, reward))
    writer.close()
    return run_id


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "metrics.db"
    add_run(path, "CartPole-v1", [10.0, 20.0, 30.0, 25.0, 40.0], seed=1)
    add_run(path, "CartPole-v1", [12.0, 14.0, 50.0], seed=2)
    add_run(path, "Pendulum-v1", [-900.0, -800.0, -500.0, -300.0], seed=3)
    return path


def lines_per_axis(fig) -> dict[str, int]:
    return {ax.get_title(): len(ax.get_lines()) for ax in fig.axes}


def test_list_runs_summarises_every_run(db):
    runs = list_runs(db)
    assert [(r.id, r.env, r.episodes) for r in runs] == [
        (1, "CartPole-v1", 5),
        (2, "CartPole-v1", 3),
        (3, "Pendulum-v1", 4),
    ]
    first = runs[0]
    assert first.agent == "NeuroFlow"
    assert first.steps == 10 + 20 + 30 + 25 + 40
    assert first.best_moving_avg == 39.0
    assert first.last_moving_avg == 39.0
    assert runs[1].last_moving_avg == 49.0
    assert runs[2].max_return == -300.0
    assert first.config["seed"] == 1
    assert first.created_at.tzinfo is not None
    assert first.label == "#1 NeuroFlow CartPole-v1"


def test_a_run_without_episodes_is_listed_with_nan_statistics(tmp_path):
    path = tmp_path / "metrics.db"
    add_run(path, "CartPole-v1", [])
    (run,) = list_runs(path)
    assert (run.episodes, run.steps) == (0, 0)
    assert math.isnan(run.best_moving_avg) and math.isnan(run.last_moving_avg)
    fig = plot_runs(path, [1])  # an empty run draws empty panels, no error
    assert len(fig.axes) == 6


def test_several_runs_are_overlaid_one_line_set_each(db):
    fig = plot_runs(db, [1, 2, 3])
    lines = lines_per_axis(fig)
    assert len(fig.axes) == 6
    # Return panel: the raw return and its moving average per run, plus one ±std band.
    ret = next(ax for ax in fig.axes if ax.get_title().startswith("Episode return"))
    assert lines[ret.get_title()] == 2 * 3
    assert len(ret.collections) == 3
    assert [t.get_text() for t in ret.get_legend().get_texts()] == [
        "#1 NeuroFlow CartPole-v1",
        "#2 NeuroFlow CartPole-v1",
        "#3 NeuroFlow Pendulum-v1",
    ]
    for title in ("Episode length", "Actor loss", "Critic loss", "Entropy loss"):
        assert lines[title] == 3
    assert lines["Entropy temperature alpha (log scale)"] == 3
    # One colour per run, the same colour in every panel.
    colours = [line.get_color() for line in ret.get_lines()[1::2]]
    assert len(set(colours)) == 3
    length = next(ax for ax in fig.axes if ax.get_title() == "Episode length")
    assert [line.get_color() for line in length.get_lines()] == colours


def test_curves_hold_the_episode_data(db):
    fig = plot_runs(db, [2])
    ret = next(ax for ax in fig.axes if ax.get_title().startswith("Episode return"))
    raw, moving = ret.get_lines()
    assert list(raw.get_xdata()) == [1, 2, 3]
    assert list(raw.get_ydata()) == [12.0, 14.0, 50.0]
    assert list(moving.get_ydata()) == [11.0, 13.0, 49.0]
    critic = next(ax for ax in fig.axes if ax.get_title() == "Critic loss")
    values = list(critic.get_lines()[0].get_ydata())
    assert all(math.isnan(v) for v in values[:WARMUP])  # warm-up: no losses, a gap
    assert values[WARMUP] == pytest.approx(1 / 3)


def test_the_latest_run_is_the_default(db):
    fig = plot_runs(db)
    assert "#3" in fig.get_suptitle()
    assert all(n == 1 for title, n in lines_per_axis(fig).items() if "return" not in title)
    (run,) = load_runs(db)
    assert run.summary.id == 3 and run.reward == [-900.0, -800.0, -500.0, -300.0]


def test_load_runs_keeps_the_order_given(db):
    assert [r.summary.id for r in load_runs(db, [3, 1])] == [3, 1]


def test_png_has_the_size_asked_for(db, tmp_path):
    out = tmp_path / "report.png"
    plot_runs(db, [1, 2], out=out)
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (1200, 700)
    small = tmp_path / "small.png"
    plot_runs(db, [1], out=small, figsize=(6, 4), dpi=50)
    with Image.open(small) as image:
        assert image.size == (300, 200)


def test_html_report_is_self_contained_and_holds_the_data(db, tmp_path):
    out = write_html_report(db, [1, 3], tmp_path / "report.html")
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "CartPole-v1" in page and "Pendulum-v1" in page
    assert "<td>-900</td>" in page and "<td>40</td>" in page  # episode returns
    assert "20/128" in page and "<td>64</td>" in page  # neurons and batch size
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"<script|<link|@import|url\(", page, re.I)
    (image,) = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    with Image.open(io.BytesIO(base64.b64decode(image))) as png:
        assert png.size == (1200, 700)


def test_html_escapes_what_it_shows(tmp_path):
    path = tmp_path / "metrics.db"
    add_run(path, "<b>Env</b>-v0", [1.0])
    page = write_html_report(path, out=tmp_path / "r.html").read_text()
    assert "<b>Env</b>" not in page and "&lt;b&gt;Env&lt;/b&gt;-v0" in page


def test_unknown_run_ids_are_named(db):
    with pytest.raises(
        ValueError, match=r"no run with id 7, 9 in .*metrics.db \(run ids there: 1..3\)"
    ):
        plot_runs(db, [1, 7, 9])
    with pytest.raises(ValueError, match="no run with id 4"):
        write_html_report(db, [4], db.parent / "r.html")
    assert not (db.parent / "r.html").exists()


def test_an_empty_database_has_no_latest_run(tmp_path):
    path = tmp_path / "metrics.db"
    MetricsWriter(path)  # creates the tables, no run
    assert list_runs(path) == []
    with pytest.raises(ValueError, match="holds no runs yet"):
        plot_runs(path)


def test_a_missing_database_is_not_created(tmp_path):
    missing = tmp_path / "nope.db"
    for call in (list_runs, load_runs, plot_runs, write_html_report):
        with pytest.raises(FileNotFoundError, match="no metrics database at"):
            call(missing)
    assert not missing.exists()


def test_a_foreign_sqlite_file_is_refused_and_left_alone(tmp_path):
    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    before = foreign.read_bytes()
    with pytest.raises(ValueError, match="not a Velora metrics database"):
        list_runs(foreign)
    assert foreign.read_bytes() == before

    text = tmp_path / "notes.txt"
    text.write_text("not a database at all\n" * 100)
    with pytest.raises(ValueError, match="not a Velora metrics database"):
        plot_runs(text)


def test_importing_metrics_imports_neither_matplotlib_nor_torch():
    code = "import sys, velora.metrics; print('matplotlib' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_the_temperature_is_recorded_and_drawn(tmp_path):
    from velora.models import NeuroFlow

    path = tmp_path / "metrics.db"
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=2000, seed=0)
    agent.train(16, n_episodes=5, db_path=str(path), log_freq=2)
    with sqlite3.connect(path) as connection:
        alphas = [row[0] for row in connection.execute("SELECT alpha FROM episode")]
    assert len(alphas) == 5 and alphas[-1] == pytest.approx(float(agent.entropy))
    # The warm-up: no update moved it from its start yet.
    assert alphas[0] == pytest.approx(agent.config.initial_alpha)
    assert alphas[-1] != alphas[0]
    fig = plot_runs(path)
    ax = next(a for a in fig.axes if a.get_title().startswith("Entropy temperature"))
    assert ax.get_yscale() == "log"
    assert list(ax.get_lines()[0].get_ydata()) == pytest.approx(alphas)

"""`velora sweep ENV_ID --config sweep.yaml`: a real local Ray sweep from the shell."""

import csv
import subprocess
import sys
import textwrap

import pytest

from velora.cli import main

pytest.importorskip("ray")

CONFIG = """\
search_space:
  actor_neurons: 8
  critic_neurons: 16
  buffer_size: 5000
  actor_lr: [0.0003, 0.001]   # a grid: two trials
  tau: {uniform: [0.005, 0.01]}
seeds: [0]
n_episodes: 4
batch_size: 16
log_freq: 2
num_cpus: 2
"""


def test_sweep_prints_the_table_and_writes_csv(tmp_path):
    (tmp_path / "sweep.yaml").write_text(CONFIG)
    result = subprocess.run(
        [sys.executable, "-m", "velora.cli", "sweep", "CartPole-v1", "--config", "sweep.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert len(rows) == 2
    assert {row["actor_lr"] for row in rows} == {"0.0003", "0.001"}
    assert all(0.005 <= float(row["tau"]) <= 0.01 for row in rows)
    # Best first, in the CSV and in the printed table.
    assert float(rows[0]["best_moving_avg"]) >= float(rows[1]["best_moving_avg"])
    assert rows[0]["trial_id"] in result.stdout


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("search_space:\n  colour: [1, 2]\n", "colour"),
        ("search_space:\n  tau: {evaluate: [1]}\n", "sampler"),
        ("search_space: {}\nfrobnicate: 3\n", "frobnicate"),
        ("search_space: [1, 2]\n", "mapping"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, monkeypatch, capsys, config, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep.yaml").write_text(textwrap.dedent(config))
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "CartPole-v1", "--config", "sweep.yaml"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and "\n" not in err
    assert not (tmp_path / "sweeps").exists()

"""The `velora` command, driven as a user drives it: in a subprocess, in a work folder.

One tiny CartPole run is trained once for the module; the other commands read what it
wrote. They are independent, so they run side by side and the tests check their
results. Bad input must give one `error:` line on stderr, a non-zero status and no
traceback. The bad-input cases that only fail after importing torch run in this process
through `velora.cli.main`, the console script's entry point, as each fresh interpreter
would spend seconds of CPU importing torch again.
"""

import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from velora.cli import main

TRAIN = [
    "train", "CartPole-v1", "--actor-neurons", "8", "--critic-neurons", "16",
    "--batch-size", "16", "--episodes", "6", "--checkpoints", "run1", "--frequency", "3",
    "--seed", "0", "--buffer-size", "5000", "--updates-per-step", "2",
]  # fmt: skip
FINAL = "checkpoints/run1/saves/CartPole_final"
MEAN_STD = re.compile(r"return (-?\d+\.\d+) ± (\d+\.\d+) over (\d+) deterministic episodes")


def velora(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "velora.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


def fails(result: subprocess.CompletedProcess, *needles: str) -> str:
    """The single stderr line of a command that must fail cleanly."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert line.startswith("error: ")
    for needle in needles:
        assert needle in line
    return line


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder holding one trained run: metrics.db and checkpoints/run1."""
    folder = tmp_path_factory.mktemp("cli")
    out = ok(velora(*TRAIN, cwd=folder))
    assert "run 1 in" in out and str(folder / "metrics.db") in out
    assert str(folder / "checkpoints" / "run1" / "saves") in out
    assert f"velora eval {FINAL}" in out
    with sqlite3.connect(folder / "metrics.db") as db:
        (config,) = db.execute("SELECT config FROM experiment").fetchone()
    assert json.loads(config)["train"]["updates_per_step"] == 2
    return folder


@pytest.fixture(scope="module")
def empty(tmp_path_factory) -> Path:
    """A folder without a metrics database, but with two files that are not one."""
    folder = tmp_path_factory.mktemp("cli-empty")
    with sqlite3.connect(folder / "other.db") as con:
        con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    (folder / "text.db").write_text("hello\n" * 200)
    return folder


@pytest.fixture(scope="module")
def latest(work, tmp_path_factory) -> Path:
    """A copy of the trained run's database alone, for `velora report` with no arguments."""
    folder = tmp_path_factory.mktemp("cli-latest")
    shutil.copy(work / "metrics.db", folder / "metrics.db")
    return folder


@pytest.fixture(scope="module")
def results(work, empty, latest) -> dict[str, subprocess.CompletedProcess]:
    """Every command that does not depend on another one's output, run 4 at a time."""
    commands = {
        "runs": (work, "runs"),
        "report png": (work, "report", "1", "--out", "r.png"),
        "report html": (work, "report", "1", "--out", "r.html"),
        "report latest": (latest, "report"),
        "eval": (work, "eval", FINAL, "--episodes", "2", "--seed", "0"),
        "envs": (empty, "envs", "lunar"),
        "runs no db": (empty, "runs"),
        "runs missing db": (empty, "runs", "--db", "nope.db"),
        "report missing db": (empty, "report", "--db", "nope.db"),
        "runs foreign db": (empty, "runs", "--db", "other.db"),
        "report text db": (empty, "report", "--db", "text.db"),
        "unknown run": (work, "report", "1", "42", "--out", "x.png"),
        "bad suffix": (work, "report", "--out", "r.txt"),
        "patience alone": (empty, "train", "CartPole-v1", "--patience", "3"),
        "best without evaluations": (empty, "train", "CartPole-v1", "--checkpoints", "x", "--best"),
        "keep-last alone": (empty, "train", "CartPole-v1", "--keep-last", "2"),
        "videos without folder": (empty, "train", "CartPole-v1", "--record-videos"),
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(velora, *args, cwd=cwd) for name, (cwd, *args) in commands.items()
        }
        return {name: future.result() for name, future in futures.items()}


def test_train_writes_metrics_and_checkpoints(work):
    saves = work / "checkpoints" / "run1" / "saves"
    assert {p.name for p in saves.iterdir()} >= {
        "CartPole_3",
        "CartPole_6",
        "CartPole_final",
        "completed.json",
        "model_config.json",
    }
    with sqlite3.connect(work / "metrics.db") as con:
        assert con.execute("SELECT count(*) FROM episode").fetchone() == (6,)
        assert con.execute("SELECT env FROM experiment").fetchall() == [("CartPole-v1",)]


def test_runs_lists_the_run(results):
    out = ok(results["runs"])
    row = next(line for line in out.splitlines() if "CartPole-v1" in line)
    assert re.search(r"\b1\b.*NeuroFlow.*CartPole-v1.*\b6\b", row)


def test_report_png_has_the_figure_size(results, work):
    assert "r.png" in ok(results["report png"])
    with Image.open(work / "r.png") as image:
        assert image.format == "PNG"
        assert image.size == (1200, 700)


def test_report_html_is_self_contained(results, work):
    ok(results["report html"])
    page = (work / "r.html").read_text()
    assert "CartPole-v1" in page
    with sqlite3.connect(work / "metrics.db") as con:
        lengths = [n for (n,) in con.execute("SELECT length FROM episode ORDER BY episode_num")]
    cells = re.findall(r"<tr><td>(\d+)</td><td>[^<]*</td><td>(\d+)</td>", page)
    assert [(int(e), int(n)) for e, n in cells] == list(enumerate(lengths, start=1))
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"<script|<link|@import|url\(", page, re.I)


def test_report_defaults_to_the_latest_run_and_report_png(results, latest):
    assert "(run 1)" in ok(results["report latest"])
    with Image.open(latest / "report.png") as image:
        assert image.size == (1200, 700)


def test_eval_prints_mean_and_std(results):
    match = MEAN_STD.search(ok(results["eval"]))
    assert match
    assert match.group(3) == "2"
    assert float(match.group(2)) >= 0


def test_eval_records_videos(work):
    out = ok(velora("eval", FINAL, "--episodes", "2", "--video", "eval-videos", cwd=work))
    assert MEAN_STD.search(out)
    videos = sorted((work / "eval-videos").glob("*.mp4"))
    assert [v.name for v in videos] == [
        "CartPole-eval-episode-0.mp4",
        "CartPole-eval-episode-1.mp4",
    ]
    assert all(v.stat().st_size > 0 for v in videos)
    # The same folder again is refused rather than overwritten.
    fails(
        velora("eval", FINAL, "--video", "eval-videos", cwd=work),
        "eval-videos already holds videos",
    )


def test_envs_finds_both_lunar_landers(results):
    out = ok(results["envs"])
    assert re.search(r"LunarLander-v3\s.*discrete", out)
    assert re.search(r"LunarLanderContinuous-v3\s.*continuous", out)


def test_envs_filters_by_action_type(capfd):
    with pytest.raises(SystemExit) as exit_info:
        main(["envs", "lunar", "--continuous"])
    out = capfd.readouterr().out
    assert exit_info.value.code == 0
    assert "LunarLanderContinuous-v3" in out and "LunarLander-v3 " not in out


@pytest.mark.parametrize(
    "case, needles",
    [
        ("runs no db", ["no metrics database at metrics.db"]),
        ("runs missing db", ["no metrics database at nope.db"]),
        ("report missing db", ["no metrics database at nope.db"]),
        ("runs foreign db", ["other.db is not a Velora metrics database"]),
        ("report text db", ["text.db is not a Velora metrics database"]),
        ("unknown run", ["no run with id 42", "run ids there: 1..1"]),
        ("bad suffix", ["--out must end in"]),
        ("patience alone", ["--patience needs --target"]),
        ("best without evaluations", ["--best needs --eval-every"]),
        ("keep-last alone", ["--best and --keep-last need --checkpoints"]),
        ("videos without folder", ["--record-videos needs --checkpoints"]),
    ],
)
def test_bad_input_is_one_clear_line(results, case, needles):
    fails(results[case], *needles)


def run_main(args: list[str], capfd) -> subprocess.CompletedProcess:
    """`velora ARGS` in this process, as a finished process for `ok` and `fails`."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(["velora", *args], exit_info.value.code, out, err)


@pytest.mark.parametrize(
    "args, needles",
    [
        (
            ["train", "CartPol-v1", "--episodes", "1"],
            ["Unknown environment 'CartPol-v1'", "Did you mean", "'CartPole-v1'"],
        ),
        (["eval", "checkpoints/run1"], ["checkpoints/run1", "metadata.json is missing"]),
        (["eval", "no/such/folder"], ["no/such/folder", "does not exist"]),
        (TRAIN, ["checkpoints/run1/saves already holds checkpoints"]),
        (
            ["train", "CartPole-v1", "--episodes", "1", "--mlflow", "http://127.0.0.1:1"],
            ["cannot reach the MLflow tracking store at 'http://127.0.0.1:1'"],
        ),
        (
            ["train", "CartPole-v1", "--episodes", "1", "--target-entropy-scale", "1.5"],
            ["target_entropy_scale must be a number in (0, 1)", "got 1.5"],
        ),
        (
            ["train", "Pendulum-v1", "--episodes", "1", "--target-entropy-scale", "0.5"],
            ["for Box actions give target_entropy in nats"],
        ),
        (
            ["train", "CartPole-v1", "--episodes", "1", "--critic-history", "own"],
            ['critic_history="own" trains the critics\' memory', "sequence_length > 1"],
        ),
    ],
)
def test_bad_input_after_torch_is_one_clear_line(work, monkeypatch, capfd, args, needles):
    monkeypatch.chdir(work)
    fails(run_main(args, capfd), *needles)


def test_bad_input_leaves_nothing_behind(results, work, empty):
    assert not (empty / "metrics.db").exists()  # not created by `runs`
    assert not (empty / "nope.db").exists()
    assert not (work / "x.png").exists()
    with sqlite3.connect(work / "metrics.db") as con:  # the refused train recorded no run
        assert con.execute("SELECT count(*) FROM experiment").fetchone() == (1,)


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "velora"
    if not script.exists():
        pytest.skip("velora is not pip-installed into this interpreter's environment")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    out = ok(result)
    for command in ("train", "eval", "envs", "runs", "report"):
        assert command in out


def test_the_cli_imports_no_torch_until_a_command_needs_it():
    code = (
        "import sys, velora.cli; "
        "print([m for m in ('torch', 'matplotlib', 'gymnasium') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert ok(result).strip() == "[]"


def test_train_compile_flag_compiles_the_agent(tmp_path, monkeypatch, capfd):
    from velora.models import NeuroFlow
    from velora.models.handwritten_update import EAGER

    compiled = []
    real_compile = NeuroFlow.compile

    def spy(agent, **options):
        compiled.append(agent)
        return real_compile(agent, **options)

    monkeypatch.setattr(NeuroFlow, "compile", spy)
    monkeypatch.chdir(tmp_path)
    args = [
        "train", "CartPole-v1", "--actor-neurons", "8", "--critic-neurons", "16",
        "--batch-size", "16", "--episodes", "2", "--seed", "0", "--buffer-size", "1000",
        "--compile",
    ]  # fmt: skip
    ok(run_main(args, capfd))
    (agent,) = compiled
    assert agent._stages is not EAGER and agent.steps_done > 16  # it trained, compiled
    ok(run_main(args[:-1], capfd))
    assert len(compiled) == 1  # and without the flag it does not compile


def test_train_sets_the_temperature_and_critics_of_the_saved_agent(tmp_path, monkeypatch, capfd):
    from velora.models import NeuroFlow

    monkeypatch.chdir(tmp_path)
    args = [
        "train", "Acrobot-v1", "--actor-neurons", "8", "--critic-neurons", "16",
        "--batch-size", "16", "--episodes", "1", "--seed", "0", "--buffer-size", "1000",
        "--checkpoints", "run", "--initial-alpha", "0.05", "--target-entropy-scale", "0.6",
        "--critic-history", "actor_hidden", "--n-steps", "2",
    ]  # fmt: skip
    ok(run_main(args, capfd))
    agent = NeuroFlow.load(tmp_path / "checkpoints/run/saves/Acrobot_final")
    assert agent.config.initial_alpha == 0.05 and agent.config.target_entropy_scale == 0.6
    assert agent.critic_history == "actor_hidden" and agent.n_steps == 2
    assert agent.head.target_entropy == pytest.approx(0.6 * math.log(3))
    assert agent.alpha.item() != pytest.approx(0.05)  # it trained from there


def test_train_starts_from_a_preset_and_the_command_line_wins(tmp_path, monkeypatch, capfd):
    from velora.models import NeuroFlow

    monkeypatch.chdir(tmp_path)
    (tmp_path / "presets.toml").write_text(
        '["Acrobot-v1".agent]\ninitial_alpha = 0.05\ngamma = 0.97\n'
        '["Acrobot-v1".train]\nn_episodes = 2\nwarmup_steps = 40\n'
    )
    args = [
        "train", "Acrobot-v1", "--actor-neurons", "8", "--critic-neurons", "16",
        "--batch-size", "16", "--seed", "0", "--buffer-size", "2000", "--checkpoints", "run",
        "--preset-file", "presets.toml", "--initial-alpha", "0.2",
    ]  # fmt: skip
    ok(run_main(args, capfd))
    agent = NeuroFlow.load(tmp_path / "checkpoints/run/saves/Acrobot_final")
    assert agent.config.gamma == 0.97  # from the preset
    assert agent.config.initial_alpha == 0.2  # the command line's
    assert agent.episodes_done == 2 and agent.config.train.warmup_steps == 40
    assert agent.config.train.batch_size == 16
    fails(
        run_main(["train", "Pendulum-v1", "--preset-file", "presets.toml"], capfd),
        "No preset for 'Pendulum-v1'",
        "presets there: Acrobot-v1",
    )
    assert not (tmp_path / "checkpoints/run/saves/Pendulum_final").exists()


def test_train_evaluates_keeps_the_best_and_logs_to_every_tracker(tmp_path, monkeypatch, capfd):
    from mlflow import MlflowClient
    from test_tensorboard import scalars

    monkeypatch.chdir(tmp_path)
    args = [
        "train", "CartPole-v1", "--actor-neurons", "8", "--critic-neurons", "16",
        "--batch-size", "16", "--episodes", "6", "--seed", "0", "--buffer-size", "1000",
        "--eval-every", "2", "--eval-episodes", "2", "--checkpoints", "run", "--best",
        "--frequency", "2", "--keep-last", "1", "--tensorboard", "tb",
        "--mlflow", "sqlite:///mlflow.db",
    ]  # fmt: skip
    out = ok(run_main(args, capfd))
    assert out.count("Evaluation at episode") == 3
    with sqlite3.connect("metrics.db") as db:
        evaluations = db.execute("SELECT episode_num, mean_return FROM evaluation").fetchall()
    assert [episode for episode, _ in evaluations] == [2, 4, 6]
    saves = Path("checkpoints/run/saves")
    assert sorted(p.name for p in saves.iterdir() if p.is_dir()) == [
        "CartPole_6", "CartPole_best", "CartPole_final"
    ]  # fmt: skip
    best = json.loads((saves / "completed.json").read_text())["best"]
    assert best["mean_return"] == max(mean for _, mean in evaluations)

    (run_dir,) = Path("tb").iterdir()
    assert scalars(run_dir)["eval/mean_return"] == pytest.approx(dict(evaluations))
    client = MlflowClient("sqlite:///mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("velora").experiment_id])
    history = client.get_metric_history(run.info.run_id, "eval/mean_return")
    assert {m.step: m.value for m in history} == pytest.approx(dict(evaluations))


def test_export_writes_an_onnx_file_of_the_saved_agent(work, tmp_path, capfd):
    import onnxruntime

    out = tmp_path / "policy.onnx"
    printed = ok(run_main(["export", str(work / FINAL), "--out", str(out)], capfd))
    assert f"{out}" in printed and "obs (batch, 4)" in printed and "(batch,) int64" in printed
    runtime = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in runtime.get_inputs()] == ["obs", "hidden"]
    fails(run_main(["export", str(work / FINAL), "--out", str(out)], capfd), "--overwrite")
    ok(run_main(["export", str(work / FINAL), "--out", str(out), "--overwrite"], capfd))
    fails(
        run_main(["export", str(work / "checkpoints"), "--out", str(tmp_path / "x.onnx")], capfd),
        "metadata.json is missing",
    )
    assert not (tmp_path / "x.onnx").exists()


def test_inspect_draws_the_saved_agent(work, tmp_path, capfd):
    out = tmp_path / "inspect"
    printed = ok(run_main(["inspect", str(work / FINAL), "--out", str(out), "--seed", "2"], capfd))
    for name in ("circuit.png", "activity.png", "inspect.html"):
        assert str(out / name) in printed and (out / name).stat().st_size > 1000
    page = (out / "inspect.html").read_text()
    assert "pole angular velocity" in page and "push left (logit)" in page
    fails(run_main(["inspect", str(work / FINAL), "--out", str(out)], capfd), "--overwrite")
    names = ["--obs-names", "a,b,c,d", "--action-names", "left,right", "--overwrite"]
    ok(run_main(["inspect", str(work / FINAL), "--out", str(out), *names], capfd))
    assert "left (logit)" in (out / "inspect.html").read_text()
    fails(
        run_main(
            ["inspect", str(work / FINAL), "--out", str(tmp_path / "new"), "--obs-names", "a,b"],
            capfd,
        ),
        "obs_names has 2 names for 4 components",
    )

"""`velora.tune.run_sweep` on a real Ray: an embedded local Ray, a two-node cluster, ASHA.

No Ray mocks. Networks are tiny and trials train a handful of CartPole episodes, so most
of each test's time is Ray starting up. Every test runs in its own temp dir (conftest).
"""

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from sqlmodel import Session, select

from velora.metrics import Episode, Experiment, get_db_engine
from velora.models import NeuroFlow
from velora.tune import SweepResult, TrialRow, run_sweep, searchable_params

# tensorboardX (a Ray Tune dependency, for Tune's own logs) imports comet_ml when it is
# installed; comet_ml then turns on Sentry error reports unless told not to.
os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")

TINY = {"actor_neurons": 8, "critic_neurons": 16, "buffer_size": 5_000}
FAST = {"batch_size": 16, "log_freq": 2, "verbose": 0}


@pytest.fixture
def ray():
    return pytest.importorskip("ray")


@pytest.fixture(autouse=True)
def _no_ray_left_running():
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def episodes_of(row: TrialRow) -> list[Episode]:
    """The episodes in the trial's own metrics.db."""
    with Session(get_db_engine(Path(row.trial_dir) / "metrics.db")) as session:
        experiments = session.exec(select(Experiment)).all()
        assert len(experiments) == 1  # the trial's db holds its own run only
        return list(session.exec(select(Episode).order_by(Episode.episode_num)).all())


def check_trial_matches_its_files(row: TrialRow, sweep: SweepResult) -> NeuroFlow:
    """Reported numbers equal the trial's metrics.db; its checkpoint loads and predicts."""
    assert Path(row.trial_dir) == sweep.path / row.trial_id
    episodes = episodes_of(row)
    assert [e.episode_num for e in episodes] == list(range(1, row.episodes + 1))
    assert row.best_moving_avg == max(e.reward_moving_avg for e in episodes)
    assert row.last_moving_avg == episodes[-1].reward_moving_avg
    assert row.steps == sum(e.length for e in episodes)

    assert row.checkpoint == str(Path(row.trial_dir) / "final")
    agent = NeuroFlow.load(row.checkpoint)
    assert agent.seed == row.seed
    assert agent.episodes_done == row.episodes
    obs, _ = agent.eval_env.reset(seed=0)
    action, hidden = agent.predict(obs)
    agent.eval_env.step(action)
    assert hidden.shape == (agent.actor.hidden_size,)
    return agent


def test_local_sweep_reports_what_each_trial_wrote(ray):
    sweep = run_sweep(
        "CartPole-v1", TINY, seeds=[0, 1], n_episodes=6, num_cpus=2, name="local", **FAST
    )

    assert not ray.is_initialized()  # the embedded Ray is shut down again
    assert sweep.path == Path("sweeps", "local").resolve()
    assert len(sweep) == 2
    assert sorted(row.seed for row in sweep) == [0, 1]
    assert [row.best_moving_avg for row in sweep] == sorted(
        (row.best_moving_avg for row in sweep), reverse=True
    )
    assert sweep.best is sweep[0]
    for row in sweep:
        assert row.status == "completed"
        assert row.episodes == 6
        assert row.config == TINY
        assert row.node_ip and row.hostname and row.node_id
        agent = check_trial_matches_its_files(row, sweep)
        assert (agent.config.actor_neurons, agent.config.critic_neurons) == (8, 16)
        assert (Path(row.trial_dir) / "model_config.json").is_file()

    text = str(sweep)
    assert "best avg" in text.splitlines()[0]
    assert text.splitlines()[2].startswith(f"1  {sweep[0].trial_id}")

    path = sweep.to_csv(Path("out") / "sweep.csv")
    with open(path, newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["trial_id"] for r in table] == [row.trial_id for row in sweep]
    assert [r["rank"] for r in table] == ["1", "2"]
    assert {r["seed"] for r in table} == {"0", "1"}
    assert all(r["actor_neurons"] == "8" and r["status"] == "completed" for r in table)


def test_grid_over_a_parameter_with_tune_search_objects(ray):
    from mlflow import MlflowClient
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    uri = f"sqlite:///{Path('mlflow.db').resolve()}"
    logger = MLflowLoggerCallback(uri, experiment_name="sweep")
    space = {**TINY, "actor_lr": [1e-3, 3e-4], "gamma": tune.choice([0.95]), "updates_per_step": 2}
    sweep = run_sweep(
        "CartPole-v1", space, seeds=[3], n_episodes=3, num_cpus=2, callbacks=[logger], **FAST
    )

    assert sorted(row.config["actor_lr"] for row in sweep) == [3e-4, 1e-3]
    for row in sweep:
        assert row.seed == 3
        assert row.config["gamma"] == 0.95
        agent = check_trial_matches_its_files(row, sweep)
        assert agent.config.actor_lr == row.config["actor_lr"]
        assert agent.config.gamma == 0.95
        assert agent.config.train.updates_per_step == 2  # train() arguments reach train()
        assert agent.episodes_done == 3  # n_episodes % log_freq != 0: the last write counts

    # Ray's own MLflow logger got every trial's reports: one MLflow run per trial.
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    by_lr = {float(run.data.params["actor_lr"]): run for run in runs}
    assert sorted(by_lr) == [3e-4, 1e-3]
    for row in sweep:
        run_id = by_lr[row.config["actor_lr"]].info.run_id
        history = {  # metric -> {report number: value}
            name: {m.step: m.value for m in client.get_metric_history(run_id, name)}
            for name in ("episode", "reward_moving_avg")
        }
        reported = {
            int(episode): history["reward_moving_avg"][step]
            for step, episode in history["episode"].items()
        }
        averages = {e.episode_num: e.reward_moving_avg for e in episodes_of(row)}
        assert reported == pytest.approx({2: averages[2], 3: averages[3]})


@pytest.fixture
def two_node_cluster(ray):
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def test_sweep_on_a_two_node_cluster_uses_both_nodes(ray, two_node_cluster):
    sweep = run_sweep(
        "CartPole-v1", TINY, seeds=[0, 1], n_episodes=4, address=two_node_cluster.address, **FAST
    )

    node_ids = {node.node_id for node in two_node_cluster.list_all_nodes()}
    assert len(node_ids) == 2
    assert {row.node_id for row in sweep} == node_ids  # one trial on each 1-CPU node
    for row in sweep:
        assert row.status == "completed"
        check_trial_matches_its_files(row, sweep)


def test_asha_cuts_a_lagging_trial_which_keeps_its_files(ray):
    # One trial at a time, so the order is fixed: the 5-step-episode trial reaches the
    # first rung (episode 2) after a full-length one and is far below it. The third
    # trial repeats the first on the worker the cut trial leaves behind.
    space = {**TINY, "max_steps": [500, 5, 500]}
    sweep = run_sweep(
        "CartPole-v1",
        space,
        seeds=[0],
        n_episodes=8,
        scheduler="asha",
        max_concurrent_trials=1,
        num_cpus=2,
        **FAST,
    )

    *full, short = sweep
    assert short.config["max_steps"] == 5 and short.status == "cut"
    assert short.episodes == 2
    for row in full:
        assert row.config["max_steps"] == 500 and row.status == "completed"
        assert row.episodes == 8
    assert full[0].best_moving_avg == full[1].best_moving_avg  # same seed, same run
    for row in sweep:
        check_trial_matches_its_files(row, sweep)  # nothing written after the cut


def test_early_stopping_target_ends_trials(ray):
    sweep = run_sweep(
        "CartPole-v1", TINY, seeds=[0], n_episodes=20, target=1.0, patience=3, num_cpus=2, **FAST
    )
    (row,) = sweep
    assert row.status == "early_stopped"
    assert row.episodes == 3  # every CartPole return is >= 1
    check_trial_matches_its_files(row, sweep)


# --- bad input: clear errors before Ray starts or any folder is written ---------------


def check_nothing_started(ray) -> None:
    assert not ray.is_initialized()
    assert not Path("sweeps").exists()


def test_unknown_search_space_key_names_the_valid_ones(ray):
    with pytest.raises(ValueError, match="'actor_neuronz'") as err:
        run_sweep("CartPole-v1", {"actor_neuronz": [8, 16]})
    searchable = ("actor_neurons", "critic_lr", "batch_size", "tau", "gamma", "buffer_size")
    for name in (*searchable, "updates_per_step", "n_envs"):
        assert name in str(err.value)
        assert name in searchable_params()
    check_nothing_started(ray)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seeds": []}, "seeds is empty"),
        ({"seeds": [0, -1]}, "seed"),
        ({"search_space": {"seed": [0, 1]}}, "seeds="),
        ({"search_space": {"actor_lr": []}}, "empty list"),
        ({"scheduler": "hyperband"}, "scheduler"),
        ({"n_episodes": 0}, "n_episodes"),
        ({"resources_per_trial": {"cpu": -1}}, "resources_per_trial"),
        ({"env_id": "CartPol-v1"}, "CartPole-v1"),
    ],
)
def test_bad_arguments_fail_before_any_trial(ray, kwargs, message):
    kwargs = {"env_id": "CartPole-v1", "search_space": TINY, **kwargs}
    with pytest.raises(ValueError, match=message):
        run_sweep(**kwargs)
    check_nothing_started(ray)


def test_training_callbacks_are_refused_as_sweep_callbacks(ray):
    from velora.callbacks import EarlyStopping

    with pytest.raises(TypeError, match=r"Ray Tune callbacks.*belong to train\(\)"):
        run_sweep("CartPole-v1", TINY, seeds=[0], callbacks=[EarlyStopping(100.0)])
    check_nothing_started(ray)


def test_unreachable_address_is_a_fast_clear_error(ray):
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match="No Ray cluster answers at '127.0.0.1:1'"):
        run_sweep("CartPole-v1", TINY, seeds=[0], address="127.0.0.1:1", connect_timeout=2)
    assert time.perf_counter() - start < 10
    check_nothing_started(ray)


def test_missing_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install "velora\[tune\]"'):
        run_sweep("CartPole-v1", TINY, seeds=[0])
    assert not Path("sweeps").exists()


def test_sweep_result_table_without_ray():
    rows = [
        TrialRow("b", "cut", {"actor_lr": 1e-3, "optim": torch.optim.AdamW}, seed=1,
                 episodes=4, best_moving_avg=10.0, last_moving_avg=9.0),
        TrialRow("c", "error", {"actor_lr": 1e-2}, error="ValueError: boom"),
        TrialRow("a", "completed", {"actor_lr": 3e-4}, seed=0, episodes=8,
                 best_moving_avg=20.5, last_moving_avg=20.0),
    ]  # fmt: skip
    sweep = SweepResult(rows=rows, path=Path("sweeps/x"), name="x")
    assert [row.trial_id for row in sweep] == ["a", "b", "c"]
    assert sweep.params == ["actor_lr", "optim"]
    lines = str(sweep).splitlines()
    assert lines[0].split() == [
        "#", "trial", "status", "seed", "episodes", "best", "avg", "last", "avg",
        "actor_lr", "optim", "node", "time", "s",
    ]  # fmt: skip
    assert lines[2].split()[:6] == ["1", "a", "completed", "0", "8", "20.50"]
    assert "AdamW" in lines[3]
    with open(sweep.to_csv("x.csv"), newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["trial_id"] for r in table] == ["a", "b", "c"]
    assert table[1]["optim"] == "AdamW" and table[0]["optim"] == ""
    assert table[2]["error"] == "ValueError: boom" and table[2]["best_moving_avg"] == "nan"


def test_velora_tune_imports_without_ray(tmp_path):
    code = "import sys; sys.modules['ray'] = None; import velora.tune; print('ok')"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_a_failing_trial_is_an_error_row_and_all_failing_is_an_error(ray):
    sweep = run_sweep(
        "CartPole-v1", {**TINY, "tau": [0.005, 2.0]}, seeds=[0], n_episodes=2, num_cpus=2, **FAST
    )
    good, bad = sweep
    assert good.status == "completed" and good.config["tau"] == 0.005
    assert bad.status == "error" and bad.config["tau"] == 2.0
    assert "tau must be in (0, 1]" in bad.error
    assert bad.checkpoint is None and bad.trial_dir == str(sweep.path / bad.trial_id)

    with pytest.raises(RuntimeError, match=r"every trial of the sweep failed.*tau must be"):
        run_sweep("CartPole-v1", {**TINY, "tau": 2.0}, n_episodes=2, num_cpus=2, **FAST)

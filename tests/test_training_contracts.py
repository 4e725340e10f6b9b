"""The training package's contracts: one config for every setting, the callback base
class it owns, and no agent code behind `import velora.training`."""

import inspect
import subprocess
import sys
from dataclasses import fields

import pytest

from velora.models import NeuroFlow
from velora.training import TrainCallback, TrainConfig, TrainProgress


def test_importing_velora_training_loads_no_agent_code():
    code = (
        "import sys, velora.training, velora.callbacks\n"
        "print(sorted(m for m in sys.modules if m.startswith(('velora.models', 'velora.nn', "
        "'velora.buffer'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_callbacks_reexports_the_loops_base_class():
    import velora.callbacks

    assert velora.callbacks.TrainCallback is TrainCallback
    assert TrainCallback.__module__ == "velora.training.callback"


def test_a_callback_that_is_not_a_train_callback_is_refused_before_training(tmp_path):
    class Duck:  # has every hook, but is not a TrainCallback
        def on_step(self, state):
            return True

    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=1000, seed=0)
    with pytest.raises(TypeError, match="subclass velora.callbacks.TrainCallback"):
        agent.train(16, n_episodes=1, callbacks=[Duck()], db_path=str(tmp_path / "m.db"))
    assert not (tmp_path / "m.db").exists()


@pytest.mark.parametrize(
    ("setting", "value"),
    [("n_episodes", 0), ("log_freq", -1), ("max_steps", 2.5), ("warmup_steps", -1)],
)
def test_bad_settings_fail_when_the_config_is_built(setting, value):
    with pytest.raises(ValueError, match=f"{setting} must be an integer"):
        TrainConfig(**{setting: value})


def test_an_unknown_setting_names_itself():
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=1000, seed=0)
    with pytest.raises(TypeError, match="n_epsiodes"):
        agent.train(16, n_epsiodes=3)


def test_the_command_line_takes_its_training_defaults_and_help_from_the_config():
    from velora.cli.train import train

    options = {"episodes": "n_episodes", "db": "db_path"}
    parameters = inspect.signature(train).parameters
    for f in fields(TrainConfig):
        option = next(name for name in parameters if options.get(name, name) == f.name)
        default = parameters[option].default
        assert str(default) == str(f.default), f.name
        assert parameters[option].annotation.__metadata__[0].help == TrainConfig.help(f.name)


def test_sweeps_search_every_training_setting_but_those_they_own():
    from velora.tune.trial import SWEEP_SETTINGS, TRAIN_PARAMS

    names = {f.name for f in fields(TrainConfig)}
    assert set(TRAIN_PARAMS) == names - set(SWEEP_SETTINGS)
    assert {"batch_size", "warmup_steps", "updates_per_step", "n_envs"} <= set(TRAIN_PARAMS)


def test_progress_is_one_object_the_loop_advances(tmp_path):
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=1000, seed=0)
    assert agent.progress == TrainProgress()
    summary = agent.train(16, n_episodes=3, db_path=str(tmp_path / "m.db"))
    progress = agent.progress
    assert (progress.episodes, progress.steps) == (3, summary.steps)
    assert len(progress.recent_rewards) == 3 and progress.reward_max == max(progress.recent_rewards)
    assert progress.experiment_id == summary.experiment_id == agent.experiment_id
    assert agent.episodes_done == 3 and agent.steps_done == summary.steps
    assert agent.config.train.warmup_steps == 32 and agent.config.train.n_episodes == 3


def test_the_training_settings_load_without_torch():
    """`velora train --help` builds its options from `TrainConfig`: that must stay light."""
    code = (
        "import sys, velora.training\n"
        "print([m for m in ('torch', 'gymnasium') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

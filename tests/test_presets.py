"""Presets: per-env settings read from TOML, checked before any training."""

import math
import sqlite3

import pytest
from callback_helpers import StopAtStep

from velora.gym import partially_observed
from velora.models import NeuroFlow
from velora.presets import BUNDLED, Preset, load_preset, preset_names, preset_or_defaults

ACROBOT = """
["Acrobot-v1".agent]
initial_alpha = 0.05
target_entropy_scale = 0.6
gamma = 0.98

["Acrobot-v1".train]
n_episodes = 2
warmup_steps = 64
batch_size = 32
"""


@pytest.fixture
def preset_file(tmp_path):
    path = tmp_path / "presets.toml"
    path.write_text(ACROBOT)
    return path


def test_a_preset_sets_up_the_agent_and_its_training(preset_file, tmp_path):
    preset = load_preset("Acrobot-v1", preset_file)
    assert preset.agent == {"initial_alpha": 0.05, "target_entropy_scale": 0.6, "gamma": 0.98}
    agent = NeuroFlow("Acrobot-v1", 8, 16, buffer_size=2000, seed=0, **preset.agent)
    assert agent.gamma == 0.98 and agent.alpha.item() == pytest.approx(0.05)
    assert agent.head.target_entropy == pytest.approx(0.6 * math.log(3))
    agent.train(**preset.train, db_path=str(tmp_path / "metrics.db"), display_count=100)
    assert agent.episodes_done == 2
    with sqlite3.connect(tmp_path / "metrics.db") as con:
        assert con.execute("SELECT count(*) FROM episode").fetchone() == (2,)


def test_train_settings_always_hold_a_batch_size(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('["CartPole-v1".agent]\ngamma = 0.95\n')
    preset = load_preset("CartPole-v1", path)
    assert preset.train == {"batch_size": 128} and preset.agent == {"gamma": 0.95}


def test_an_env_without_a_preset_falls_back_to_the_defaults(preset_file):
    defaults = preset_or_defaults("Pendulum-v1", preset_file)
    assert defaults == Preset("Pendulum-v1") and defaults.train == {"batch_size": 128}
    assert defaults.agent == {}
    assert preset_or_defaults("Acrobot-v1", preset_file) == load_preset("Acrobot-v1", preset_file)
    bad = preset_file.with_name("bad.toml")
    bad.write_text("[[[")
    with pytest.raises(ValueError, match="not a valid TOML"):  # only a missing entry falls back
        preset_or_defaults("Acrobot-v1", bad)


def test_the_bundled_presets_are_valid_and_train(tmp_path):
    """Each bundled preset's agent trains with its train settings, through a few
    updates on tiny networks: an agent setting that needs a train setting (such as
    critic_history="own" and sequence_length) fails here."""
    assert BUNDLED.is_file()
    assert {"CartPole-v1", "InvertedPendulum-v5"} <= set(preset_names())
    for env_id in preset_names():
        preset = load_preset(env_id)
        agent = NeuroFlow(env_id, 4, 8, buffer_size=500, seed=0, **preset.agent)
        before = [p.clone() for p in agent.critic.parameters()]
        settings = {**preset.train, "batch_size": 8, "warmup_steps": 40, "n_episodes": 10**6}
        agent.train(**settings, callbacks=[StopAtStep(60)], db_path=str(tmp_path / "m.db"))
        assert agent.steps_done == 60
        assert agent.config.train.sequence_length == preset.train.get("sequence_length", 1)
        assert any(not p.equal(b) for p, b in zip(agent.critic.parameters(), before, strict=True))


def test_a_partially_observed_env_takes_its_base_envs_preset(preset_file, tmp_path):
    hidden = partially_observed("Acrobot-v1", hide="velocities")
    assert load_preset(hidden, preset_file) == load_preset("Acrobot-v1", preset_file)
    own = tmp_path / "own.toml"
    own.write_text(ACROBOT + f'\n["{hidden}".agent]\ngamma = 0.9\n')
    assert load_preset(hidden, own).agent == {"gamma": 0.9}  # its own preset wins
    pendulum = partially_observed("Pendulum-v1", hide="velocities")
    with pytest.raises(KeyError, match=r"No preset for 'Pendulum-v1'"):
        load_preset(pendulum, preset_file)


def test_an_env_without_a_preset_names_those_with_one(preset_file):
    with pytest.raises(KeyError, match=r"No preset for 'Pendulum-v1' .* presets there: Acrobot"):
        load_preset("Pendulum-v1", preset_file)


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ('["Acrobot-v1".agent]\ngama = 0.9\n', ValueError, r"Unknown agent setting\(s\) gama"),
        ('["Acrobot-v1".agent]\nactor_neurons = 4\n', ValueError, "Unknown agent setting"),
        ('["Acrobot-v1".train]\nepisodes = 4\n', ValueError, r"Unknown train .* n_episodes"),
        ('["Acrobot-v1".train]\ndb_path = "x.db"\n', ValueError, "Unknown train setting"),
        ('["Acrobot-v1"]\nagent = 3\n', ValueError, r"\[agent\] .* must be a table"),
        ('["Acrobot-v1".model]\ngamma = 0.9\n', ValueError, r"only \[agent\] and \[train\]"),
        ('["Acrobot-v1".agent]\ngamma = nan\n', ValueError, "must be finite"),
        ('["Acrobot-v1".agent\ngamma = 0.9\n', ValueError, "not a valid TOML preset file"),
    ],
)
def test_a_bad_preset_file_is_refused_with_what_is_wrong(tmp_path, text, error, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(error, match=message):
        load_preset("Acrobot-v1", path)


def test_a_missing_preset_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="No preset file at"):
        load_preset("Acrobot-v1", tmp_path / "nope.toml")

"""Looking inside an agent: the circuit holds exactly the wiring's neurons and synapses,
with the learned weights; the activity is the episode `predict` plays; the page renders
in a real browser."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from velora.inspection import circuit_of, draw_circuit, inspect_agent, record_activity
from velora.inspection.report import _svg
from velora.models import NeuroFlow
from velora.training import evaluate_policy

TINY = {"actor_neurons": 10, "critic_neurons": 16, "buffer_size": 2000}


def mask_synapses(agent: NeuroFlow) -> set[str]:
    masks = agent.actor.wiring.masks
    layers = (
        ("sensory", "inter", masks.sensory_to_inter),
        ("inter", "command", masks.inter_to_command),
        ("command", "command", masks.command_to_command),
        ("command", "motor", masks.command_to_motor),
    )
    return {
        f"{source}-{j}--{target}-{i}"
        for source, target, mask in layers
        for i, j in torch.nonzero(mask).tolist()
    }


def wiring_neurons(agent: NeuroFlow) -> set[str]:
    wiring = agent.actor.wiring
    sizes = {
        "sensory": wiring.in_features,
        "inter": wiring.n_inter,
        "command": wiring.n_command,
        "motor": wiring.out_features,
    }
    return {f"{group}-{i}" for group, n in sizes.items() for i in range(n)}


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory) -> NeuroFlow:
    agent = NeuroFlow("InvertedPendulum-v5", **TINY, seed=3, normalize_obs=True)
    db = tmp_path_factory.mktemp("db") / "m.db"
    agent.train(16, n_episodes=6, warmup_steps=16, db_path=str(db), display_count=100)
    return agent


def test_the_circuit_is_the_wiring_with_its_learned_weights(pendulum):
    circuit = circuit_of(pendulum)
    assert {n.id for n in circuit.neurons} == wiring_neurons(pendulum)
    assert {s.id for s in circuit.synapses} == mask_synapses(pendulum)
    assert len(circuit.synapses) == len({s.id for s in circuit.synapses})
    names = [n.label for n in circuit.group("sensory")]
    assert names == ["cart position", "pole angle", "cart velocity", "pole angular velocity"]
    assert [n.label for n in circuit.group("motor")] == ["cart force mean", "cart force log-std"]

    actor = pendulum.actor
    for synapse in circuit.synapses:
        i, j = int(synapse.target.split("-")[1]), int(synapse.source.split("-")[1])
        if synapse.layer == "sensory→inter":
            assert synapse.weight == actor.inter.weight[i, j].item()
        elif synapse.layer == "command→motor":
            assert synapse.weight == actor.motor.weight[i, j].item()

    # Into command neurons: the cell's sensitivity at rest, checked by finite differences.
    cell, eps = actor.command, 1e-3
    for synapse in [s for s in circuit.synapses if s.target.startswith("command")][:12]:
        i = int(synapse.target.split("-")[1])
        j = int(synapse.source.split("-")[1])
        if synapse.source.startswith("command"):
            j += cell.in_features
        step = torch.zeros(1, cell.in_features + cell.hidden_size, dtype=torch.float64)
        step[0, j] = eps
        cell64 = type(cell)(cell.in_features, cell.hidden_size, cell.heads.mask[: cell.hidden_size])
        cell64.load_state_dict(cell.state_dict())
        cell64 = cell64.double()
        with torch.no_grad():
            up = cell64(step[:, : cell.in_features], step[:, cell.in_features :])[1]
            down = cell64(-step[:, : cell.in_features], -step[:, cell.in_features :])[1]
        assert synapse.weight == pytest.approx(((up - down) / (2 * eps))[0, i].item(), abs=1e-5)


def test_the_drawing_names_every_neuron_and_synapse_and_nothing_else(pendulum):
    svg = _svg(draw_circuit(circuit_of(pendulum)))
    assert set(re.findall(r'id="neuron:([^"]+)"', svg)) == wiring_neurons(pendulum)
    drawn = re.findall(r'id="synapse:([^"]+)"', svg)
    assert sorted(drawn) == sorted(mask_synapses(pendulum))


def test_the_activity_is_the_episode_predict_plays(pendulum):
    activity = record_activity(pendulum, seed=5)
    agent = pendulum
    obs, _ = agent.eval_env.reset(seed=5)
    hidden = None
    for t in range(len(activity.rewards)):
        action, hidden = agent.predict(obs, hidden)
        np.testing.assert_allclose(activity.observations[t], obs.numpy(), atol=1e-6)
        np.testing.assert_allclose(activity.command[t], hidden.numpy(), atol=1e-5)
        np.testing.assert_allclose(activity.actions[t], action.numpy(), atol=1e-5)
        obs, *_ = agent.eval_env.step(action)
    result = evaluate_policy(agent, 1, seed=5)
    assert activity.episode_return == pytest.approx(result.mean_return)
    assert activity.neurons().shape == (len(activity.rewards), 6 + 4 + 2)


def test_the_page_and_pngs_hold_every_neuron_and_synapse(pendulum, tmp_path):
    files = inspect_agent(pendulum, tmp_path / "out", seed=1)
    page = files.html.read_text()
    # Self-contained: no scripts, every link is inside the page or inline data.
    assert "<script" not in page and "<link" not in page
    assert re.findall(r'(?:src|href)="(?!#|data:)([^"]*)"', page) == []
    for neuron in wiring_neurons(pendulum):
        assert f'id="neuron:{neuron}"' in page
    rows = set(re.findall(r'<tr id="synapse:([^"]+)">', page))
    assert rows == mask_synapses(pendulum)
    for png in (files.circuit_png, files.activity_png):
        image = Image.open(png)
        assert image.size[0] >= 1000 and np.asarray(image.convert("L")).std() > 10
    with pytest.raises(FileExistsError, match="overwrite"):
        inspect_agent(pendulum, tmp_path / "out")
    assert inspect_agent(pendulum, tmp_path / "out", overwrite=True).html == files.html


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("VELORA_REQUIRE_CHROMIUM"):
            pytest.fail("Chromium is required here (VELORA_REQUIRE_CHROMIUM) but not installed")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return found


def test_the_page_renders_in_headless_chromium(pendulum, tmp_path):
    browser = chromium()
    files = inspect_agent(pendulum, tmp_path / "out")
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]  # fmt: skip
    url = files.html.resolve().as_uri()
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120
    ).stdout
    assert sorted(re.findall(r'<g id="synapse:([^"]+)"', dom)) == sorted(mask_synapses(pendulum))
    assert set(re.findall(r'<g id="neuron:([^"]+)"', dom)) == wiring_neurons(pendulum)

    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, *flags, "--window-size=1300,1600", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (1600, 1300)
    blue = (pixels[..., 2] > 120) & (pixels[..., 0] < 90)  # excitatory synapses drawn
    assert blue.sum() > 200 and pixels.std() > 20

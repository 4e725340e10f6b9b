"""The entropy temperature's settings: where it starts and which entropy it tunes to.

Discrete policies get their own defaults (a target well below log |A| and a small
starting temperature; `velora.models.heads` says why); both can be set per agent, in
nats or as a share of the maximum entropy, and are saved with it.
"""

import math

import pytest
import torch

from velora.buffer import Batch
from velora.models import NeuroFlow
from velora.models.heads import DISCRETE_INITIAL_ALPHA, DISCRETE_TARGET_SCALE


def _agent(env_id: str = "Acrobot-v1", **kwargs) -> NeuroFlow:
    return NeuroFlow(env_id, 8, 16, buffer_size=1000, seed=0, **kwargs)


def test_each_action_space_has_its_own_defaults():
    discrete, box = _agent(), _agent("Pendulum-v1")
    assert discrete.head.target_entropy == pytest.approx(DISCRETE_TARGET_SCALE * math.log(3))
    assert discrete.alpha.item() == pytest.approx(DISCRETE_INITIAL_ALPHA)
    assert discrete.config.initial_alpha == pytest.approx(DISCRETE_INITIAL_ALPHA)
    assert box.head.target_entropy == -1.0
    assert box.alpha.item() == pytest.approx(1.0) and box.config.initial_alpha == 1.0
    assert discrete.config.target_entropy is None
    assert discrete.config.target_entropy_scale is None
    assert 0.0 < DISCRETE_TARGET_SCALE < 1.0


def test_settings_override_the_defaults_and_are_saved_with_the_agent(tmp_path):
    agent = _agent(target_entropy_scale=0.5, initial_alpha=0.2)
    assert agent.head.target_entropy == pytest.approx(0.5 * math.log(3))
    assert agent.alpha.item() == pytest.approx(0.2)
    agent.save(tmp_path / "scaled")
    loaded = NeuroFlow.load(tmp_path / "scaled")
    assert loaded.head.target_entropy == pytest.approx(0.5 * math.log(3))
    assert loaded.config.target_entropy_scale == 0.5 and loaded.config.initial_alpha == 0.2

    nats = _agent(target_entropy=0.3)
    assert nats.head.target_entropy == 0.3 and nats.config.target_entropy == 0.3
    nats.save(tmp_path / "nats")
    assert NeuroFlow.load(tmp_path / "nats").head.target_entropy == 0.3


def _rows(n: int) -> Batch:
    """A batch of `n` equally weighted rows: the alpha loss reads only their weights."""
    return Batch(*(torch.zeros(n, 1) for _ in Batch._fields[:7]))


def test_the_temperature_moves_towards_the_target():
    box = _agent("Pendulum-v1", target_entropy=-3.0)
    # The temperature's gradient is the gap to the target: a lower one moves alpha less.
    pi = box.head.expectation(torch.zeros(5, 2))
    grad = torch.autograd.grad(box.alpha_loss(_rows(5), pi.detached()), box.log_alpha)[0]
    entropy = -pi.expect(pi.log_prob).mean()
    assert grad.item() == pytest.approx((entropy + 3.0).item())
    # A uniform categorical policy (entropy log 3) is above any reachable target, so
    # the step lowers the temperature.
    discrete = _agent()
    uniform = discrete.head.expectation(torch.zeros(4, 3))
    grad = torch.autograd.grad(
        discrete.alpha_loss(_rows(4), uniform.detached()), discrete.log_alpha
    )
    assert grad[0].item() == pytest.approx(math.log(3) - discrete.head.target_entropy)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_entropy": math.log(3)}, r"below the maximum entropy of Discrete\(3\)"),
        ({"target_entropy": float("nan")}, "finite number"),
        ({"target_entropy": "high"}, "finite number"),
        ({"target_entropy_scale": 0.0}, r"number in \(0, 1\)"),
        ({"target_entropy_scale": -0.5}, r"number in \(0, 1\)"),
        ({"target_entropy_scale": 1.0}, r"number in \(0, 1\)"),
        ({"target_entropy_scale": "half"}, r"number in \(0, 1\)"),
        ({"target_entropy": 0.5, "target_entropy_scale": 0.5}, "not both"),
        ({"initial_alpha": 0.0}, "initial_alpha"),
        ({"initial_alpha": -1.0}, "initial_alpha"),
    ],
)
def test_bad_temperature_settings_are_refused_before_any_work(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _agent(**kwargs)


def test_a_scale_needs_a_discrete_space():
    with pytest.raises(ValueError, match="give target_entropy in nats"):
        _agent("Pendulum-v1", target_entropy_scale=0.5)

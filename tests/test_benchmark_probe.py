"""The throughput benchmark's mid-run probe of the bare update must leave training as
it would have been without it, or the run it sits in would measure something else."""

import sys
from pathlib import Path

import torch

from velora.callbacks import TrainCallback
from velora.models import NeuroFlow

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks" / "workers"))
from velora_current import _PureUpdateProbe  # noqa: E402


def _train(
    tmp_path: Path, probe_every: int | None
) -> tuple[NeuroFlow, _PureUpdateProbe, torch.Tensor]:
    agent = NeuroFlow("Pendulum-v1", 6, 12, buffer_size=2_000, seed=4)
    probe = _PureUpdateProbe(agent, batch_size=16, updates=3)

    class Probing(TrainCallback):
        def on_step(self, state) -> bool:
            if probe_every and state.step > 40 and state.step % probe_every == 0:
                probe()
            return state.step < 120

    agent.train(
        16,
        n_episodes=100,
        callbacks=[Probing()],
        warmup_steps=32,
        display_count=1_000,
        db_path=tmp_path / f"metrics-{probe_every}.db",
    )
    return agent, probe, torch.get_rng_state()


def test_probe_times_updates_and_puts_the_agent_back(tmp_path):
    probed, probe, probed_rng = _train(tmp_path, probe_every=25)
    plain, _, plain_rng = _train(tmp_path, probe_every=None)
    assert len(probe.block_ms) == 3 and all(ms > 0 for ms in probe.block_ms)
    for name, module in probed.state_modules().items():
        for (key, value), other in zip(
            module.state_dict().items(),
            plain.state_modules()[name].state_dict().values(),
            strict=True,
        ):
            assert torch.equal(value, other), (name, key)
    assert torch.equal(probed.log_alpha, plain.log_alpha)
    for name, optimizer in probed.optimizers().items():
        ours = optimizer.state_dict()["state"]
        theirs = plain.optimizers()[name].state_dict()["state"]
        for index, values in theirs.items():
            for key, value in values.items():
                assert torch.equal(ours[index][key], value), (name, index, key)
    assert torch.equal(probed_rng, plain_rng)

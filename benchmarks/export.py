"""The exported ONNX policy: file size and one step's latency, against `predict`.

    python benchmarks/export.py [--envs CartPole-v1 InvertedPendulum-v5] [--steps 2000]

Builds the README's agent (20 actor neurons, observation normalisation on), exports it
and times one policy step (batch 1, the hidden state fed back) in onnxruntime on one
thread and through `predict` (eager PyTorch, one thread), median over `--steps` steps.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from velora.models import NeuroFlow


def median_us(step, steps: int) -> float:
    for _ in range(50):  # warm-up
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def measure(env_id: str, steps: int, folder: Path) -> dict:
    agent = NeuroFlow(env_id, 20, 128, buffer_size=1000, seed=0, normalize_obs=True)
    path = agent.export(folder / f"{env_id}.onnx")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    obs_dim, hidden_size = agent.actor.wiring.in_features, agent.actor.hidden_size
    obs = np.random.default_rng(0).normal(size=(1, obs_dim)).astype(np.float32)
    state = {"hidden": np.zeros((1, hidden_size), np.float32), "torch": None}

    def onnx_step() -> None:
        _, state["hidden"] = session.run(None, {"obs": obs, "hidden": state["hidden"]})

    obs_torch = torch.as_tensor(obs[0])

    def predict_step() -> None:
        _, state["torch"] = agent.predict(obs_torch, state["torch"])

    return {
        "env": env_id,
        "active_params": sum(int(p.count_nonzero()) for p in agent.actor.parameters()),
        "file_kb": path.stat().st_size / 1024,
        "onnx_us": median_us(onnx_step, steps),
        "predict_us": median_us(predict_step, steps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "InvertedPendulum-v5"])
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(env, args.steps, Path(tmp)) for env in args.envs]
    print(
        f"{'env':<22}{'actor params':>13}{'file KB':>9}{'onnxruntime us':>16}"
        f"{'predict us':>12}{'speed-up':>10}"
    )
    for r in rows:
        print(
            f"{r['env']:<22}{r['active_params']:>13}{r['file_kb']:>9.1f}{r['onnx_us']:>16.1f}"
            f"{r['predict_us']:>12.1f}{r['predict_us'] / r['onnx_us']:>9.1f}x"
        )


if __name__ == "__main__":
    main()

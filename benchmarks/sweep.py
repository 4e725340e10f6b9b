"""Wall time of a Ray Tune sweep of N seeds versus the same N trainings one after another.

    python benchmarks/sweep.py [--seeds 0 1 2 3] [--episodes 30] [--cpus 2]

Both sides train NeuroFlow (20 actor / 128 critic neurons, batch 128) on CartPole-v1
for `--episodes` episodes per seed, with the same seeds, `log_freq` and buffer. The
sweep runs on an embedded local Ray with `--cpus` CPUs, one CPU per trial; its time
includes starting and stopping Ray. The sequential side trains in this process, each
agent in its own folder. Needs the `tune` extra.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from velora.models import NeuroFlow
from velora.tune import run_sweep

ENV = "CartPole-v1"
SPACE = {"actor_neurons": 20, "critic_neurons": 128}
BATCH = 128


def sequential(seeds: list[int], episodes: int, log_freq: int, root: Path) -> list[float]:
    """Train one agent per seed in this process; returns each training's seconds."""
    times = []
    previous = os.getcwd()
    try:
        for seed in seeds:
            folder = root / f"seed_{seed}"
            folder.mkdir(parents=True)
            os.chdir(folder)
            agent = NeuroFlow(ENV, seed=seed, **SPACE)
            summary = agent.train(
                BATCH, n_episodes=episodes, log_freq=log_freq, display_count=episodes
            )
            times.append(summary.time_taken)
    finally:
        os.chdir(previous)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    parser.add_argument("--log-freq", type=int, default=10)
    parser.add_argument("--only", choices=("sweep", "sequential"), default=None)
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "sequential":
            start = time.perf_counter()
            sweep = run_sweep(
                ENV,
                SPACE,
                seeds=args.seeds,
                n_episodes=args.episodes,
                batch_size=BATCH,
                log_freq=args.log_freq,
                num_cpus=args.cpus,
                storage_path=Path(tmp) / "sweeps",
                name="bench",
                verbose=0,
            )
            sweep_s = time.perf_counter() - start
            print(sweep)
            trial_s = sum(row.time_s for row in sweep)
            print(
                f"sweep      ({len(sweep)} trials, {args.cpus} CPUs): {sweep_s:7.1f} s wall "
                f"(training inside the trials: {trial_s:.1f} s summed)"
            )
        if args.only != "sweep":
            start = time.perf_counter()
            times = sequential(args.seeds, args.episodes, args.log_freq, Path(tmp) / "seq")
            seq_s = time.perf_counter() - start
            print(
                f"sequential ({len(times)} trainings, 1 process): {seq_s:7.1f} s wall "
                f"(training: {', '.join(f'{t:.1f}' for t in times)} s)"
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

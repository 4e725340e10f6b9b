"""Size on disk and save/load time of a NeuroFlow agent with a 100k-transition buffer.

    python benchmarks/persistence.py [--env InvertedPendulum-v5] [--transitions 100000]

Fills the replay buffer with random transitions (no training needed: the cost of a
save depends on sizes, not values), then times `save(buffer=True)` and
`load(buffer=True)` and prints the size of each file.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from velora.models import NeuroFlow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="InvertedPendulum-v5")
    parser.add_argument("--transitions", type=int, default=100_000)
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    agent = NeuroFlow(args.env, 20, 128, buffer_size=args.capacity, seed=0)
    buffer = agent.buffer
    buffer.storage[: args.transitions] = torch.randn(args.transitions, buffer.storage.shape[1])
    buffer.size = buffer.position = args.transitions

    save_times, load_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            path = Path(tmp) / f"save_{i}"
            start = time.perf_counter()
            agent.save(path, buffer=True)
            save_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            loaded = NeuroFlow.load(path, buffer=True)
            load_times.append(time.perf_counter() - start)
            assert len(loaded.buffer) == args.transitions
        sizes = {f.name: f.stat().st_size for f in sorted(path.iterdir())}

    print(f"{args.env}: {args.transitions:,} transitions in a {args.capacity:,}-capacity buffer")
    for name, size in sizes.items():
        print(f"  {name:<28}{size / 1e6:>10.3f} MB")
    print(f"  {'total':<28}{sum(sizes.values()) / 1e6:>10.3f} MB")
    print(f"  in memory (whole buffer)    {buffer.storage.numel() * 4 / 1e6:>10.3f} MB")
    print(
        f"save: best {min(save_times):.3f} s   load: best {min(load_times):.3f} s "
        f"(of {args.repeats}; load includes building the agent and its envs)"
    )


if __name__ == "__main__":
    main()

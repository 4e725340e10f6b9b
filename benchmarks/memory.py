"""Where memory matters: NeuroFlow with and without sequence replay against an MLP.

The tasks (`benchmarks/suite/tasks.py`, `MEMORY_TASKS`) are fully observed ones seen
through `velora.gym.partially_observed`: CartPole, Pendulum and InvertedPendulum-v5 with
their velocities hidden, and CartPole and InvertedPendulum with Gaussian observation
noise (std 0.1). Each keeps the fully observed task's threshold, env-step budget and
rl-baselines3-zoo settings. Five agents, three seeds, the same budget:

- `neuroflow`: NeuroFlow as today, single replayed steps;
- `neuroflow-seq8`: NeuroFlow with sequence replay (`sequence_length=8, burn_in=2`);
- `neuroflow-seq8-hist`: the same with critics that see the actor's hidden state
  (`critic_history="actor_hidden"`);
- `neuroflow-seq8-own`: the same with critics that keep a memory of their own
  (`critic_history="own"`);
- `sb3`: SB3 DQN or SAC with the zoo's MLP settings, in its own venv;

then a sixth, `neuroflow-seq8-own-a64-n3`: the critics' own memory with a 64-neuron
actor and three-step returns (`--actor-neurons 64 --n-steps 3`), the one that holds
CartPole with its velocities hidden.

It is the learning suite's runner on these tasks (same workers, evaluations, caching of
finished jobs and report), writing into `benchmarks/results/memory`:

    python benchmarks/memory.py                       # everything (a few hours on 2 cores)
    python benchmarks/memory.py --tasks PO/CartPole-hide-1-3-v1 --seeds 0 --jobs 2
    python benchmarks/memory.py --sequence-length 16 --burn-in 4
    python benchmarks/memory.py --agents neuroflow-seq-own --actor-neurons 64 --n-steps 3

Any option of `benchmarks/suite/run.py` passes through; given `--agents`, only that run.
"""

import sys
from pathlib import Path

SUITE = Path(__file__).resolve().parent / "suite"
sys.path.insert(0, str(SUITE))

from run import main as run_suite  # noqa: E402
from tasks import MEMORY_TASKS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "memory"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "memory"


AGENTS = ["neuroflow", "neuroflow-seq", "neuroflow-seq-hist", "neuroflow-seq-own", "sb3"]
BIG_MEMORY = ["--agents", "neuroflow-seq-own", "--actor-neurons", "64", "--n-steps", "3"]
"""The sixth agent's options."""


def main() -> None:
    given = sys.argv[1:]
    defaults = []
    if "--tasks" not in given:
        defaults += ["--tasks", *MEMORY_TASKS]
    if "--results" not in given:
        defaults += ["--results", str(RESULTS), "--docs", str(DOCS)]
    runs = [given] if "--agents" in given else [["--agents", *AGENTS, *given], BIG_MEMORY + given]
    for run in runs:
        sys.argv = [sys.argv[0], *defaults, *run]
        run_suite()


if __name__ == "__main__":
    main()

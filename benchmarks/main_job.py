"""Does the README's main job stay bounded? Its temperature and losses, episode by episode.

Runs `examples/train_cartpole.py` as the README's set-up does (in a fresh folder, so its
`metrics.db` is its own), then reads that database: the largest temperature and losses
of any episode, those of the last 20 episodes, and the evaluations. `--long` trains the
same agent (CartPole-v1's preset, seed 0) for all 300 episodes with no early stop, to
show the temperature and the losses stay bounded long after the task is solved.
Writes `benchmarks/results/main-job[-long].json`.

    python benchmarks/main_job.py [--long]
"""

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlmodel import Session, select

from velora.metrics import Episode, Evaluation, get_db_engine

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "train_cartpole.py"
LONG_RUN = """
from velora.models import NeuroFlow
from velora.presets import load_preset

preset = load_preset("CartPole-v1")
model = NeuroFlow("CartPole-v1", 20, 128, seed=0, **preset.agent)
model.train(128, n_episodes=300, display_count=50)
"""


def figures(db: Path) -> dict:
    """The run's temperature, losses and evaluations, from its metrics database."""
    with Session(get_db_engine(db)) as session:
        episodes = session.exec(select(Episode).order_by(Episode.episode_num)).all()
        evaluations = session.exec(select(Evaluation).order_by(Evaluation.steps)).all()

    def peak(rows: list, name: str) -> float:
        values = [abs(getattr(r, name)) for r in rows if not math.isnan(getattr(r, name))]
        return max(values)

    last = episodes[-20:]
    return {
        "episodes": len(episodes),
        "env_steps": sum(e.length for e in episodes),
        "max_alpha": peak(episodes, "alpha"),
        "max_alpha_episode": max(episodes, key=lambda e: e.alpha).episode_num,
        "last_alpha": episodes[-1].alpha,
        "max_critic_loss": peak(episodes, "critic_loss"),
        "max_abs_actor_loss": peak(episodes, "actor_loss"),
        "last20_max_alpha": peak(last, "alpha"),
        "last20_max_critic_loss": peak(last, "critic_loss"),
        "last20_max_abs_actor_loss": peak(last, "actor_loss"),
        "last20_mean_reward": sum(e.reward for e in last) / len(last),
        "evaluations": [
            {"episode": e.episode_num, "steps": e.steps, "mean_return": e.mean_return}
            for e in evaluations
        ],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--long", action="store_true", help="300 episodes, no early stop")
    p.add_argument("--out", type=Path, default=None, help="the result JSON")
    args = p.parse_args()
    out = args.out or REPO / "benchmarks" / "results" / f"main-job{'-long' * args.long}.json"
    command = [sys.executable, "-c", LONG_RUN] if args.long else [sys.executable, str(EXAMPLE)]
    with tempfile.TemporaryDirectory(prefix="velora-main-job-") as folder:
        start = time.perf_counter()
        subprocess.run(command, cwd=folder, check=True)
        wall = time.perf_counter() - start
        result = {
            "command": "long run: 300 episodes, no early stop" if args.long else EXAMPLE.name,
            "commit": subprocess.run(
                ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
            ).stdout.strip(),
            "wall_s": round(wall, 1),
            **figures(Path(folder) / "metrics.db"),
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    shown = {k: v for k, v in result.items() if k != "evaluations"}
    for key, value in shown.items():
        print(f"{key:>26}: {value:.4g}" if isinstance(value, float) else f"{key:>26}: {value}")
    if result["evaluations"]:  # the long run has no early stop, so no evaluations
        print(
            "evaluations (steps: mean return):",
            ", ".join(f"{e['steps']:,}: {e['mean_return']:.1f}" for e in result["evaluations"]),
        )
    print(f"-> {out}")


if __name__ == "__main__":
    main()

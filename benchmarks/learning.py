"""Does NeuroFlow learn? Env steps and wall time to a solved deterministic evaluation.

For each env and seed, trains NeuroFlow (20 actor / 128 critic neurons, batch 128) and
every `--eval-every` episodes evaluates the deterministic policy for 5 episodes
(`EarlyStopping(..., eval_every=...)`); the run is solved when their mean return
reaches the env's target (CartPole-v1: 475, InvertedPendulum-v5: 1000). Prints one
line per run and a table at the end. The wall time includes the evaluations.
`--normalize-obs` trains with observation normalisation; `--initial-alpha` and
`--target-entropy-scale` set the temperature's start and target; `--preset` trains with
each env's bundled preset (its agent and train settings), as `velora train ENV --preset`.

    python benchmarks/learning.py --envs CartPole-v1 InvertedPendulum-v5 --seeds 0 1 2
"""

import argparse
import json
import os
import tempfile

import torch

from velora.callbacks import EarlyStopping
from velora.models import NeuroFlow
from velora.presets import Preset, preset_or_defaults

TARGETS = {"CartPole-v1": 475.0, "InvertedPendulum-v5": 1000.0}


def run(
    env_id: str, seed: int, eval_every: int, max_episodes: int, settings: dict, preset: Preset
) -> dict:
    settings = {**preset.agent, **settings}
    agent = NeuroFlow(env_id, 20, 128, seed=seed, buffer_size=200_000, **settings)
    stop = EarlyStopping(TARGETS[env_id], patience=1, eval_every=eval_every)
    train = {**preset.train, "n_episodes": max_episodes, "display_count": 50}
    summary = agent.train(**train, callbacks=[stop])
    result = {
        "env": env_id,
        "seed": seed,
        **settings,
        **{name: value for name, value in preset.train.items() if name != "batch_size"},
        "solved": summary.early_stopped,
        "steps": summary.steps,
        "episodes": summary.episodes,
        "wall_s": round(summary.time_taken, 1),
        "last_eval": stop.last_score,
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(TARGETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--max-episodes", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--normalize-obs", action="store_true", help="NeuroFlow(normalize_obs=True)"
    )
    parser.add_argument("--initial-alpha", type=float, help="NeuroFlow(initial_alpha=...)")
    parser.add_argument(
        "--target-entropy-scale", type=float, help="NeuroFlow(target_entropy_scale=...)"
    )
    parser.add_argument("--preset", action="store_true", help="each env's bundled preset")
    parser.add_argument("--out", help="append JSON lines of results to this file")
    args = parser.parse_args()
    settings = {"normalize_obs": args.normalize_obs}
    for name in ("initial_alpha", "target_entropy_scale"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    torch.set_num_threads(args.threads)
    os.chdir(tempfile.mkdtemp(prefix="velora-learning-"))  # keep metrics.db out of the repo
    presets = {env: preset_or_defaults(env) if args.preset else Preset(env) for env in args.envs}
    results = [
        run(env, seed, args.eval_every, args.max_episodes, settings, presets[env])
        for env in args.envs
        for seed in args.seeds
    ]
    print(f"\n{'env':<22}{'seed':>5}{'solved':>8}{'steps':>9}{'episodes':>10}{'wall s':>9}")
    for r in results:
        solved = str(r["solved"])
        print(
            f"{r['env']:<22}{r['seed']:>5}{solved:>8}{r['steps']:>9}{r['episodes']:>10}"
            f"{r['wall_s']:>9}"
        )
    if args.out:
        with open(args.out, "a") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()

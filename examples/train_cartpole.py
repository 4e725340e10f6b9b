"""The main job: train a NeuroFlow agent on CartPole-v1 until it solves it.

The agent starts from velora's CartPole-v1 preset (`velora/presets/neuroflow.toml`): a
hotter start and a more random target policy than the defaults for discrete actions,
which suit goal-only tasks such as Acrobot and MountainCar, and three-step returns,
which hold the solved return where one-step targets fall back from it. Every 10
episodes the deterministic policy plays 5 evaluation episodes; training stops once two
evaluations in a row average a return of 475 (CartPole's "solved"), or after 300
episodes. Then it evaluates once more and says where the metrics went. Runs offline on
a CPU in a few minutes.
"""

from pathlib import Path

from sqlmodel import Session, select

from velora.callbacks import EarlyStopping
from velora.metrics import Episode, Evaluation, get_db_engine
from velora.models import NeuroFlow
from velora.presets import load_preset
from velora.training import evaluate_agent

preset = load_preset("CartPole-v1")
model = NeuroFlow("CartPole-v1", 20, 128, seed=0, **preset.agent)
summary = model.train(
    128,
    n_episodes=300,
    callbacks=[EarlyStopping(target=475.0, patience=2, eval_every=10)],
    display_count=20,
)

returns = evaluate_agent(model, 5)
print(f"Deterministic evaluation over 5 episodes: {sum(returns) / len(returns):.1f}")

with Session(get_db_engine()) as session:
    rows = session.exec(select(Episode).where(Episode.experiment_id == summary.experiment_id)).all()
    evaluations = session.exec(
        select(Evaluation).where(Evaluation.experiment_id == summary.experiment_id)
    ).all()
print(
    f"{len(rows)} episodes and {len(evaluations)} evaluations of experiment "
    f"{summary.experiment_id} are in {Path('metrics.db').resolve()} (tables 'experiment', "
    "'episode' and 'evaluation')."
)

"""What the actor's neurons do over one evaluated episode, step by step."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from velora.inspection.circuit import Circuit

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from velora.models import NeuroFlow


@dataclass(frozen=True)
class EpisodeActivity:
    """One deterministic episode, aligned in time (row t: step t).

    `observations` are what the env returned (before any normalisation); `inter` the
    inter neurons' outputs (after their activation), `command` the command neurons'
    states (the liquid cell's hidden state after the step), `motor` the actor's raw
    outputs; `actions` what was sent to the env, `rewards` what came back.
    """

    observations: np.ndarray
    inter: np.ndarray
    command: np.ndarray
    motor: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    seed: int

    @property
    def episode_return(self) -> float:
        return float(self.rewards.sum())

    def neurons(self) -> np.ndarray:
        """`(steps, inter + command + motor)`: every decision and motor neuron."""
        return np.concatenate((self.inter, self.command, self.motor), axis=1)


@torch.no_grad()
def record_activity(agent: "NeuroFlow", *, seed: int = 0, max_steps: int = 1000) -> EpisodeActivity:
    """Play one deterministic episode on `agent.eval_env` (reset with `seed`), as
    `predict` would, keeping every neuron's activity. Nothing learns; the statistics
    of an observation normaliser stay as they are."""
    actor, head = agent.actor, agent.head
    env = agent.eval_env
    obs, _ = env.reset(seed=seed)
    hidden = agent.initial_hidden(1)
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "inter", "command", "motor")}
    actions, rewards = [], []
    for _ in range(max_steps):
        state = torch.as_tensor(obs, dtype=torch.float32, device=agent.device).reshape(1, -1)
        inter = actor.activation(actor.inter(agent.normalize(state)))
        cell_out, hidden = actor.command(inter, hidden)
        motor = actor.motor(actor.activation(cell_out))
        action = head.to_env(head.act(motor, deterministic=True))[0]
        for key, value in (("obs", state), ("inter", inter), ("command", hidden), ("motor", motor)):
            rows[key].append(value[0].cpu().numpy())
        actions.append(np.atleast_1d(action.cpu().numpy()).astype(np.float64))
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(float(reward))
        if terminated or truncated:
            break
    return EpisodeActivity(
        observations=np.stack(rows["obs"]),
        inter=np.stack(rows["inter"]),
        command=np.stack(rows["command"]),
        motor=np.stack(rows["motor"]),
        actions=np.stack(actions),
        rewards=np.array(rewards),
        seed=seed,
    )


def plot_activity(
    activity: EpisodeActivity, circuit: Circuit, *, figsize: tuple[float, float] = (12.0, 8.0)
) -> "Figure":
    """Four panels sharing the time axis: the observations, a heatmap of every inter,
    command and motor neuron (one row each, labelled as in the circuit), the actions
    and the rewards."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [1.2, 3.0, 0.8, 0.8]})
    steps = np.arange(len(activity.rewards))
    for k, neuron in enumerate(circuit.group("sensory")):
        axes[0].plot(steps, activity.observations[:, k], label=neuron.label, linewidth=1)
    axes[0].set_ylabel("observation")
    axes[0].legend(fontsize=7, loc="upper right", ncols=2)

    labels = [n.label for g in ("inter", "command", "motor") for n in circuit.group(g)]
    values = activity.neurons().T
    limit = float(np.abs(values).max()) or 1.0
    image = axes[1].imshow(
        values,
        aspect="auto",
        interpolation="nearest",
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        extent=(-0.5, len(steps) - 0.5, len(labels) - 0.5, -0.5),
    )
    axes[1].set_yticks(range(len(labels)), labels, fontsize=6)
    axes[1].set_ylabel("neuron activity")
    fig.colorbar(image, ax=axes[1], shrink=0.8)

    axes[2].step(steps, activity.actions, where="mid", linewidth=1)
    axes[2].set_ylabel("action")
    axes[3].bar(steps, activity.rewards, width=1.0, color="#4d4d4d")
    axes[3].set_ylabel("reward")
    axes[3].set_xlabel("step")
    fig.suptitle(
        f"{circuit.env_id}: one deterministic episode (reset seed {activity.seed}), "
        f"return {activity.episode_return:.1f} in {len(steps)} steps",
        fontsize=10,
    )
    return fig

"""The actor's wiring as a circuit: its neurons, and each synapse with the sign and
strength the training gave it."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from velora.gym import env_name
from velora.gym.names import names_for

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from velora.models import NeuroFlow

GROUPS = ("sensory", "inter", "command", "motor")
POSITIVE, NEGATIVE = "#2166ac", "#b2182b"


@dataclass(frozen=True)
class Neuron:
    id: str  # "<group>-<index>", e.g. "command-2"
    group: str
    index: int
    label: str


@dataclass(frozen=True)
class Synapse:
    source: str  # a Neuron id
    target: str
    weight: float
    layer: str  # "sensory→inter", "inter→command", "command→command", "command→motor"

    @property
    def id(self) -> str:
        return f"{self.source}--{self.target}"


@dataclass(frozen=True)
class Circuit:
    """The actor of one agent as neurons and synapses, one synapse per mask entry."""

    env_id: str
    neurons: tuple[Neuron, ...]
    synapses: tuple[Synapse, ...]

    def group(self, name: str) -> tuple[Neuron, ...]:
        return tuple(n for n in self.neurons if n.group == name)


def _motor_labels(agent: "NeuroFlow", action_names: tuple[str, ...]) -> list[str]:
    """The actor's outputs: one logit per action, or a mean and a log-std per dimension."""
    if agent.config.action_type == "discrete":
        return [f"{name} (logit)" for name in action_names]
    return [f"{name} mean" for name in action_names] + [f"{name} log-std" for name in action_names]


@torch.no_grad()
def _cell_weights(agent: "NeuroFlow") -> torch.Tensor:
    """`(command, inter + command)`: how much each input moves each command neuron's
    next state, at rest (zero input and state): the cell's Jacobian there.

    The cell mixes several heads per synapse (two tanh heads and a time gate), so no
    single weight is the synapse; its sensitivity at rest is the one number that reads
    as a weight, and it is zero exactly where the mask is.
    """
    cell = agent.actor.command
    joined = torch.zeros(cell.in_features + cell.hidden_size, device=agent.device)

    def next_state(x: torch.Tensor) -> torch.Tensor:
        inputs = x.unsqueeze(0)
        _, hidden = cell(inputs[:, : cell.in_features], inputs[:, cell.in_features :])
        return hidden.squeeze(0)

    with torch.enable_grad():
        return torch.autograd.functional.jacobian(next_state, joined).cpu()


def circuit_of(
    agent: "NeuroFlow",
    *,
    obs_names: list[str] | tuple[str, ...] | None = None,
    action_names: list[str] | tuple[str, ...] | None = None,
) -> Circuit:
    """The agent's actor as a `Circuit`.

    Synapses are the wiring's mask entries; their weights are the learned weights of
    the sensory→inter and command→motor layers, and the cell's sensitivity at rest for
    the synapses into command neurons. Sensory and motor neurons are named after the
    observation and action components (`obs_names`, `action_names`, else the names
    Gymnasium's documentation gives common tasks, else `obs i`/`action i`).
    """
    actor, name = agent.actor, env_name(agent.env_id)
    wiring, masks = actor.wiring, actor.wiring.masks
    obs = names_for(name, "obs", wiring.in_features, obs_names)
    n_actions = (
        agent.head.actor_out if agent.config.action_type == "discrete" else (agent.head.action_dim)
    )
    actions = names_for(name, "action", n_actions, action_names)
    neurons = (
        [Neuron(f"sensory-{i}", "sensory", i, label) for i, label in enumerate(obs)]
        + [Neuron(f"inter-{i}", "inter", i, f"I{i}") for i in range(wiring.n_inter)]
        + [Neuron(f"command-{i}", "command", i, f"C{i}") for i in range(wiring.n_command)]
        + [
            Neuron(f"motor-{i}", "motor", i, label)
            for i, label in enumerate(_motor_labels(agent, actions))
        ]
    )
    cell = _cell_weights(agent)
    layers = (
        ("sensory", "inter", masks.sensory_to_inter, actor.inter.weight.detach().cpu()),
        ("inter", "command", masks.inter_to_command, cell[:, : wiring.n_inter]),
        ("command", "command", masks.command_to_command, cell[:, wiring.n_inter :]),
        ("command", "motor", masks.command_to_motor, actor.motor.weight.detach().cpu()),
    )
    synapses = [
        Synapse(f"{source}-{j}", f"{target}-{i}", float(weights[i, j]), f"{source}→{target}")
        for source, target, mask, weights in layers
        for i, j in torch.nonzero(mask.cpu()).tolist()
    ]
    return Circuit(agent.env_id, tuple(neurons), tuple(synapses))


def draw_circuit(circuit: Circuit, *, figsize: tuple[float, float] = (12.0, 7.0)) -> "Figure":
    """The circuit, left to right: sensory, inter, command and motor neurons.

    Blue synapses excite (positive weight), red ones inhibit; line width and opacity
    grow with the weight's size relative to the largest of its layer. Command neurons'
    synapses onto each other arc to the right of their column. Every neuron and synapse
    is its own artist with a gid (`neuron:<id>`, `synapse:<source>--<target>`), so the
    SVG output names them.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, FancyArrowPatch

    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_aspect("equal")
    columns = {group: 3.0 * k for k, group in enumerate(GROUPS)}
    height = max(len(circuit.group(g)) for g in GROUPS)
    position = {}
    for group in GROUPS:
        members = circuit.group(group)
        gap = height / max(len(members), 1)
        for k, neuron in enumerate(members):
            position[neuron.id] = (columns[group], height - gap * (k + 0.5))
    radius = 0.28
    largest: dict[str, float] = {}
    for synapse in circuit.synapses:
        largest[synapse.layer] = max(largest.get(synapse.layer, 0.0), abs(synapse.weight))

    for synapse in circuit.synapses:
        share = abs(synapse.weight) / largest[synapse.layer] if largest[synapse.layer] else 0.0
        color = POSITIVE if synapse.weight >= 0 else NEGATIVE
        start, end = position[synapse.source], position[synapse.target]
        style = {"color": color, "linewidth": 0.3 + 2.7 * share, "alpha": 0.25 + 0.7 * share}
        if synapse.source == synapse.target:  # a self-synapse: a loop beside the neuron
            x, y = start
            artist = Circle((x + 1.6 * radius, y), 0.6 * radius, fill=False, **style)
        elif synapse.layer == "command→command":
            artist = FancyArrowPatch(
                start, end, connectionstyle="arc3,rad=-0.5", arrowstyle="-|>",
                mutation_scale=6, shrinkA=9, shrinkB=9, **style,
            )  # fmt: skip
        else:
            artist = FancyArrowPatch(
                start, end, arrowstyle="-|>", mutation_scale=6, shrinkA=9, shrinkB=9, **style
            )
        artist.set_gid(f"synapse:{synapse.id}")
        ax.add_patch(artist)

    fills = {"sensory": "#f6e8c3", "inter": "#d9d9d9", "command": "#c7e9c0", "motor": "#fdd0a2"}
    for neuron in circuit.neurons:
        x, y = position[neuron.id]
        circle = Circle((x, y), radius, facecolor=fills[neuron.group], edgecolor="#333", zorder=3)
        circle.set_gid(f"neuron:{neuron.id}")
        ax.add_patch(circle)
        if neuron.group == "sensory":
            ax.text(x - 1.4 * radius, y, neuron.label, ha="right", va="center", fontsize=8)
        elif neuron.group == "motor":
            ax.text(x + 1.4 * radius, y, neuron.label, ha="left", va="center", fontsize=8)
        else:
            ax.text(x, y, neuron.label, ha="center", va="center", fontsize=7, zorder=4)
    for group in GROUPS:
        ax.text(columns[group], height + 0.4, group, ha="center", fontsize=10, weight="bold")
    ax.set_xlim(-4.0, columns["motor"] + 4.0)
    ax.set_ylim(-0.5, height + 1.0)
    n_synapses = len(circuit.synapses)
    ax.set_title(
        f"{circuit.env_id}: {len(circuit.neurons)} neurons, {n_synapses} synapses "
        "(blue excites, red inhibits; width: strength within its layer)",
        fontsize=10,
    )
    return fig

"""An agent's circuit and one episode of its activity, as PNGs and one HTML page."""

import html
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from velora.inspection.activity import EpisodeActivity, plot_activity, record_activity
from velora.inspection.circuit import Circuit, circuit_of, draw_circuit
from velora.utils.files import write_bytes_atomic

if TYPE_CHECKING:
    from velora.models import NeuroFlow

CIRCUIT_PNG, ACTIVITY_PNG, PAGE = "circuit.png", "activity.png", "inspect.html"
DPI = 100

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1300px; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.15rem 0.5rem; text-align: right; }
th { background: #f2f2f2; }
td.name { text-align: left; }
svg { max-width: 100%; height: auto; }
"""


@dataclass(frozen=True)
class InspectionFiles:
    circuit_png: Path
    activity_png: Path
    html: Path


def _figure_bytes(fig, fmt: str) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=DPI, metadata={"Date": None})  # the same every time
    return buffer.getvalue()


def _svg(fig) -> str:
    """The figure as inline SVG markup (without the XML prologue)."""
    text = _figure_bytes(fig, "svg").decode("utf-8")
    return text[text.index("<svg") :]


def _neuron_rows(circuit: Circuit, activity: EpisodeActivity) -> list[tuple]:
    columns = {"inter": activity.inter, "command": activity.command, "motor": activity.motor}
    rows = []
    for neuron in circuit.neurons:
        if neuron.group == "sensory":
            values = activity.observations[:, neuron.index]
        else:
            values = columns[neuron.group][:, neuron.index]
        incoming = sum(1 for s in circuit.synapses if s.target == neuron.id)
        outgoing = sum(1 for s in circuit.synapses if s.source == neuron.id)
        rows.append(
            (neuron.id, neuron.group, neuron.label, incoming, outgoing,
             float(values.mean()), float(values.min()), float(values.max()))
        )  # fmt: skip
    return rows


def _table(header: tuple[str, ...], rows: list[tuple], name_columns: int, table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)

    def cell(k: int, value: object) -> str:
        text = f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))
        return f'<td class="name">{text}</td>' if k < name_columns else f"<td>{text}</td>"

    body = "".join(
        f'<tr id="{table_id}:{html.escape(str(row[0]))}">'
        + "".join(cell(k, v) for k, v in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def inspect_agent(
    agent: "NeuroFlow",
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    max_steps: int = 1000,
    obs_names: list[str] | tuple[str, ...] | None = None,
    action_names: list[str] | tuple[str, ...] | None = None,
    overwrite: bool = False,
) -> InspectionFiles:
    """Draw `agent`'s circuit and one deterministic episode of its neurons' activity.

    Writes `circuit.png`, `activity.png` and `inspect.html` into `out_dir`: the page
    holds both figures as inline SVG (each neuron and synapse an element named by its
    id), a table of the neurons with their activity over the episode and a table of
    the synapses with their weights; it loads nothing from elsewhere. Existing files
    are refused unless `overwrite`.
    """
    folder = Path(out_dir)
    targets = InspectionFiles(folder / CIRCUIT_PNG, folder / ACTIVITY_PNG, folder / PAGE)
    existing = [str(p) for p in (targets.circuit_png, targets.activity_png, targets.html)]
    existing = [p for p in existing if Path(p).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{', '.join(existing)} already exist; choose another folder or pass "
            "overwrite=True (--overwrite)."
        )
    circuit = circuit_of(agent, obs_names=obs_names, action_names=action_names)
    activity = record_activity(agent, seed=seed, max_steps=max_steps)
    circuit_fig = draw_circuit(circuit)
    activity_fig = plot_activity(activity, circuit)

    labels = {n.id: n.label for n in circuit.neurons}
    synapse_rows = [
        (s.id, s.layer, labels[s.source], labels[s.target], s.weight) for s in circuit.synapses
    ]
    n_synapses = len(circuit.synapses)
    title = f"{type(agent).__name__} on {agent.env_id}: circuit and activity"
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            f"<p>Trained {agent.progress.episodes:,} episodes ({agent.progress.steps:,} "
            f"steps). {len(circuit.neurons)} neurons, {n_synapses} synapses. Blue synapses "
            "excite, red ones inhibit; a synapse into a command neuron is weighed by the "
            "liquid cell's sensitivity at rest.</p>",
            '<h2>Circuit</h2><div id="circuit">',
            _svg(circuit_fig),
            "</div>",
            f"<h2>One deterministic episode</h2><p>Reset seed {activity.seed}: return "
            f"{activity.episode_return:.2f} in {len(activity.rewards)} steps.</p>",
            '<div id="activity">',
            _svg(activity_fig),
            "</div>",
            "<h2>Neurons</h2>",
            _table(
                ("id", "group", "name", "synapses in", "synapses out", "mean", "min", "max"),
                _neuron_rows(circuit, activity),
                3,
                "neuron",
            ),
            "<h2>Synapses</h2>",
            _table(("id", "layer", "from", "to", "weight"), synapse_rows, 4, "synapse"),
            "</body></html>",
        ]
    )
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(targets.circuit_png, _figure_bytes(circuit_fig, "png"))
    write_bytes_atomic(targets.activity_png, _figure_bytes(activity_fig, "png"))
    write_bytes_atomic(targets.html, page.encode("utf-8"))
    return targets

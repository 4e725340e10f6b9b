"""What a sweep returns: one plain row per trial, best first, as text or CSV."""

import csv
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The fixed CSV columns, before one column per searched parameter.
COLUMNS = (
    "rank",
    "trial_id",
    "status",
    "seed",
    "episodes",
    "steps",
    "best_moving_avg",
    "last_moving_avg",
    "reward_max",
    "time_s",
    "node_ip",
    "hostname",
    "node_id",
    "checkpoint",
    "trial_dir",
    "error",
)


@dataclass(frozen=True)
class TrialRow:
    """One trial of a sweep.

    Attributes:
        trial_id: Ray Tune's id of the trial; also the name of its folder.
        status: "completed" (episode budget used), "early_stopped" (the target was
            reached), "cut" (stopped early by the scheduler) or "error".
        config: the trial's values of the searched parameters (seed excluded).
        seed: the agent's seed (None only when the trial failed before reporting).
        episodes, steps: how far the trial trained.
        best_moving_avg: the best reward moving average of any logged episode.
        last_moving_avg: the moving average when the trial last reported.
        reward_max: the best episode return.
        checkpoint: the agent saved at the trial's last report (`NeuroFlow.load` it).
        trial_dir: the trial's folder, with its own `metrics.db`, on node `node_ip`.
        node_ip, hostname, node_id: the Ray node that ran the trial.
        time_s: the trial's training time in seconds.
        error: the error's first line when the trial failed.
    """

    trial_id: str
    status: str
    config: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    episodes: int = 0
    steps: int = 0
    best_moving_avg: float = math.nan
    last_moving_avg: float = math.nan
    reward_max: float = math.nan
    checkpoint: str | None = None
    trial_dir: str | None = None
    node_ip: str | None = None
    hostname: str | None = None
    node_id: str | None = None
    time_s: float = math.nan
    error: str | None = None

    def sort_key(self) -> tuple[bool, float]:
        """Best moving average first; failed and never-reported trials last."""
        score = self.best_moving_avg
        return (math.isnan(score), -score if not math.isnan(score) else 0.0)


def _cell(value: Any) -> str:
    """A value as one CSV/text cell: classes by name, floats compactly, None empty."""
    if value is None:
        return ""
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


@dataclass
class SweepResult:
    """Every trial of a sweep, best first; iterate it, index it, print it, save it.

    Attributes:
        rows: one `TrialRow` per trial, sorted by `best_moving_avg`, best first.
        path: the sweep folder (one sub-folder per trial, named by trial id).
        name: the sweep's name (the folder's name).
    """

    rows: list[TrialRow]
    path: Path
    name: str

    def __post_init__(self) -> None:
        self.rows = sorted(self.rows, key=TrialRow.sort_key)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[TrialRow]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> TrialRow:
        return self.rows[index]

    @property
    def best(self) -> TrialRow:
        """The trial with the best moving average."""
        if not self.rows:
            raise ValueError("the sweep ran no trials.")
        return self.rows[0]

    @property
    def params(self) -> list[str]:
        """The searched parameters, in the order they first appear."""
        return list(dict.fromkeys(key for row in self.rows for key in row.config))

    def _records(self) -> list[dict[str, Any]]:
        records = []
        for rank, row in enumerate(self.rows, start=1):
            record = {name: getattr(row, name) for name in COLUMNS if name != "rank"}
            records.append({"rank": rank, **record, **row.config})
        return records

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write one row per trial (fixed columns, then one per searched parameter)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = [*COLUMNS, *(p for p in self.params if p not in COLUMNS)]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
            writer.writeheader()
            for record in self._records():
                writer.writerow({key: _cell(value) for key, value in record.items()})
        return path

    def __str__(self) -> str:
        header = ["#", "trial", "status", "seed", "episodes", "best avg", "last avg"]
        header += self.params + ["node", "time s"]
        lines = []
        for rank, row in enumerate(self.rows, start=1):
            lines.append(
                [
                    str(rank),
                    row.trial_id,
                    row.status,
                    _cell(row.seed),
                    str(row.episodes),
                    f"{row.best_moving_avg:.2f}",
                    f"{row.last_moving_avg:.2f}",
                    *(_cell(row.config.get(p)) for p in self.params),
                    _cell(row.node_ip),
                    f"{row.time_s:.1f}",
                ]
            )
        widths = [max([len(h), *(len(line[i]) for line in lines)]) for i, h in enumerate(header)]
        table = [header, ["-" * w for w in widths], *lines]
        render = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
        ]
        render.append(f"{len(self.rows)} trials in {self.path}")
        return "\n".join(render)

    def __repr__(self) -> str:
        return f"SweepResult(name={self.name!r}, trials={len(self.rows)}, path={str(self.path)!r})"

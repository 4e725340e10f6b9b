"""Offline metrics: every `train()` appends its episodes to a SQLite `metrics.db`."""

from velora.metrics.db import get_db_engine
from velora.metrics.report import (
    RunData,
    RunSummary,
    list_runs,
    load_runs,
    plot_runs,
    write_html_report,
)
from velora.metrics.tables import Episode, Evaluation, Experiment
from velora.metrics.writer import EpisodeRecord, EvaluationRecord, MetricsWriter, write_evaluation

__all__ = [
    "Experiment",
    "Episode",
    "Evaluation",
    "EvaluationRecord",
    "write_evaluation",
    "get_db_engine",
    "MetricsWriter",
    "EpisodeRecord",
    "RunSummary",
    "RunData",
    "list_runs",
    "load_runs",
    "plot_runs",
    "write_html_report",
]

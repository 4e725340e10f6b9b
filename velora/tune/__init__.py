"""Hyperparameter sweeps of NeuroFlow agents with Ray Tune (`pip install "velora[tune]"`).

`run_sweep` trains one agent per point of a search space, on an embedded local Ray or
on a Ray cluster, and returns a table of the trials, best first. Importing this module
does not need Ray; calling `run_sweep` does.
"""

from velora.tune.results import SweepResult, TrialRow
from velora.tune.sweep import run_sweep, searchable_params
from velora.tune.trial import TuneReport

__all__ = ["run_sweep", "searchable_params", "SweepResult", "TrialRow", "TuneReport"]

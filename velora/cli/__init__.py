"""The `velora` command: train, evaluate, browse envs, list runs and draw reports.

Built on the public API only. Each command imports the heavy parts (torch, gymnasium,
matplotlib) when it runs, so `velora --help`, `velora runs` and `velora report` start fast.
"""

from velora.cli.app import app, main

__all__ = ["app", "main"]

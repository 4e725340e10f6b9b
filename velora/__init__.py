"""Velora: liquid reinforcement learning."""

__version__ = "0.3.0"

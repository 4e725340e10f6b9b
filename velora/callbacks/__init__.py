"""Callbacks extend `train()`: early stopping, checkpoints, videos, experiment tracking."""

from velora.callbacks.base import TrainCallback
from velora.callbacks.checkpoints import SaveCheckpoints
from velora.callbacks.early_stopping import EarlyStopping

__all__ = ["TrainCallback", "EarlyStopping", "SaveCheckpoints"]

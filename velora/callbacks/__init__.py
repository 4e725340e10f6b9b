"""Callbacks extend `train()`: evaluation, early stopping, checkpoints, videos, tracking."""

from velora.callbacks.checkpoints import SaveCheckpoints
from velora.callbacks.comet import CometAnalytics
from velora.callbacks.early_stopping import EarlyStopping, StopOnNoImprovement
from velora.callbacks.evaluate import Evaluate
from velora.callbacks.mlflow import MLflowLogger
from velora.callbacks.tensorboard import TensorBoardLogger
from velora.callbacks.video import RecordVideos
from velora.training import TrainCallback

__all__ = [
    "TrainCallback",
    "Evaluate",
    "EarlyStopping",
    "StopOnNoImprovement",
    "SaveCheckpoints",
    "RecordVideos",
    "CometAnalytics",
    "TensorBoardLogger",
    "MLflowLogger",
]

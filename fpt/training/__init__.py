"""Training: the run config, the loop, evaluation, checkpoints and run directories."""

from fpt.training.config import RunConfig
from fpt.training.loop import TrainingDiverged, TrainingInterrupted, build_model, evaluate, train
from fpt.training.resume import resume_config
from fpt.training.signals import StopRequests

__all__ = [
    "RunConfig",
    "StopRequests",
    "TrainingDiverged",
    "TrainingInterrupted",
    "build_model",
    "evaluate",
    "resume_config",
    "train",
]

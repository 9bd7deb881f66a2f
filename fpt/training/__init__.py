"""Training: the run config, the loop, evaluation, checkpoints and run directories."""

from fpt.training.config import RunConfig
from fpt.training.loop import TrainingDiverged, TrainingInterrupted, build_model, evaluate, resume_config, train

__all__ = ["RunConfig", "TrainingDiverged", "TrainingInterrupted", "build_model", "evaluate", "resume_config", "train"]

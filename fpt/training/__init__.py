"""Training: the run config, the loop, evaluation, checkpoints and run directories."""
from fpt.training.config import RunConfig
from fpt.training.loop import TrainingDiverged, build_model, evaluate, train

__all__ = ["RunConfig", "TrainingDiverged", "build_model", "evaluate", "train"]

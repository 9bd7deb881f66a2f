"""Run directories and checkpoints: what a run leaves on disk and how it is read back.

Below both `fpt.model` (which rebuilds a run's model) and `fpt.training` (which writes runs).
"""

from fpt.runs.checkpoint import load_trained, read_checkpoint, read_training_state, resolve, save_checkpoint
from fpt.runs.record import RunDir, RunRecord, read_run_record, read_summary

__all__ = [
    "RunDir",
    "RunRecord",
    "load_trained",
    "read_checkpoint",
    "read_run_record",
    "read_summary",
    "read_training_state",
    "resolve",
    "save_checkpoint",
]

"""Training: the run config, the loop, evaluation, resume and stop requests.

The names load on first use (PEP 562): `fpt train --help` builds its flags from `RunConfig`
without importing torch, which the loop needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fpt.lazy import lazy_attributes

_LAZY = {
    "RunConfig": "fpt.training.config",
    "StopRequests": "fpt.training.signals",
    "TrainingDiverged": "fpt.training.loop",
    "TrainingInterrupted": "fpt.training.loop",
    "build_model": "fpt.training.loop",
    "evaluate": "fpt.training.loop",
    "train": "fpt.training.loop",
    "resume_config": "fpt.training.resume",
}

if TYPE_CHECKING:
    from fpt.training.config import RunConfig
    from fpt.training.loop import TrainingDiverged, TrainingInterrupted, build_model, evaluate, train
    from fpt.training.resume import resume_config
    from fpt.training.signals import StopRequests


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

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

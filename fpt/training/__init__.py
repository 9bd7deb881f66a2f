"""Training: the run config, the loop, evaluation, resume and stop requests.

The names load on first use (PEP 562): `fpt train --help` builds its flags from `RunConfig`
without importing torch, which the loop needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

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


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fpt.training' has no attribute {name!r}")


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

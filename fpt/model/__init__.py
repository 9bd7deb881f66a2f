"""The FPT model: input embedders, output heads, freezing of parameter groups.

The names load on first use (PEP 562): `fpt train --help` reads `ModelConfig` (fpt.model.config)
without importing torch, which the models need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fpt.lazy import lazy_attributes

_LAZY = {
    "GROUPS": "fpt.model.freeze",
    "FPTConfig": "fpt.model.fpt",
    "FreezePolicy": "fpt.model.freeze",
    "FrozenPretrainedTransformer": "fpt.model.fpt",
    "LSTMBaseline": "fpt.model.lstm",
    "LSTMConfig": "fpt.model.lstm",
    "ModelConfig": "fpt.model.config",
}

if TYPE_CHECKING:
    from fpt.model.config import ModelConfig
    from fpt.model.fpt import FPTConfig, FrozenPretrainedTransformer
    from fpt.model.freeze import GROUPS, FreezePolicy
    from fpt.model.lstm import LSTMBaseline, LSTMConfig


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


def load_run_model(run_dir, which: str = "best") -> FrozenPretrainedTransformer | LSTMBaseline:
    """Rebuild a finished run's model, whichever architecture it trained."""
    from fpt.model.fpt import FrozenPretrainedTransformer
    from fpt.model.lstm import LSTMBaseline
    from fpt.runs import read_run_record

    lstm = read_run_record(run_dir).architecture.startswith("lstm")
    return (LSTMBaseline if lstm else FrozenPretrainedTransformer).from_run(run_dir, which)


__all__ = [
    "GROUPS",
    "FPTConfig",
    "FreezePolicy",
    "FrozenPretrainedTransformer",
    "LSTMBaseline",
    "LSTMConfig",
    "ModelConfig",
    "load_run_model",
]

"""The FPT model: input embedders, output heads, freezing of parameter groups."""

from fpt.model.fpt import FPTConfig, FrozenPretrainedTransformer
from fpt.model.freeze import GROUPS, FreezePolicy
from fpt.model.lstm import LSTMBaseline, LSTMConfig
from fpt.runs import read_run_record


def load_run_model(run_dir, which: str = "best") -> FrozenPretrainedTransformer | LSTMBaseline:
    """Rebuild a finished run's model, whichever architecture it trained."""
    lstm = read_run_record(run_dir).architecture.startswith("lstm")
    return (LSTMBaseline if lstm else FrozenPretrainedTransformer).from_run(run_dir, which)


__all__ = [
    "GROUPS",
    "FPTConfig",
    "FreezePolicy",
    "FrozenPretrainedTransformer",
    "LSTMBaseline",
    "LSTMConfig",
    "load_run_model",
]

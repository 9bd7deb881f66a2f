"""The FPT model: input embedders, output heads, freezing of parameter groups."""
from fpt.model.fpt import FPTConfig, FrozenPretrainedTransformer
from fpt.model.freeze import GROUPS, PRESETS, FreezePolicy

__all__ = ["GROUPS", "PRESETS", "FPTConfig", "FreezePolicy", "FrozenPretrainedTransformer"]

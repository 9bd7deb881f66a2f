"""Fused activations: the same function in one kernel instead of a chain of elementwise operations.

GPT-2's `gelu_new` (and `gelu_fast`, `gelu_python_tanh`) is the tanh approximation of GELU written
out in Python: pow, mul, add, tanh, mul, each a full pass over the (batch, length, 4 x width)
feed-forward activation, and as many again in the backward: on CPU a large share of a GPT-2
training step (benchmarks/results/design_figures.md). PyTorch's `gelu(approximate="tanh")`
computes the same formula in one pass each way; transformers names it `gelu_pytorch_tanh` in its
activation table (`ACT2FN`). So the fused kernel is chosen where transformers reads the choice: the
config's activation name, set before the model is built. Outputs agree to rounding.
"""

from __future__ import annotations

from typing import Any

# transformers.activations.ACT2FN names of the tanh approximation, unfused -> fused
TANH_GELUS = ("gelu_new", "gelu_fast", "gelu_python_tanh")
FUSED_TANH_GELU = "gelu_pytorch_tanh"


def fused_activation_settings(config: Any) -> dict[str, str]:
    """The config values that build `config`'s model with the fused tanh-GELU: every top-level setting
    naming an unfused one (GPT-2's `activation_function`, `hidden_act`, `hidden_activation`, ...)."""
    return {key: FUSED_TANH_GELU for key, value in config.to_dict().items() if value in TANH_GELUS}

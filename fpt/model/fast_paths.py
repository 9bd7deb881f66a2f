"""The fast paths a model is built with: exact (or rounding-level) rewrites of Hugging Face
modules that make a CPU training step cheaper, chosen once when the model is built, recorded in
`model.fast_paths` (the freeze report, config.yaml and summary.json list them) and reversible.

`FPTConfig.fast_paths=False` (`fpt train --no-fast-paths`) builds the plain model. Each rewrite is
proven equivalent by its own test: fused GELU (tests/test_activations.py), CPU dropout and attention
with dropout (tests/test_dropout.py), the last block computing only read positions (tests/test_unread.py).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from fpt.model.activations import fuse_activations
from fpt.model.dropout import use_cpu_dropout, use_plain_dropout
from fpt.model.unread import skip_unread_positions

FUSED_GELU, CPU_DROPOUT, READ_POSITIONS_ONLY = "fused-gelu", "cpu-dropout", "last-block-read-positions-only"


def apply_fast_paths(model: nn.Module) -> list[str]:
    """Apply every fast path that fits `model`; returns the names of those applied."""
    applied = []
    if fuse_activations(model):  # GPT-2's Python tanh-GELU -> the same function in one kernel
        applied.append(FUSED_GELU)
    if use_cpu_dropout(model):  # dropout masks without the single-threaded Bernoulli sampler (CPU only)
        applied.append(CPU_DROPOUT)
    if skip_unread_positions(model):  # GPT-2 and BERT blocks: the last one computes only what the head reads
        applied.append(READ_POSITIONS_ONLY)
    return applied


def drop_cpu_dropout(model: Any) -> None:
    """Back to PyTorch's dropout: on GPUs (where it is fused already) and under torch.compile
    (which makes its own masks). Updates `model.fast_paths`."""
    if CPU_DROPOUT in getattr(model, "fast_paths", []):
        use_plain_dropout(model)
        model.fast_paths = [name for name in model.fast_paths if name != CPU_DROPOUT]

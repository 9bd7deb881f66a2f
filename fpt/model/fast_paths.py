"""The fast paths a model is built with: exact (or rounding-level) choices that make a CPU training step
cheaper, made once when the model is built, recorded in `model.fast_paths` (the freeze report,
config.yaml and summary.json list them) and reversible.

Each is chosen where transformers reads such a choice, before the backbone is built (`choose`):
- fused-gelu: the config's activation name is the fused tanh-GELU (`gelu_pytorch_tanh`, fpt.model.activations);
- cpu-dropout: `attn_implementation="fpt_sdpa"`, attention registered with transformers' `AttentionInterface`
  (fpt.model.dropout), and then the dropout modules swapped for `CPUDropout`, which transformers gives no
  setting for;
- last-block-read-positions-only: once built, the last block inside a named wrapper that holds the original
  as `base_layer` (`unwrap_last_block` restores it; fpt.model.unread);
- packed-frozen-matrices: once built, the frozen linear layers of the backbone multiply through weights packed
  once for oneDNN (`unpack_frozen_matrices` restores them; fpt.model.packed);
- native-kernels: with cpu-dropout, where a C compiler built fpt.model.native's kernels: attention with
  dropout (head sizes that are multiples of 16), dropout itself, and BERT's dropout-add-LayerNorm (the class
  of its sublayer outputs swapped, `use_plain_residual_norm` restores it; fpt.model.residual_norm), in one
  compiled pass each way.

`FPTConfig.fast_paths=False` (`fpt train --no-fast-paths`) builds the plain model. Each is proven
equivalent by its own test: fused GELU (tests/test_activations.py), CPU dropout and attention with
dropout (tests/test_dropout.py), the native kernels (tests/test_native.py), the last block computing only read positions (tests/test_unread.py), packed matrices (tests/test_packed.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import MODEL_MAPPING

from fpt.model import native
from fpt.model.activations import fused_activation_settings
from fpt.model.compat import fast_path_supported
from fpt.model.dropout import ATTENTION, use_cpu_dropout, use_plain_dropout
from fpt.model.packed import PACKED_MATRICES, pack_frozen_matrices, unpack_frozen_matrices
from fpt.model.residual_norm import use_native_residual_norm, use_plain_residual_norm
from fpt.model.unread import wrap_last_block

FUSED_GELU, CPU_DROPOUT, READ_POSITIONS_ONLY = "fused-gelu", "cpu-dropout", "last-block-read-positions-only"
NATIVE_KERNELS = "native-kernels"
CPU_ONLY = (CPU_DROPOUT, PACKED_MATRICES, NATIVE_KERNELS)  # dropped on GPUs and under torch.compile


@dataclass(frozen=True)
class BackboneChoices:
    """What a backbone is built with: config values and the attention implementation."""

    attn_implementation: str
    settings: dict[str, Any] = field(default_factory=dict)  # config key -> value the model is built with
    plain: dict[str, Any] = field(default_factory=dict)  # those keys' values without the fast paths


def choose(config: Any, attn_implementation: str) -> BackboneChoices:
    """The fast paths' construction choices for a backbone with architecture config `config`, where
    `attn_implementation` was asked for. (`BackboneChoices(attn_implementation)`: the plain model.)"""
    settings = fused_activation_settings(config) if fast_path_supported(FUSED_GELU) else {}
    plain = {key: getattr(config, key) for key in settings}
    if attn_implementation == "sdpa" and fast_path_supported(CPU_DROPOUT) and _uses_attention_interface(config):
        attn_implementation = ATTENTION  # sdpa, with the attention dropout computed directly on CPU
    return BackboneChoices(attn_implementation, settings, plain)


def _uses_attention_interface(config: Any) -> bool:
    """Whether the model class built from `config` calls transformers' AttentionInterface (so `fpt_sdpa` reaches it)."""
    try:
        model_class = MODEL_MAPPING[type(config)]
    except KeyError:  # an architecture transformers does not map (remote code): sdpa as asked
        return False
    return bool(getattr(model_class, "_supports_attention_backend", False))


def apply_fast_paths(model: Any, choices: BackboneChoices) -> list[str]:
    """Finish the fast paths `model` (built with `choices`) takes, those the installed transformers is
    tested with (fpt.model.compat); returns their names."""
    applied = []
    if choices.settings:  # GPT-2's Python tanh-GELU -> the same function in one kernel
        applied.append(FUSED_GELU)
    # dropout masks without the single-threaded Bernoulli sampler
    if fast_path_supported(CPU_DROPOUT) and (use_cpu_dropout(model) or choices.attn_implementation == ATTENTION):
        applied.append(CPU_DROPOUT)
        # ... its attention, masks and BERT's dropout-add-norm in compiled passes, where a C compiler built them
        if fast_path_supported(NATIVE_KERNELS) and native.library() is not None:
            use_native_residual_norm(model)
            applied.append(NATIVE_KERNELS)
    # GPT-2 and BERT blocks: the last one computes only what the head reads
    if fast_path_supported(READ_POSITIONS_ONLY) and wrap_last_block(model.backbone):
        applied.append(READ_POSITIONS_ONLY)
    # frozen matrices packed once for oneDNN's CPU kernel, for the forward and the input gradient
    if fast_path_supported(PACKED_MATRICES) and pack_frozen_matrices(model.backbone):
        applied.append(PACKED_MATRICES)
    return applied


def drop_cpu_fast_paths(model: Any) -> None:
    """Back to PyTorch's dropout and plain linear layers: on GPUs (where dropout is fused already and
    matrices live on the device) and under torch.compile (which makes its own masks and kernels).
    Updates `model.fast_paths`."""
    applied = getattr(model, "fast_paths", [])
    if CPU_DROPOUT in applied:
        use_plain_dropout(model)
    if PACKED_MATRICES in applied:
        unpack_frozen_matrices(model)
    if NATIVE_KERNELS in applied:
        use_plain_residual_norm(model)
    if any(name in CPU_ONLY for name in applied):
        model.fast_paths = [name for name in applied if name not in CPU_ONLY]

"""Classify a backbone's parameters into the paper's groups by module type and structure.

Never by parameter-name substrings: `ln_1.weight` (GPT-2), `LayerNorm.weight` (BERT) and
`input_layernorm.weight` (Llama) are all norms because their module is a normalisation layer.

- norm: any normalisation module (torch's LayerNorm/RMSNorm/GroupNorm, or a model's own
  `...Norm` class such as LlamaRMSNorm) outside attention: the block layer norms the paper trains;
- attention-norm: a norm inside the innermost attention module (Gemma 3 / Qwen3 `q_norm`, `k_norm`). It
  scales queries and keys, so training it gives a frozen backbone direct control of its attention
  patterns: its own group, frozen by the `fpt` preset;
- position: the learned absolute position table (an Embedding sized to the position limit);
- attention / feed-forward: inside each transformer block, what sits under an attention module,
  and everything else;
- other: whatever remains (BERT's token-type table, for example);
- unused: the language token embedding, which FPT never calls (inputs enter as embeddings).
"""

from __future__ import annotations

from torch import nn
from transformers import PreTrainedModel

BACKBONE_GROUPS = ("position", "norm", "attention-norm", "attention", "feed-forward", "other")
UNUSED = "unused"


def is_norm(module: nn.Module) -> bool:
    if isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)):
        return True
    # Model-specific norms (LlamaRMSNorm, T5LayerNorm, GemmaRMSNorm) share no base class.
    return type(module).__name__.endswith("Norm") and all(p.dim() == 1 for p in module.parameters(recurse=False))


def is_attention(module: nn.Module) -> bool:
    return isinstance(module, nn.MultiheadAttention) or "Attention" in type(module).__name__


def block_list(model: PreTrainedModel) -> nn.ModuleList:
    """The stack of transformer blocks: the ModuleList with one entry per hidden layer."""
    n_layers = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module
    raise ValueError(f"no ModuleList of {n_layers} blocks found in {type(model).__name__}")


def position_table(model: PreTrainedModel) -> nn.Embedding | None:
    """The learned absolute position embedding, or None for rotary/relative backbones."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is None:
        return None
    token = model.get_input_embeddings()
    blocks = set(block_list(model).modules())
    for module in model.modules():
        if (
            isinstance(module, nn.Embedding)
            and module is not token
            and module not in blocks
            and limit <= module.num_embeddings <= limit + 2  # OPT-style tables carry an offset of 2
        ):
            return module
    return None


def classify_backbone(model: PreTrainedModel) -> dict[str, str]:
    """Map every parameter name of `model` to its group."""
    token = model.get_input_embeddings()
    positions = position_table(model)
    blocks = list(block_list(model))
    groups: dict[str, str] = {}

    def visit(module: nn.Module, prefix: str, inside: str | None, in_core: bool) -> None:
        if module is token:
            group = UNUSED
        elif module is positions:
            group = "position"
        elif is_norm(module):
            group = "attention-norm" if in_core else "norm"
        elif inside is not None and is_attention(module):
            inside = group = "attention"
            # The innermost attention module (no attention module below it) is the attention
            # computation itself: a norm there acts on queries/keys. BERT's BertAttention and T5's
            # T5LayerSelfAttention wrap one and hold the block's residual layer norm instead.
            in_core = not any(is_attention(m) for m in module.modules() if m is not module)
        else:
            group = inside or "other"
        for pname, _ in module.named_parameters(recurse=False):
            groups[f"{prefix}{pname}"] = group
        for cname, child in module.named_children():
            child_inside = "feed-forward" if any(child is b for b in blocks) else inside
            visit(child, f"{prefix}{cname}.", child_inside, in_core)

    visit(model, "", None, False)
    return groups

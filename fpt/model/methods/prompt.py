"""Prompt tuning (Lester et al., 2021): learned soft prompt tokens put before the embedded inputs of the
frozen backbone. The prompt trains, with the new input and output layers (nothing else reads or writes
the new modality); the backbone stays untouched.

Written here, not taken from peft: peft's prompt learning wraps the whole transformer in a PeftModel,
and `inject_adapter_in_model`, which FPT uses for LoRA and the other adapters, covers only methods that
wrap modules. How it works here:
- the prompt is `tokens` vectors of the backbone's width, put first in every sequence, for encoders and
  causal decoders alike (every position of a decoder sees it);
- the padding mask gets `tokens` ones in front, and the outputs at the prompt's positions are dropped, so
  the head reads the last input positions exactly as without a prompt;
- the prompt takes the first positions (as in peft), so a position table is sized for max_length +
  tokens; a backbone's own prefix (ViT's [CLS]) stays first, the prompt after it (as in VPT);
- each prompt vector starts as the embedding of a random token of the backbone's vocabulary (the
  paper's "sampled vocabulary" init, through the embedding module, so Gemma's scaling applies); a
  backbone without a token table (ViT) draws them normal with std its initializer_range;
- `save_peft_adapter` writes peft's own prompt-tuning format: `peft.PeftModel.from_pretrained(backbone,
  directory)` computes what FPT's backbone computes with the prompt (text backbones).

Options: `--method-option tokens=N` (default 20, peft's documented example).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from fpt.errors import FPTError
from fpt.model.methods import Method, Tuner, register_method


@dataclass(frozen=True)
class PromptOptions:
    tokens: int = 20  # soft prompt tokens put before every input

    def __post_init__(self) -> None:
        if self.tokens < 1:
            raise FPTError(f"prompt-tuning needs at least one prompt token (got tokens={self.tokens}).")

    @property
    def prefix_tokens(self) -> int:
        return self.tokens


class SoftPrompt(nn.Module):
    """Learned vectors put before every embedded input; the mask marks them as real tokens."""

    def __init__(self, initial: torch.Tensor):
        super().__init__()
        self.embedding = nn.Parameter(initial)  # (tokens, width)

    @property
    def prefix_tokens(self) -> int:
        return self.embedding.shape[0]

    def prompt(self) -> torch.Tensor:
        """The (tokens, width) prompt; a reparameterised prompt (P-tuning's MLP) overrides this."""
        return self.embedding

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        prompt = self.prompt().to(embeds.dtype).expand(len(embeds), -1, -1)
        if mask is not None:
            mask = torch.cat([mask.new_ones(len(mask), self.prefix_tokens), mask], dim=1)
        return torch.cat([prompt, embeds], dim=1), mask


def initial_prompt(model: Any, tokens: int) -> torch.Tensor:
    """Embeddings of `tokens` random vocabulary tokens, or small normal draws without a token table."""
    table = model.backbone_adapter.token_embedding()
    if isinstance(table, nn.Embedding):
        ids = torch.randint(0, table.num_embeddings, (tokens,))
        with torch.no_grad():
            return table(ids.to(table.weight.device)).float().cpu().clone()
    std = float(getattr(model.backbone.config, "initializer_range", 0.02))
    return torch.randn(tokens, model.backbone_adapter.width) * std


def add_prompt(model: Any, options: PromptOptions) -> None:
    model.soft_prompt = SoftPrompt(initial_prompt(model, options.tokens))


def describe(model: Any, options: PromptOptions) -> str:
    return f"prompt tuning: {options.tokens} learned prompt tokens put before every input (fpt.model.methods.prompt)"


def export_prompt(model: Any, directory: Path) -> Path:
    """The prompt in peft's prompt-tuning format (adapter_config.json, adapter_model.safetensors)."""
    import peft

    from fpt.model.card import base_model
    from fpt.model.hub import backbone_revision

    inside = sorted(n for n in model.trained_state() if n.startswith("backbone.") or n == "learned_positions")
    if inside or model.backbone_adapter.prefix_tokens:
        why = f"also trains {', '.join(inside[:3])}" if inside else "puts its own tokens before the prompt"
        raise FPTError(
            f"This prompt-tuning model {why}, which peft's prompt format cannot hold. Use save_pretrained, "
            "which stores every trained parameter."
        )
    backbone = model.backbone.config
    prompt = model.soft_prompt.prompt()
    config = peft.PromptTuningConfig(
        task_type="FEATURE_EXTRACTION",
        num_virtual_tokens=prompt.shape[0],
        token_dim=prompt.shape[1],
        num_transformer_submodules=1,
        num_attention_heads=backbone.num_attention_heads,
        num_layers=backbone.num_hidden_layers,
        base_model_name_or_path=base_model(model.config, model.backbone_source) or model.backbone_source,
        revision=backbone_revision(model),
    )
    config.save_pretrained(str(directory))
    tensors = {"prompt_embeddings": prompt.detach().float().cpu().contiguous()}
    save_file(tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
    return directory


PROMPT_TUNING = Tuner("prompt-tuning", add_prompt, describe, PromptOptions, export_prompt)
register_method(
    Method(
        "prompt-tuning",
        ("input", "output", "adapter"),
        "prompt tuning (Lester et al., 2021): learned soft prompt tokens put before every input",
        "prompt tuning",
        PROMPT_TUNING,
    )
)

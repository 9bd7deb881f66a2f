"""What FPT needs from a backbone, in one place: the backbone adapter protocol and its registry.

(Not a PEFT adapter: this class adapts a pretrained network to FPT's way of driving it.)

FPT asks six things of a pretrained network: its width; a forward pass from embedded tokens with a
padding mask; its learned absolute position table, if any (trained by the `position` group and
stretched for longer inputs); its parameters sorted into the paper's groups; whether it is causal;
and its stack of blocks (the depth ablation drops the last ones; fast paths wrap the last one).

`BackboneAdapter` answers them for any transformers model that takes `inputs_embeds` (BERT, GPT-2,
Llama, Gemma, ...), the text case. A family that does not, such as ViT (it takes pixels), subclasses
it in a file of its own and registers the subclass for its config's `model_type`
(`register_backbone_adapter`; fpt.backbones.vit is the example to copy, CONTRIBUTING.md the recipe).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from fpt.backbones.groups import block_list, classify_backbone, position_table
from fpt.backbones.positions import extend_positions
from fpt.errors import FPTError


class BackboneAdapter:
    """How FPT drives a backbone; this base class is the text case (models taking `inputs_embeds`).

    An adapter holds the transformers model (`self.model`) and adds no parameters of its own: every
    parameter FPT trains or freezes is the model's, under its own name."""

    prefix_tokens = 0  # tokens the backbone puts before those it is given (ViT's [CLS]); outputs leave them out
    unused_label = "token-embed."  # what the `unused` group is, in the freeze report

    def __init__(self, model: PreTrainedModel):
        self.model: Any = model  # a transformers model: its modules are read by name

    @property
    def width(self) -> int:
        """The width of the embedded tokens the backbone reads."""
        return self.model.get_input_embeddings().embedding_dim

    @property
    def causal(self) -> bool:
        """Whether a position sees only those before it (a decoder) rather than all (an encoder)."""
        return any(getattr(m, "is_causal", False) is True for m in self.blocks()[0].modules())

    def blocks(self) -> nn.ModuleList:
        """The stack of transformer blocks, in order."""
        return block_list(self.model)

    def token_embedding(self) -> nn.Module | None:
        """The language token table (never called by FPT; --align embeds text with it), or None."""
        return self.model.get_input_embeddings()

    def position_table(self) -> torch.Tensor | None:
        """The learned absolute position table (rows: positions), or None (rotary, relative)."""
        table = position_table(self.model)
        return None if table is None else table.weight

    @property
    def position_limit(self) -> int | None:
        """The most tokens the position table covers (None: no table)."""
        return (
            getattr(self.model.config, "max_position_embeddings", None) if self.position_table() is not None else None
        )

    def groups(self) -> dict[str, str]:
        """Every parameter name of the model -> its group (fpt.backbones.groups)."""
        return classify_backbone(self.model)

    def fit_positions(self, tokens: int) -> dict | None:
        """Make the position table cover `tokens` tokens (replacing `self.model` if need be); returns
        {"interpolated_from", "to"} where the table was resampled, else None."""
        rows = getattr(self.model.config, "max_position_embeddings", None)
        extended = extend_positions(self.model, tokens)
        if extended is self.model:
            return None
        self.model = extended
        return {"interpolated_from": rows, "to": extended.config.max_position_embeddings}

    def keep_first(self, layers: int | None) -> None:
        """Drop every block after the first `layers` (the paper's depth ablation; None: keep all)."""
        if layers is None:
            return
        blocks = self.blocks()
        if not isinstance(layers, int) or not 1 <= layers <= len(blocks):
            raise FPTError(f"layers must be an integer from 1 to {len(blocks)} (the backbone's depth), got {layers!r}.")
        del blocks[layers:]
        self.model.config.num_hidden_layers = layers

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor | None = None, **kwargs: Any):
        """The backbone's output (with `last_hidden_state`, one row per given token) on `embeds`
        (batch, tokens, width); `mask` (batch, tokens) marks real tokens. Keyword arguments such as
        output_attentions=True go to the model."""
        return self.model(inputs_embeds=embeds, attention_mask=mask, **kwargs)

    def report_notes(self) -> list[str]:
        """Lines the freeze report adds about how this backbone is fed."""
        return []


_ADAPTERS: dict[str, type[BackboneAdapter]] = {}


def register_backbone_adapter(model_type: str, adapter: type[BackboneAdapter]) -> None:
    """Drive every backbone whose config's `model_type` is `model_type` with `adapter`."""
    _ADAPTERS[model_type] = adapter


def adapter_for(model: PreTrainedModel) -> BackboneAdapter:
    """The adapter for `model`: the one registered for its `model_type`, else the text case."""
    return _ADAPTERS.get(getattr(model.config, "model_type", ""), BackboneAdapter)(model)


def without_prefix(output: Any, prefix: int) -> Any:
    """`output` without its first `prefix` positions: in `last_hidden_state`, each of `hidden_states`,
    and both the query and key axes of `attentions` (the weights among the given tokens)."""
    if prefix == 0:
        return output
    cut = {"last_hidden_state": output.last_hidden_state[:, prefix:]}
    if getattr(output, "hidden_states", None) is not None:
        cut["hidden_states"] = tuple(h[:, prefix:] for h in output.hidden_states)
    if getattr(output, "attentions", None) is not None:
        cut["attentions"] = tuple(None if a is None else a[..., prefix:, prefix:] for a in output.attentions)
    return replace(output, **cut)

"""ViT (transformers' `ViTModel`) as a frozen backbone: an image-pretrained transformer, the paper's
comparison of pretraining modalities (its "ViT (images)" initialisation row).

ViT reads pixels, not embeddings, so FPT feeds it as follows (the pretrained modules FPT bypasses
are listed in the freeze report):
- FPT's input layer replaces the patch embedding: its tokens take the place of the embedded patches,
  and the patch projection is never called (group `unused`, as a text model's token table);
- ViT's pretrained [CLS] token is put first, as in pretraining (group `other`: frozen by every preset
  but `all`); no output reads it: the head reads the last positions, as for text backbones;
- the position table (a bare Parameter, [CLS] row first) is the `position` group. For a number of
  tokens other than the pretraining grid's, its patch rows are resampled once when the model is built:
  a square number of tokens as a square grid (bicubic, as ViT's own `interpolate_pos_encoding` does:
  Fashion-MNIST's 7x7 and CIFAR-10's 8x8 patches see the pretrained 14x14 layout shrunk), any other
  number along the raster order (linear, first and last rows kept). Fewer tokens than the grid are
  resampled too, not cut: the first rows of a raster are only the top of an image.

Registered for `model_type` "vit", so any ViT checkpoint works (`--backbone org/vit-model` or a local
directory); `vit-base` names google/vit-base-patch16-224-in21k, whose config ships with fpt so that
`--init random` works offline.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from fpt.backbones.adapter import BackboneAdapter, register_backbone_adapter, without_prefix
from fpt.backbones.loading import CONFIG_DIR, NamedBackbone, register_backbone
from fpt.backbones.positions import interpolate_table
from fpt.errors import FPTError
from fpt.model.compat import ADAPTERS, adapter_unsupported


class ViTBackbone(BackboneAdapter):
    """transformers' ViTModel, driven from embedded tokens (see the module docstring). Its relatives
    (DeiT: [CLS] and a distillation token) subclass it with their own `special_tokens`."""

    prefix_tokens = 1  # [CLS]
    unused_label = "patch-embed."

    def __init__(self, model):
        why, needed = adapter_unsupported("vit"), ADAPTERS["vit"]
        if why is not None:
            raise FPTError(
                f"{type(model).__name__} cannot be used as a backbone with this transformers: {why}. fpt feeds "
                "ViT-family models block by block, and other transformers versions lay those blocks out otherwise "
                f"(before 5.9: no attention mask). Install `pip install 'transformers{needed}'`, or use a "
                "text backbone."
            )
        super().__init__(model)

    def special_tokens(self) -> list[torch.Tensor]:
        """The pretrained tokens put before the inputs, each (1, 1, width), as many as `prefix_tokens`."""
        return [self.model.embeddings.cls_token]

    @property
    def width(self) -> int:
        return self.model.config.hidden_size

    @property
    def causal(self) -> bool:
        return False

    def token_embedding(self) -> nn.Module | None:
        return None  # image patches: no language token table to align to

    def position_table(self) -> torch.Tensor:
        return self.model.embeddings.position_embeddings

    @property
    def position_limit(self) -> int:
        return self.position_table().shape[1] - self.prefix_tokens

    def groups(self) -> dict[str, str]:
        groups = super().groups()
        groups["embeddings.position_embeddings"] = "position"
        for name, _ in self.model.embeddings.patch_embeddings.named_parameters(prefix="embeddings.patch_embeddings"):
            groups[name] = "unused"
        return groups

    def fit_positions(self, tokens: int) -> dict | None:
        table, special = self.position_table(), self.prefix_tokens
        rows = table.shape[1] - special
        if rows == tokens:
            return None
        with torch.no_grad():
            patches = resample_positions(table[0, special:].float(), tokens).to(table.dtype)
            resampled = torch.cat([table[0, :special], patches])[None]
        self.model.embeddings.position_embeddings = nn.Parameter(resampled, requires_grad=table.requires_grad)
        return {"interpolated_from": rows, "to": tokens}

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor | None = None, **kwargs: Any):
        """The special tokens ([CLS]), then `embeds`, plus positions, through the blocks and the final
        norm; as ViTModel's forward after its patch embedding. output_attentions / output_hidden_states
        are supported."""
        from transformers.masking_utils import create_bidirectional_mask

        embeddings = self.model.embeddings
        special = [token.expand(len(embeds), -1, -1).to(embeds.dtype) for token in self.special_tokens()]
        hidden = torch.cat([*special, embeds], dim=1)
        hidden = embeddings.dropout(hidden + embeddings.position_embeddings[:, : hidden.shape[1]])
        if mask is not None:
            mask = torch.cat([mask.new_ones(len(mask), self.prefix_tokens), mask], dim=1)
        attention_mask = create_bidirectional_mask(config=self.model.config, inputs_embeds=hidden, attention_mask=mask)
        states, maps = [hidden], []
        hooks = [
            block.get_submodule("attention").register_forward_hook(lambda module, args, out: maps.append(out[1]))
            for block in self.blocks()
            if kwargs.get("output_attentions")
        ]
        try:
            for block in self.blocks():
                hidden = block(hidden, attention_mask)
                states.append(hidden)
        finally:
            for hook in hooks:
                hook.remove()
        output = BaseModelOutput(
            last_hidden_state=self.model.layernorm(hidden),
            hidden_states=tuple(states) if kwargs.get("output_hidden_states") else None,
            attentions=tuple(maps) if kwargs.get("output_attentions") else None,
        )
        return without_prefix(output, self.prefix_tokens)

    def report_notes(self) -> list[str]:
        return [
            f"{type(self.model).__name__}: the input layer's tokens replace the patch embeddings (the patch projection "
            f"is unused); its {self.prefix_tokens} pretrained special token(s) ([CLS]) go first (group other) and the "
            "head reads the last positions (fpt.backbones.vit)"
        ]


def resample_positions(rows: torch.Tensor, length: int) -> torch.Tensor:
    """A (positions, width) table resampled to `length` rows: as a square grid (bicubic) where both
    counts are squares, else along the raster order (linear)."""
    side, new = math.isqrt(len(rows)), math.isqrt(length)
    if side * side != len(rows) or new * new != length:
        return interpolate_table(rows, length)
    grid = rows.T.reshape(1, -1, side, side)
    resized = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    return resized.reshape(-1, length).T.contiguous()


register_backbone_adapter("vit", ViTBackbone)
register_backbone(
    "vit-base",
    NamedBackbone(
        weights="google/vit-base-patch16-224-in21k",
        config=CONFIG_DIR / "vit-base.json",
        note="ViT-B/16 pretrained on ImageNet-21k (images, not text): 12 layers, 768 wide; config ships with fpt "
        "(random init offline); weights from the HF cache or hub",
    ),
)

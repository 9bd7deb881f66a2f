"""Output layer: a linear map from the final hidden states of the last k positions."""

from __future__ import annotations

import torch
from torch import nn


class OutputHead(nn.Module):
    """Reads the last `output_tokens` positions (the last real ones when padded).

    Each read position predicts `outputs_per_token` units of `num_classes` classes; logits come out
    as (batch, output_tokens * outputs_per_token, num_classes). A classifier is k=1, one unit.
    """

    def __init__(self, hidden: int, output_tokens: int, outputs_per_token: int, num_classes: int):
        super().__init__()
        self.output_tokens = output_tokens
        self.num_classes = num_classes
        self.proj = nn.Linear(hidden, outputs_per_token * num_classes)

    def forward(self, states: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        k = self.output_tokens
        if lengths is None:
            read = states[:, -k:]
        else:
            index = (lengths[:, None] - k + torch.arange(k, device=states.device)).clamp_min(0)
            read = states.gather(1, index[:, :, None].expand(-1, -1, states.shape[-1]))
        logits = self.proj(read)
        return logits.reshape(states.shape[0], -1, self.num_classes)

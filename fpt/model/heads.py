"""Output layer: a linear map from the final hidden states of the last k positions."""

from __future__ import annotations

import torch
from torch import nn


class OutputHead(nn.Module):
    """Reads the last `output_tokens` positions (the last real ones when padded).

    `flatten=False`: each read position predicts `outputs_per_token` units of `num_classes` outputs.
    `flatten=True`: one linear layer over the k positions' features together predicts all k x
    `outputs_per_token` units (One-Fits-All forecasting's head over the flattened patch features).
    Outputs come out as (batch, output_tokens * outputs_per_token, num_classes) either way; a
    classifier is k=1, one unit, and a regression head has one output per unit (`num_classes` 1).
    """

    def __init__(
        self, hidden: int, output_tokens: int, outputs_per_token: int, num_classes: int, flatten: bool = False
    ):
        super().__init__()
        self.output_tokens = output_tokens
        self.num_classes = num_classes
        self.hidden = hidden  # the width of one read position's features
        self.flatten = flatten
        read = output_tokens if flatten else 1  # positions one linear map reads
        units = outputs_per_token * (output_tokens if flatten else 1)  # units it predicts
        self.proj = nn.Linear(read * hidden, units * num_classes)

    def read(self, states: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The (batch, output_tokens, hidden) features the head reads."""
        k = self.output_tokens
        if lengths is None:
            return states[:, -k:]
        index = (lengths[:, None] - k + torch.arange(k, device=states.device)).clamp_min(0)
        return states.gather(1, index[:, :, None].expand(-1, -1, states.shape[-1]))

    def project(self, read: torch.Tensor) -> torch.Tensor:
        """The outputs from the features `read` gives (what a head trained on cached features runs)."""
        logits = self.proj(read.flatten(1) if self.flatten else read)
        return logits.reshape(read.shape[0], -1, self.num_classes)

    def forward(self, states: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.project(self.read(states, lengths))


def head_for(config, hidden: int) -> OutputHead:
    """The head a model config (FPTConfig, LSTMConfig) asks for, over features `hidden` wide."""
    flatten = getattr(config, "head", "last") == "flatten"
    return OutputHead(hidden, config.output_tokens, config.outputs_per_token, config.num_classes, flatten)

"""Input layers: the new modality enters the backbone as embeddings, never as language tokens."""

from __future__ import annotations

import torch
from torch import nn

from fpt.errors import FPTError
from fpt.memory import require


class ContinuousEmbedder(nn.Module):
    """Linear projection of real-valued tokens (bits, pixel patches); orthogonal init, gain 1.41."""

    def __init__(self, input_dim: int, hidden: int, dropout: float = 0.1):
        super().__init__()
        self.input_dim = input_dim
        self.proj = nn.Linear(input_dim, hidden)
        nn.init.orthogonal_(self.proj.weight, gain=1.41)
        nn.init.zeros_(self.proj.bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.input_dim or not x.is_floating_point():
            raise FPTError(
                f"Expected float inputs of shape (batch, tokens, {self.input_dim}), got {tuple(x.shape)} "
                f"{x.dtype}. Each token must carry {self.input_dim} values."
            )
        return self.dropout(self.proj(x))


class DiscreteEmbedder(nn.Module):
    """Embedding table for symbol ids (ListOps tokens, amino acids)."""

    def __init__(self, vocab_size: int, hidden: int, dropout: float = 0.1):
        super().__init__()
        self.vocab_size = vocab_size
        self.table = nn.Embedding(vocab_size, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.is_floating_point():
            raise FPTError(
                f"Expected integer token ids of shape (batch, tokens) below {self.vocab_size}, got "
                f"{tuple(x.shape)} {x.dtype}."
            )
        return self.dropout(self.table(x))


def require_new_layers(config, hidden: int) -> None:
    """Refuse (before allocating) an input embedding or output layer that cannot fit in memory: token ids
    or class ids far beyond their count (2^40) make tables of that many rows (fpt.memory's floor: 4 bytes a
    parameter, the weights alone). `config`: the model's FPTConfig or LSTMConfig."""
    input_kind, input_dim, num_classes = config.input_kind, config.input_dim, config.num_classes
    units = config.outputs_per_token * (config.output_tokens if getattr(config, "head", "last") == "flatten" else 1)
    read = config.output_tokens if getattr(config, "head", "last") == "flatten" else 1
    if input_kind == "discrete":
        require(
            f"An input embedding of {input_dim:,} token ids x {hidden} (the largest token id is {input_dim - 1:,})",
            4.0 * input_dim * hidden,
            "Token ids index that table, so they run from 0 to the vocabulary size - 1: renumber them (e.g. "
            "numpy.unique(ids, return_inverse=True)).",
        )
    else:
        require(
            f"An input layer of {input_dim:,} values per token x {hidden}",
            4.0 * input_dim * hidden,
            "Give fewer values per token (patch or project the inputs first).",
        )
    require(
        f"An output layer of {units:,} unit(s) x {num_classes:,} classes x {hidden} (the largest class id is "
        f"{num_classes - 1:,})",
        4.0 * units * num_classes * hidden * read,
        "Class ids run from 0 to the number of classes - 1: renumber the targets (e.g. numpy.unique(targets, "
        "return_inverse=True)).",
    )


def make_embedder(kind: str, input_dim: int, hidden: int, dropout: float) -> nn.Module:
    if kind == "continuous":
        return ContinuousEmbedder(input_dim, hidden, dropout)
    if kind == "discrete":
        return DiscreteEmbedder(input_dim, hidden, dropout)
    raise FPTError(f"Unknown input kind {kind!r}: expected 'continuous' (vectors) or 'discrete' (ids).")

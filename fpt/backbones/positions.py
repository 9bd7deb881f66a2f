"""Position handling: stretch a learned position table to cover longer sequences.

Sequences longer than a backbone's table (MiniLM 512, GPT-2 1024) are never truncated: the table
is linearly interpolated to the new length and the model rebuilt with the larger limit.
"""

from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from fpt.backbones.groups import position_table
from fpt.memory import require

log = logging.getLogger(__name__)


def interpolate_table(table: torch.Tensor, length: int) -> torch.Tensor:
    """Resample a (positions, width) table to `length` rows, keeping the first and last rows."""
    resized = F.interpolate(table.T.unsqueeze(0), size=length, mode="linear", align_corners=True)
    return resized.squeeze(0).T.contiguous()


def extend_positions(model: PreTrainedModel, length: int) -> PreTrainedModel:
    """Return `model` with a learned position table of at least `length` rows.

    Backbones without a table (rotary, relative) and tables already long enough come back as is.
    """
    table = position_table(model)
    if table is None or table.num_embeddings >= length:
        return model
    require(  # the old and the interpolated table, besides a second copy of the model
        f"Sequences of {length:,} tokens (a position table of {length:,} rows)",
        8.0 * length * table.embedding_dim,
        "Use shorter sequences (ListOps: a smaller max_length task option).",
    )
    offset = table.num_embeddings - model.config.max_position_embeddings
    name = next(n for n, p in model.named_parameters() if p is table.weight)
    state = model.state_dict()
    state[name] = interpolate_table(state[name], length + offset)
    config = copy.deepcopy(model.config)
    config.max_position_embeddings = length
    extended = type(model)(config).float()
    if getattr(model, "pooler", "absent") is None:
        extended.pooler = None
    extended.load_state_dict(state)
    log.warning(
        "Sequence length %d exceeds the backbone's %d learned positions: the position table was "
        "interpolated to %d rows.",
        length,
        table.num_embeddings - offset,
        length,
    )
    return extended

"""No work on positions no output reads: the last block of the backbone computes only the tail.

The head reads the last k positions. Every position's keys and values are needed in every layer
(the read positions attend to them, causal or not), but in the last block the queries, the
attention output, the output projection and the feed-forward of the first L - k positions feed
nothing. Skipping them is exact: the last k outputs are computed by the same operations on the
same inputs. For Bit Memory (k = 20 of 120 tokens) on GPT-2 it saves 5/6 of the last block's
query, attention, projection and feed-forward work; for MiniLM (BERT) on Bit XOR (5 of 10) half of
it, on Fashion-MNIST (1 of 49) nearly all of it.

Applied only where it is exact and simple to keep so: GPT-2 and BERT (encoder) blocks with fused (sdpa)
attention, inputs without padding (a padded batch reads different positions per example), and only
inside `model(inputs)`; `model.encode()` (attention maps, hidden states) always runs in full. The
first L - k positions of the last block's output are then its input, unchanged: nothing reads them.

How: the last block is replaced by a named wrapper (`ReadPositionsOnly`) that holds the original as
`base_layer`, as PEFT's layers do, and computes through it wherever the shortcut does not apply;
`unwrap_last_block` puts the original back. The wrapper shares the block's submodules under their
own names, so parameter names, state-dict keys and PEFT's targets are the block's (and a module PEFT
swaps in later is the block's too), and it is an instance of the block's class, so transformers'
output recording (`output_hidden_states`) still finds it. `FrozenPretrainedTransformer.forward`
says how many positions the head reads, for the duration of the call (`reading_last`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import transformers
from torch import nn
from transformers.models.bert.modeling_bert import BertLayer
from transformers.models.gpt2.modeling_gpt2 import GPT2Block
from transformers.pytorch_utils import Conv1D

from fpt.backbones.groups import block_list
from fpt.model.dropout import ATTENTION, attention


class ReadPositionsOnly(nn.Module):
    """A block computing only its last `read_last` positions; the block itself is `base_layer`.
    Subclasses pair it with the block's class and give `forward` that class's signature."""

    base_layer: nn.Module  # the original block
    read_last: int | None = None  # how many final positions the head reads in this call; None: all

    def __init__(self, block: nn.Module):
        nn.Module.__init__(self)  # not the block class's: the submodules are the block's own
        for shared in ("_parameters", "_buffers", "_non_persistent_buffers_set", "_modules"):
            self.__dict__[shared] = block.__dict__[shared]
        self.__dict__["base_layer"] = block  # not registered: its submodules already are, under their names
        self.training = block.training

    def train(self, mode: bool = True):
        self.base_layer.training = mode
        return super().train(mode)

    def unwrap(self) -> nn.Module:
        """The original block (with whatever module was swapped into either since: they share them)."""
        return self.base_layer

    def extra_repr(self) -> str:
        return f"base_layer={type(self.base_layer).__name__}, read_last={self.read_last}"

    @classmethod
    def fits(cls, block: Any) -> bool:
        """Whether the shortcut is exact for this block as built."""
        return True

    def _reads(self, hidden_states: torch.Tensor, cache, attention_mask, encoder_hidden_states, kwargs) -> int | None:
        """How many final positions to compute, or None to run the block in full."""
        k = self.read_last
        full = (
            k is None
            or k >= hidden_states.shape[1]
            or cache is not None
            or attention_mask is not None
            or encoder_hidden_states is not None
            or kwargs.get("output_attentions")
        )
        return None if full else k


class GPT2ReadPositionsOnly(ReadPositionsOnly, GPT2Block):
    """GPT2Block with queries, attention output and feed-forward for the last `read_last` positions."""

    @classmethod
    def fits(cls, block: Any) -> bool:
        return isinstance(block.attn.c_attn, Conv1D)  # not wrapped by a PEFT adapter: its weight is the layer

    def forward(self, hidden_states, cache=None, attention_mask=None, encoder_hidden_states=None, **kwargs):
        k = self._reads(hidden_states, cache, attention_mask, encoder_hidden_states, kwargs)
        if k is None or not self.fits(self):
            return self.base_layer(hidden_states, cache, attention_mask, encoder_hidden_states, **kwargs)
        attn, length = self.attn, hidden_states.shape[1]
        batch, width = hidden_states.shape[0], attn.embed_dim
        normed = self.ln_1(hidden_states)
        weight, bias = attn.c_attn.weight, attn.c_attn.bias  # Conv1D: x @ weight + bias, weight (width, 3 * width)
        query = torch.addmm(bias[:width], normed[:, -k:].reshape(-1, width), weight[:, :width])
        key_value = torch.addmm(bias[width:], normed.reshape(-1, width), weight[:, width:])
        heads = lambda x, n: x.view(batch, n, -1, attn.head_dim).transpose(1, 2)
        key, value = key_value.split(width, dim=1)
        # query i sits at position length - k + i and sees keys up to there
        visible = torch.ones(k, length, dtype=torch.bool, device=hidden_states.device).tril(length - k)
        out = attention(
            heads(query, k),
            heads(key, length),
            heads(value, length),
            attn_mask=visible,
            dropout_p=attn.attn_dropout.p if self.training else 0.0,
            scale=attn.scaling,
        )
        out = attn.resid_dropout(attn.c_proj(out.transpose(1, 2).reshape(batch, k, width)))
        tail = hidden_states[:, -k:] + out
        tail = tail + self.mlp(self.ln_2(tail))
        return torch.cat([hidden_states[:, :-k], tail.to(hidden_states.dtype)], dim=1)


class BertReadPositionsOnly(ReadPositionsOnly, BertLayer):
    """BertLayer (post-norm encoder block) with queries, attention output and feed-forward for the last
    `read_last` positions. It calls the layers themselves, so PEFT adapters in them keep it."""

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        cache=None,
        **kwargs,
    ):
        k = self._reads(hidden_states, cache, attention_mask, encoder_hidden_states, kwargs)
        if k is None:
            return self.base_layer(
                hidden_states,
                attention_mask,
                encoder_hidden_states,
                encoder_attention_mask=encoder_attention_mask,
                cache=cache,
                **kwargs,
            )
        attn = self.attention.self
        batch = hidden_states.shape[0]
        heads = lambda x: x.view(batch, -1, attn.num_attention_heads, attn.attention_head_size).transpose(1, 2)
        read = hidden_states[:, -k:]
        out = attention(
            heads(attn.query(read)),
            heads(attn.key(hidden_states)),
            heads(attn.value(hidden_states)),
            dropout_p=attn.dropout.p if self.training else 0.0,
            scale=attn.scaling,
        )
        tail = self.base_layer.feed_forward_chunk(
            self.attention.output(out.transpose(1, 2).reshape(batch, k, -1), read)
        )
        return torch.cat([hidden_states[:, :-k], tail.to(hidden_states.dtype)], dim=1)


WRAPPERS: dict[type, type[ReadPositionsOnly]] = {GPT2Block: GPT2ReadPositionsOnly, BertLayer: BertReadPositionsOnly}


def wrap_last_block(backbone: Any) -> bool:
    """Replace `backbone`'s last block by its `ReadPositionsOnly` wrapper, where that is exact; returns
    whether the last block is wrapped. Idempotent."""
    blocks = block_list(backbone)
    block = blocks[-1]
    if isinstance(block, ReadPositionsOnly):
        return True
    wrapper = WRAPPERS.get(type(block))
    config = backbone.config
    if (
        wrapper is None
        or config._attn_implementation not in ("sdpa", ATTENTION)
        or getattr(config, "add_cross_attention", False)
        or getattr(config, "is_decoder", False)
        or not _same_signature(block, wrapper.forward)
        or not wrapper.fits(block)
    ):
        return False
    blocks[-1] = wrapper(block)
    return True


def unwrap_last_block(backbone: Any) -> bool:
    """Put the original last block back; returns whether it was wrapped."""
    blocks = block_list(backbone)
    if not isinstance(blocks[-1], ReadPositionsOnly):
        return False
    blocks[-1] = blocks[-1].unwrap()
    return True


@contextmanager
def reading_last(backbone: Any, k: int | None) -> Iterator[None]:
    """Within: a wrapped last block of `backbone` computes only its last `k` positions (None: all)."""
    block = block_list(backbone)[-1]
    if not isinstance(block, ReadPositionsOnly) or k is None:
        yield
        return
    block.read_last = k
    try:
        yield
    finally:
        block.read_last = None


def _same_signature(block: Any, tail_forward: Callable[..., Any]) -> bool:
    """Whether this transformers version's block takes the arguments the tail copy was written for
    (the forward signatures change between versions); if not, the fast path is off, and said so."""
    theirs = list(inspect.signature(type(block).forward).parameters)[1:]
    ours = [n for n, p in inspect.signature(tail_forward).parameters.items() if p.kind != p.VAR_KEYWORD][1:]
    if theirs[: len(ours)] == ours:  # the same leading arguments; the rest reach the tail as keywords
        return True
    logging.getLogger("fpt").warning(
        "fast path last-block-read-positions-only is off: %s.forward of transformers %s takes %s, not the %s "
        "it was written for",
        type(block).__name__,
        transformers.__version__,
        theirs,
        ours,
    )
    return False

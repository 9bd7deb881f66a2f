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
"""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import Callable
from typing import Any

import torch
import transformers

from fpt.backbones.groups import block_list
from fpt.model.dropout import ATTENTION, attention


def skip_unread_positions(model: Any) -> bool:
    """Make `model`'s forward compute only the read positions in the last block, where exact; returns
    whether it applies. Idempotent."""
    backbone = getattr(model, "backbone", None)
    if backbone is None or getattr(backbone.config, "_attn_implementation", None) not in ("sdpa", ATTENTION):
        return False
    block: Any = block_list(backbone)[-1]  # a transformers block: attributes are set on it below
    tail_forward = TAIL_FORWARDS.get(type(block).__name__)
    if tail_forward is not None and not _same_signature(block, tail_forward):
        return False
    config = backbone.config
    if tail_forward is None or getattr(config, "add_cross_attention", False) or getattr(config, "is_decoder", False):
        return False
    if tail_forward is _gpt2_tail and type(block.attn.c_attn).__name__ != "Conv1D":
        return False  # wrapped by a PEFT adapter: its weight alone is not the layer (BERT's tail calls the modules)
    if not hasattr(block, "read_last"):
        block.read_last = None  # set for the duration of model(inputs) calls without padding
        block.full_forward = block.forward
        block.forward = types.MethodType(tail_forward, block)
        model.register_forward_pre_hook(lambda module, args: _set(block, module, args))
        model.register_forward_hook(lambda module, args, output: setattr(block, "read_last", None))
    return True


def _set(block: Any, model: Any, args: tuple) -> None:
    mask = args[1] if len(args) > 1 else None
    block.read_last = model.head.output_tokens if mask is None else None


def _gpt2_tail(
    block: Any, hidden_states: torch.Tensor, cache=None, attention_mask=None, encoder_hidden_states=None, **kwargs
):
    """GPT2Block.forward with queries, attention output and feed-forward for the last `read_last` positions."""
    k, length = block.read_last, hidden_states.shape[1]
    if (
        k is None
        or cache is not None
        or attention_mask is not None
        or encoder_hidden_states is not None
        or kwargs.get("output_attentions")
        or k >= length
    ):
        return block.full_forward(hidden_states, cache, attention_mask, encoder_hidden_states, **kwargs)
    attn = block.attn
    batch, width = hidden_states.shape[0], attn.embed_dim
    normed = block.ln_1(hidden_states)
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
        dropout_p=attn.attn_dropout.p if block.training else 0.0,
        scale=attn.scaling,
    )
    out = attn.resid_dropout(attn.c_proj(out.transpose(1, 2).reshape(batch, k, width)))
    tail = hidden_states[:, -k:] + out
    tail = tail + block.mlp(block.ln_2(tail))
    return torch.cat([hidden_states[:, :-k], tail.to(hidden_states.dtype)], dim=1)


def _bert_tail(
    block: Any,
    hidden_states: torch.Tensor,
    attention_mask=None,
    encoder_hidden_states=None,
    encoder_attention_mask=None,
    cache=None,
    **kwargs,
):
    """BertLayer.forward (post-norm encoder block) with queries, attention output and feed-forward for
    the last `read_last` positions."""
    k, length = block.read_last, hidden_states.shape[1]
    if (
        k is None
        or cache is not None
        or attention_mask is not None
        or encoder_hidden_states is not None
        or kwargs.get("output_attentions")
        or k >= length
    ):
        return block.full_forward(
            hidden_states,
            attention_mask,
            encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            cache=cache,
            **kwargs,
        )
    attn = block.attention.self
    batch = hidden_states.shape[0]
    heads = lambda x: x.view(batch, -1, attn.num_attention_heads, attn.attention_head_size).transpose(1, 2)
    read = hidden_states[:, -k:]
    out = attention(
        heads(attn.query(read)),
        heads(attn.key(hidden_states)),
        heads(attn.value(hidden_states)),
        dropout_p=attn.dropout.p if block.training else 0.0,
        scale=attn.scaling,
    )
    tail = block.feed_forward_chunk(block.attention.output(out.transpose(1, 2).reshape(batch, k, -1), read))
    return torch.cat([hidden_states[:, :-k], tail.to(hidden_states.dtype)], dim=1)


TAIL_FORWARDS: dict[str, Callable[..., Any]] = {"GPT2Block": _gpt2_tail, "BertLayer": _bert_tail}


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

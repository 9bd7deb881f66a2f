"""Dropout on CPU without PyTorch's slow Bernoulli sampler.

On CPU, `bernoulli_` draws one Mersenne-Twister number per element and runs on one thread: for
GPT-2 base it costs more of a bf16 training step than the attention matrix multiplies
(benchmarks/results/design_figures.md). And the fused attention kernels have no dropout on CPU, so a
training step with attention dropout (GPT-2's and BERT's default 0.1) falls back to PyTorch's
general attention, which adds copies and checks of its own.

Here the keep mask comes from 15-bit uniforms, two per 32-bit draw of the same generator (so
`torch.manual_seed` and saved RNG state still govern it and resume stays exact), read as the draw's
16-bit halves and multiplied in (a NaN is not dropped to zero, as in PyTorch's dropout), and attention
with dropout is computed directly in fp32, as PyTorch's fallback does (in bf16 it cost
Fashion-MNIST accuracy): scores, mask, softmax, dropout, values. The drop probability is
rounded to a multiple of 2^-15 (0.1 becomes 0.100006). GPUs keep PyTorch's own fused kernels. Computed
this way (without the native kernels below), rows shorter than a vector register (the bit tasks' 10
positions) take a softmax of whole-tensor passes, 2-3x faster there than PyTorch's kernel and equal to
rounding (`softmax`).

Where fpt.model.native's kernels are built (a C compiler at hand), fp32 dropout runs as one pass each
way (the same bits), and attention with dropout, for head sizes that are multiples of 16, runs as one
pass each way instead of about twenty operators: the same draws and masks, values and gradients equal
to the formulas here to rounding (tests/test_native.py).

The attention is registered with transformers' `AttentionInterface` as `fpt_sdpa` (its extension
point for attention functions), so a backbone built with `attn_implementation="fpt_sdpa"` uses it;
the dropout modules, which transformers builds as plain `nn.Dropout`, are swapped for `CPUDropout`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

from fpt.model import native

ATTENTION = "fpt_sdpa"  # sdpa, with the attention dropout above on CPU
LEVELS = 1 << 15


def draws(n: int, device: torch.device | str = "cpu", slack: int = 0) -> torch.Tensor:
    """`n` int16 draws of the generator, read as 15-bit uniforms (`& (LEVELS - 1)`), then `slack` more
    values that are not drawn (room for the native kernels' whole-register reads)."""
    words = (n + 1) // 2
    buffer = torch.empty(words + (slack + 1) // 2, dtype=torch.int32, device=device)
    buffer[:words].random_()  # 31 random bits each
    return buffer.view(torch.int16)  # each draw's two 16-bit halves, low one first (little-endian)


def fast_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout of `x` with drop probability `p` (training mode)."""
    if p <= 0.0:
        return x
    if x.dtype == torch.float32 and x.device.type == "cpu" and native.takes(x.numel()):
        return _NativeDropout.apply(x, p)  # the same bits in one pass
    n = x.numel()
    uniform = draws(n, x.device)[:n].view(x.shape) & (LEVELS - 1)
    threshold, scale = keep_rule(p)
    # the mask multiplies in as bytes: PyTorch converts a bool operand element by element, bytes vectorized
    return x * scale * (uniform >= threshold).view(torch.uint8)


class _NativeDropout(torch.autograd.Function):
    """fast_dropout's products in one pass of native.c each way; the draws are kept for the gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float) -> torch.Tensor:
        x = x.contiguous()
        kept = draws(x.numel())
        out = torch.empty_like(x)
        native.kernels().dropout_forward(x.numel(), x.data_ptr(), kept.data_ptr(), *keep_rule(p), out.data_ptr())
        ctx.save_for_backward(kept)
        ctx.p = p
        return out

    @staticmethod
    @once_differentiable  # its kernel has no graph: a second derivative must fail loudly, not come out zero
    def backward(ctx: Any, grad: torch.Tensor):
        (kept,) = ctx.saved_tensors
        grad = grad.contiguous()
        out = torch.empty_like(grad)
        native.kernels().dropout_backward(
            grad.numel(), grad.data_ptr(), kept.data_ptr(), *keep_rule(ctx.p), out.data_ptr()
        )
        return out, None


def keep_rule(p: float) -> tuple[int, float]:
    """The keep rule for drop probability p: a 15-bit uniform is kept from this threshold on, and what is
    kept is multiplied by this scale."""
    return round(p * LEVELS), 1.0 / (1.0 - p)


class CPUDropout(nn.Dropout):
    """`nn.Dropout` that samples its mask as above on CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.device.type != "cpu":
            return super().forward(x)
        return fast_dropout(x, self.p)


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """`F.scaled_dot_product_attention` (same arguments and meaning); with dropout on CPU, computed directly."""
    if dropout_p == 0.0 or query.device.type != "cpu":
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale
        )
    dtype = query.dtype  # like PyTorch's own fallback: scores and softmax in fp32 even under bf16/fp16 autocast
    with torch.autocast("cpu", enabled=False):
        out = _attend(query.float(), key.float(), value.float(), attn_mask, dropout_p, is_causal, scale)
    return out.to(dtype)


def _attend(query, key, value, attn_mask, dropout_p, is_causal, scale) -> torch.Tensor:
    scale = scale if scale is not None else 1 / math.sqrt(query.shape[-1])
    if _native_fits(query, key, value, None if is_causal else attn_mask):
        return _NativeAttention.apply(query, key, value, None if is_causal else attn_mask, dropout_p, scale, is_causal)
    if is_causal:
        attn_mask = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool, device=query.device).tril()
    scores = torch.matmul(query, key.transpose(-2, -1)) * scale
    if attn_mask is not None and attn_mask.dtype == torch.bool:  # in place: `scores` is this function's own
        scores = scores.masked_fill_(~attn_mask, torch.finfo(scores.dtype).min)  # a fully masked row: uniform, not NaN
    elif attn_mask is not None:
        scores = scores + attn_mask
    return torch.matmul(fast_dropout(softmax(scores), dropout_p), value)


def _native_fits(query, key, value, attn_mask) -> bool:
    """Whether native.c's attention takes these: (B, H, L, D) tensors with a head size that is a multiple of
    16, and a boolean or fp32 mask that needs no gradient."""
    if query.dim() != 4 or key.dim() != 4 or key.shape != value.shape or query.shape[-1] != key.shape[-1]:
        return False
    if query.shape[-1] % native.LANES or query.shape[-1] == 0 or query.shape[:2] != key.shape[:2]:
        return False
    if attn_mask is not None and (attn_mask.requires_grad or attn_mask.dtype not in (torch.bool, torch.float32)):
        return False  # a learned mask needs its gradient; another dtype would promote the scores
    return native.takes(query.shape[0] * query.shape[1] * query.shape[2] * key.shape[2])


class _NativeAttention(torch.autograd.Function):
    """`_attend` in one pass of native.c each way: the same draws and keep rule, products and softmax equal
    to rounding. Outputs and gradients are laid out (B, L, H, D), transposed: the layout the attention
    interface returns, and the one the key/query/value products made."""

    @staticmethod
    def forward(ctx: Any, query, key, value, attn_mask, p: float, scale: float, causal: bool) -> torch.Tensor:
        query, key, value = (t if t.stride(-1) == 1 else t.contiguous() for t in (query, key, value))
        (b, h, lq, d), lk = query.shape, key.shape[2]
        kept = draws(b * h * lq * lk, slack=native.LANES)
        probs = query.new_empty(b * h * lq * lk + native.LANES)  # the softmax before dropout, for the gradient
        out = query.new_empty(b, lq, h, d).transpose(1, 2)
        tensors = map(native.Strided.of, (query, key, value))
        mask = native.Mask.of(attn_mask, (b, h, lq, lk), causal)
        keep = (kept.data_ptr(), *keep_rule(p))
        _check(
            native.kernels().attention_forward(
                b, h, lq, lk, d, *tensors, mask, scale, *keep, native.Strided.of(out), probs.data_ptr()
            )
        )
        ctx.save_for_backward(query, key, value, attn_mask, kept, probs)
        ctx.p, ctx.scale, ctx.causal = p, scale, causal
        return out

    @staticmethod
    @once_differentiable  # its kernel has no graph: a second derivative must fail loudly, not come out zero
    def backward(ctx: Any, grad: torch.Tensor):
        query, key, value, attn_mask, kept, probs = ctx.saved_tensors
        grad = grad if grad.stride(-1) == 1 else grad.contiguous()
        (b, h, lq, d), lk = query.shape, key.shape[2]
        grads = [query.new_empty(b, n, h, d).transpose(1, 2) for n in (lq, lk, lk)]
        tensors = map(native.Strided.of, (query, key, value, grad))
        mask = native.Mask.of(attn_mask, (b, h, lq, lk), ctx.causal)
        keep = (kept.data_ptr(), *keep_rule(ctx.p))
        _check(
            native.kernels().attention_backward(
                b, h, lq, lk, d, *tensors, mask, ctx.scale, *keep, probs.data_ptr(), *map(native.Strided.of, grads)
            )
        )
        return *grads, None, None, None, None


def _check(status: int) -> None:
    if status:
        raise MemoryError("fpt's native attention could not allocate its scratch rows (out of memory)")


def softmax(scores: torch.Tensor) -> torch.Tensor:
    """`scores.softmax(-1)`. PyTorch's CPU kernel is 2-3x slower on rows shorter than one vector register
    (16 fp32 lanes with AVX-512, 8 with AVX2), such as the bit tasks' 10 positions; those rows are
    computed in whole-tensor passes instead, equal up to float rounding."""
    if 0 < scores.shape[-1] < VECTOR_LANES:
        return _ShortRowSoftmax.apply(scores)
    return torch.softmax(scores, dim=-1)


# fp32 lanes of the vector registers PyTorch's CPU kernels use here
VECTOR_LANES = {"AVX512": 16, "AVX2": 8}.get(torch.backends.cpu.get_cpu_capability(), 0)


class _ShortRowSoftmax(torch.autograd.Function):
    """Softmax over the last dimension from max, exp and sum passes; gradient y * (g - sum(g * y))."""

    @staticmethod
    def forward(ctx: Any, scores: torch.Tensor) -> torch.Tensor:
        exp = (scores - scores.amax(-1, keepdim=True)).exp_()
        probabilities = exp.div_(exp.sum(-1, keepdim=True))
        ctx.save_for_backward(probabilities)
        return probabilities

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (probabilities,) = ctx.saved_tensors
        return probabilities * (grad - (grad * probabilities).sum(-1, keepdim=True))


def _fpt_sdpa(
    module: nn.Module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, is_causal=None, **kwargs
):
    """Hugging Face attention interface: `sdpa`, except the CPU dropout case in its plain form."""
    if (
        dropout == 0.0
        or query.device.type != "cpu"
        or kwargs.get("position_bias") is not None
        or kwargs.get("softcap") is not None
    ):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = bool(causal and query.shape[2] > 1 and attention_mask is None)
    if causal and key.shape[2] > query.shape[2]:
        key, value = key[:, :, : query.shape[2]], value[:, :, : query.shape[2]]
    out = attention(query, key, value, attention_mask, dropout, causal, scaling)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION, _fpt_sdpa)  # transformers' extension point: `attn_implementation="fpt_sdpa"`
AttentionMaskInterface.register(ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])  # the masks sdpa takes


def use_cpu_dropout(model: nn.Module) -> int:
    """Swap `model`'s dropout modules for `CPUDropout`; returns how many changed. They behave exactly as
    before off the CPU and in eval mode. Idempotent. (Attention dropout is the attention implementation's:
    `fpt_sdpa`, chosen when the backbone is built.)"""
    return _swap(model, nn.Dropout, CPUDropout)


def use_plain_dropout(model: nn.Module) -> None:
    """Undo the CPU dropout: PyTorch's `nn.Dropout` modules and sdpa attention again."""
    _swap(model, CPUDropout, nn.Dropout)
    for module in model.modules():
        if isinstance(module, PreTrainedModel) and module.config._attn_implementation == ATTENTION:
            module.set_attn_implementation("sdpa")


def _swap(model: nn.Module, old: type[nn.Dropout], new: type[nn.Dropout]) -> int:
    changed = 0
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is old:
                replacement = new(child.p, child.inplace)
                replacement.train(child.training)
                setattr(parent, name, replacement)
                changed += 1
    return changed

"""BERT's post-norm residual, `LayerNorm(dropout(dense(h)) + input)`, in one native pass each way.

Eager, the end of each BERT sublayer is four operators forward (dropout's draws and products, the add,
the norm) and as many backward, each allocating a (batch, length, width) tensor that the next frees.
With fpt.model.native's kernels a training step on CPU in fp32 runs dropout, add and norm as one pass
and their gradients (input, residual, the norm's weight and bias) as another, from the same draws as
CPUDropout (so the same masks and random stream) and equal to the eager formulas to rounding.

Applied by swapping the class of transformers' `BertSelfOutput` and `BertOutput` modules (their
forward is these three lines in every transformers 5 release; `use_plain_residual_norm` restores
them). Anywhere the kernel does not fit (evaluation, bf16 or GPU tensors, a norm PEFT has wrapped, a
width that is not a multiple of 16) the module computes the eager way.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from transformers.models.bert.modeling_bert import BertOutput, BertSelfOutput

from fpt.model import native
from fpt.model.dropout import CPUDropout, draws, keep_rule


def residual_norm(x: torch.Tensor, residual: torch.Tensor, dropout: nn.Module, norm: nn.Module) -> torch.Tensor:
    """`norm(dropout(x) + residual)`."""
    if _fits(x, residual, dropout, norm):
        return _ResidualNorm.apply(x, residual, norm.weight, norm.bias, norm.eps, dropout.p)
    return norm(dropout(x) + residual)


def _fits(x: torch.Tensor, residual: torch.Tensor, dropout: nn.Module, norm: nn.Module) -> bool:
    if not (isinstance(dropout, CPUDropout) and dropout.training and type(norm) is nn.LayerNorm):
        return False
    if norm.weight is None or norm.bias is None or norm.normalized_shape != (x.shape[-1],):
        return False
    tensors = (x, residual, norm.weight, norm.bias)
    if any(t.dtype != torch.float32 or t.device.type != "cpu" for t in tensors) or x.shape != residual.shape:
        return False
    return x.shape[-1] > 0 and x.shape[-1] % native.LANES == 0 and native.takes(x.numel())


class _ResidualNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x, residual, weight, bias, eps: float, p: float) -> torch.Tensor:
        x, residual = x.contiguous(), residual.contiguous()
        width = x.shape[-1]
        rows = x.numel() // width
        kept = draws(x.numel()) if p > 0.0 else None  # fast_dropout draws nothing for p = 0
        summed, out = torch.empty_like(x), torch.empty_like(x)
        mean, rstd = x.new_empty(rows), x.new_empty(rows)
        keep = (kept.data_ptr() if kept is not None else None, *keep_rule(p))
        native.kernels().residual_norm_forward(
            rows, width, x.data_ptr(), residual.data_ptr(), *keep, weight.data_ptr(), bias.data_ptr(), eps,
            summed.data_ptr(), mean.data_ptr(), rstd.data_ptr(), out.data_ptr(),
        )  # fmt: skip
        ctx.save_for_backward(summed, mean, rstd, weight, kept)
        ctx.p = p
        return out

    @staticmethod
    @once_differentiable  # its kernel has no graph: a second derivative must fail loudly, not come out zero
    def backward(ctx: Any, grad: torch.Tensor):
        summed, mean, rstd, weight, kept = ctx.saved_tensors
        grad = grad.contiguous()
        width = grad.shape[-1]
        grad_x, grad_residual = torch.empty_like(grad), torch.empty_like(grad)
        grad_weight, grad_bias = torch.zeros_like(weight), torch.zeros_like(weight)
        keep = (kept.data_ptr() if kept is not None else None, *keep_rule(ctx.p))
        native.kernels().residual_norm_backward(
            grad.numel() // width, width, grad.data_ptr(), summed.data_ptr(), mean.data_ptr(), rstd.data_ptr(),
            weight.data_ptr(), *keep, grad_x.data_ptr(), grad_residual.data_ptr(), grad_weight.data_ptr(),
            grad_bias.data_ptr(),
        )  # fmt: skip
        return grad_x, grad_residual, grad_weight, grad_bias, None, None


class _NativeResidual:
    """Mixin: BERT's sublayer output (dense, dropout, LayerNorm of the sum) through `residual_norm`."""

    dense: nn.Module
    dropout: nn.Module
    LayerNorm: nn.Module

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return residual_norm(self.dense(hidden_states), input_tensor, self.dropout, self.LayerNorm)


class NativeBertSelfOutput(_NativeResidual, BertSelfOutput):
    pass


class NativeBertOutput(_NativeResidual, BertOutput):
    pass


NATIVE: dict[type[nn.Module], type[nn.Module]] = {BertSelfOutput: NativeBertSelfOutput, BertOutput: NativeBertOutput}


def use_native_residual_norm(model: nn.Module) -> int:
    """Swap the class of `model`'s BERT sublayer outputs for the native ones; returns how many changed."""
    changed = [m for m in model.modules() if type(m) in NATIVE]
    for module in changed:
        module.__class__ = NATIVE[type(module)]
    return len(changed)


def use_plain_residual_norm(model: nn.Module) -> None:
    """Undo `use_native_residual_norm`."""
    plain = {native_class: original for original, native_class in NATIVE.items()}
    for module in model.modules():
        if type(module) in plain:
            module.__class__ = plain[type(module)]

"""Frozen weight matrices packed once for oneDNN on the CPU, instead of at every product.

A CPU matrix multiply first copies its weight into the blocked layout its kernel reads. For a frozen
weight that copy is the same at every step, in the forward product and in the backward one (the
input gradient, through the transposed matrix). Here each frozen linear layer of the backbone
(`nn.Linear`, GPT-2's `Conv1D`) keeps both copies, each made on first use, and multiplies with
oneDNN's linear kernel on them (`torch.ops.mkldnn._linear_pointwise`): measured per bench case in
benchmarks/results/speed/README.md.

Exactness: under bf16 autocast PyTorch itself multiplies with oneDNN, on the unpacked weight, and
the products are the same bits. In fp32 PyTorch multiplies with MKL, which sums in another order:
the products agree to float rounding (relative 1e-6), as the fused GELU does (tests/test_packed.py).

The layers' class is swapped when the model is built (`pack_frozen_matrices`, a fast path of
fpt.model.fast_paths; `unpack_frozen_matrices` restores it); parameters, names and state dict stay
the layer's own. Packs sit beside the module (never in its state dict, copies or pickles), keyed by
the weight's storage, version and dtype: loading, casting or moving a weight makes new ones. An
in-place change through `weight.data` bumps no version: unpack before such surgery (a PEFT merge,
say). A layer whose weight or bias trains, a GPU, a graph being compiled, fp16, or oneDNN switched
off: the layer's own forward. Memory: each pack is another copy of its matrix, two while training
through it; layers are packed only when twice their fp32 matrices fit in a quarter of the memory
available.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from transformers.pytorch_utils import Conv1D

from fpt.memory import available_bytes

PACKED_MATRICES = "packed-frozen-matrices"


class _Packs:
    """A layer's packed matrices by key; never copied or pickled with the module (oneDNN's blocked
    tensors have no storage to copy): a copy packs again on first use."""

    def __init__(self) -> None:
        self.made: dict[tuple, torch.Tensor] = {}

    def __deepcopy__(self, memo) -> _Packs:
        return _Packs()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.made = {}


class PackedProduct:
    """Mixin for a linear layer class: its forward through packed matrices where that is exact."""

    weight: torch.Tensor
    bias: Any  # a Parameter or None

    def matrix(self) -> torch.Tensor:
        """The (out, in) matrix the layer multiplies its input by (transposed)."""
        return self.weight

    def pack(self, dtype: torch.dtype, transposed: bool) -> torch.Tensor:
        """The matrix (or its transpose, for input gradients) in `dtype`, packed for oneDNN."""
        weight = self.weight
        key = (transposed, dtype, weight.data_ptr(), weight._version)
        packs = self.__dict__.setdefault("_fpt_packs", _Packs())
        if key not in packs.made:
            packs.made = {k: v for k, v in packs.made.items() if k[0] != transposed}  # stale ones go
            matrix = self.matrix().detach().to(dtype)
            matrix = matrix.t() if transposed else matrix
            packs.made[key] = torch.ops.mkldnn._reorder_linear_weight(matrix.contiguous(), None)
        return packs.made[key]

    def _apply(self, fn, recurse=True):  # .to(), .cuda(), .half(): the packs are of the old weight
        self.__dict__.pop("_fpt_packs", None)
        return super()._apply(fn, recurse)  # type: ignore[misc]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.packed_dtype(x)
        if dtype is None:
            return super().forward(x)  # type: ignore[misc]
        bias = self.bias.to(dtype) if self.bias is not None else None
        return _Product.apply(x.to(dtype), self, bias)

    def packed_dtype(self, x: torch.Tensor) -> torch.dtype | None:
        """The dtype the product computes in when it may run on packed matrices, else None."""
        if torch.compiler.is_compiling() or not torch._C._get_mkldnn_enabled():
            return None
        weight, bias = self.weight, self.bias
        if weight.requires_grad or (bias is not None and bias.requires_grad) or x.dim() < 2 or x.numel() == 0:
            return None
        if x.device.type != "cpu" or weight.device.type != "cpu" or x.dtype not in _COMPUTED:
            return None
        if torch.is_autocast_enabled("cpu"):  # autocast casts input, weight and bias to its dtype
            dtype = torch.get_autocast_dtype("cpu")
        elif weight.dtype == x.dtype:
            dtype = x.dtype
        else:  # the plain forward's dtype error
            return None
        if dtype == torch.bfloat16 and not _native_bf16():
            return None  # emulated bf16: PyTorch's own path
        return dtype if dtype in _COMPUTED else None


_COMPUTED = (torch.float32, torch.bfloat16)  # fp16 (and fp64, which autocast leaves alone): the plain forward


@functools.cache
def _native_bf16() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _product(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), packed, bias, "none", [], "")


class _Product(torch.autograd.Function):
    """x @ W^T + b with the packed W; its input gradient with the packed W^T (W and b are frozen)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layer: PackedProduct, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.layer, ctx.dtype = layer, x.dtype
        return _product(x, layer.pack(x.dtype, transposed=False), bias)

    @staticmethod
    @once_differentiable  # oneDNN's product has no graph: a second derivative must fail loudly, not come out zero
    def backward(ctx: Any, grad: torch.Tensor):
        return _product(grad, ctx.layer.pack(ctx.dtype, transposed=True), None), None, None


class PackedLinear(PackedProduct, nn.Linear):
    """`nn.Linear` (weight (out, in)) on packed matrices."""


class PackedConv1D(PackedProduct, Conv1D):
    """GPT-2's `Conv1D` (weight (in, out), x @ W + b) on packed matrices."""

    def matrix(self) -> torch.Tensor:
        return self.weight.t()


PACKED = {nn.Linear: PackedLinear, Conv1D: PackedConv1D}


def _frozen_layers(model: nn.Module) -> list[Any]:
    return [
        m
        for m in model.modules()
        if type(m) in PACKED and not m.weight.requires_grad and (m.bias is None or not m.bias.requires_grad)
    ]


def pack_frozen_matrices(model: nn.Module) -> bool:
    """Make `model`'s frozen linear layers multiply through packed matrices (made on first use), where
    oneDNN is available and the copies fit; returns whether any layer does."""
    layers = _frozen_layers(model)
    if not layers or not torch.backends.mkldnn.is_available():
        return False
    if any(m.weight.device.type != "cpu" for m in layers):
        return False
    copies = 2 * sum(m.weight.numel() * m.weight.element_size() for m in layers)
    if copies > available_bytes() / 4:
        return False
    for module in layers:
        module.__class__ = PACKED[type(module)]
    return True


def unpack_frozen_matrices(model: nn.Module) -> bool:
    """Back to the plain layers, their packs freed; returns whether any layer was packed."""
    plain = {packed: original for original, packed in PACKED.items()}
    changed = False
    for module in model.modules():
        if type(module) in plain:
            module.__class__ = plain[type(module)]
            module.__dict__.pop("_fpt_packs", None)
            changed = True
    return changed

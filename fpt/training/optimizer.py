"""Adam and gradient clipping over the few trained tensors, in a handful of kernels.

FPT trains a few dozen small tensors (layer norms, positions, input and output layers). PyTorch's
defaults on CPU run Adam one tensor at a time (about a dozen operations each) and clip gradients
one norm and one multiply per tensor: for MiniLM on Bit XOR, 31 tensors, ~1,000 tiny operations
per step. The fused Adam kernel and the multi-tensor (foreach) norm and scale do the same
arithmetic in a few calls, several times faster (benchmarks/results/design_figures.md). Clipping
gives identical gradients; fused Adam agrees with the per-tensor loop to float rounding (1 ulp).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

FUSED_ADAM_DEVICES = ("cpu", "cuda")


def make_optimizer(params: Sequence[torch.nn.Parameter], lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam, fused where PyTorch has the kernel for `device` and every tensor is floating point."""
    fused = device.type in FUSED_ADAM_DEVICES and all(p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


def clip_gradients(params: Sequence[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_` (2-norm over all gradients, the same scale factor), with the
    multi-tensor kernels on every device; PyTorch's own uses them only on GPUs. Returns the total norm."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if len({(g.device, g.dtype) for g in grads}) > 1:  # the multi-tensor kernels take one device and dtype
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
    return total

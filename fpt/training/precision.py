"""Mixed precision: autocast for the forward pass, loss scaling for fp16.

Trained parameters and the optimizer state stay fp32. The frozen matrices may be stored in the low
precision: autocast would cast them to it at every forward pass anyway (its weight cache only
covers parameters that require grad), so storing them cast halves their memory and saves the casts.
"""

from __future__ import annotations

import functools
import logging
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from fpt.errors import FPTError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CHOICES = (*DTYPES, "auto")


def resolve_precision(name: str, device: torch.device) -> str:
    """`auto`: bf16 where the hardware computes it natively (a GPU that has it, or a CPU with AVX-512
    bf16 or AMX that PyTorch may use), else fp16 on a GPU and fp32 on CPU."""
    return explain_precision(name, device)[0]


def explain_precision(name: str, device: torch.device) -> tuple[str, str]:
    """The precision `name` resolves to on `device`, and why (one phrase, for reports)."""
    if name not in CHOICES:
        raise FPTError(f"Unknown precision {name!r}; choose one of {', '.join(CHOICES)}.")
    if name == "bf16" and not native_bf16(device):
        _warn_emulated_bf16(device.type)
    if name != "auto":
        return name, "asked for"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "auto: the GPU computes bf16 natively"
        return "fp16", "auto: the GPU has no bf16"
    if cpu_has_native_bf16():
        return "bf16", "auto: the CPU has native bf16 (AVX-512 bf16 or AMX)"
    return "fp32", f"auto: {cpu_bf16_support()[1]}"


def native_bf16(device: torch.device) -> bool:
    return torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()


@functools.cache
def _warn_emulated_bf16(device_type: str) -> None:
    """Once per process: bf16 asked for on hardware that emulates it."""
    hardware = "GPU" if device_type == "cuda" else "CPU (no AVX-512 bf16 or AMX)"
    logging.getLogger(__name__).warning(
        f"--precision bf16 on this {hardware}: bf16 is emulated here and training will be slower than in fp32, "
        "not faster. Use --precision auto (picks the fastest this hardware computes natively) or fp32."
    )


def cpu_has_native_bf16() -> bool:
    """AVX-512 bf16 or AMX: bf16 matrix multiplies at about twice the fp32 rate; elsewhere emulated, slower."""
    return cpu_bf16_support()[0]


# oneDNN instruction-set caps below AVX-512 bf16 (ONEDNN_MAX_CPU_ISA): bf16 matmuls are then emulated
ONEDNN_BELOW_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


def cpu_bf16_support() -> tuple[bool, str]:
    """Whether this CPU computes bf16 natively for PyTorch, and why. The hardware needs AVX-512 bf16
    or AMX, and PyTorch must not be capped below them (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA)."""
    if not (_cpu_supports("avx512_bf16") or _cpu_supports("amx_tile")):
        return False, "this CPU has no native bf16 (AVX-512 bf16 or AMX), so fp32"
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "AVX512":
        return False, f"the CPU has AVX-512 bf16 but PyTorch runs capped at {capability} (ATEN_CPU_CAPABILITY), so fp32"
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if isa in ONEDNN_BELOW_BF16:
        return False, f"the CPU has AVX-512 bf16 but oneDNN is capped at {isa} (ONEDNN_MAX_CPU_ISA), so fp32"
    return True, "the CPU has native bf16 (AVX-512 bf16 or AMX)"


def _cpu_supports(feature: str) -> bool:
    check = getattr(torch.cpu, f"_is_{feature}_supported", None)
    return bool(check and check())


@dataclass
class Precision:
    name: str  # fp32 | bf16 | fp16 (resolved)
    device_type: str
    scaler: torch.amp.GradScaler | None = None  # fp16 only

    @classmethod
    def create(cls, name: str, device: torch.device) -> Precision:
        name = resolve_precision(name, device)
        scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None
        return cls(name, device.type, scaler)

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.name != "fp32")

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring gradients back to their true scale before clipping."""
        if self.scaler:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Optimizer step; with fp16, skipped when a gradient overflowed, and the scale adapted."""
        if self.scaler:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    def store_frozen_matrices(self, model: nn.Module) -> int:
        """Cast frozen weight matrices of linear layers to the low precision; returns how many."""
        if self.name == "fp32":
            return 0
        cast = 0
        for module in model.modules():
            if isinstance(module, (nn.Linear, Conv1D)):
                for param in module.parameters(recurse=False):
                    if not param.requires_grad:
                        param.data = param.data.to(self.dtype)
                        cast += 1
        return cast

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler and state:
            self.scaler.load_state_dict(state)

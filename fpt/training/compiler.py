"""`--compile` only where a compiler exists; otherwise eager, with a warning that says so.

torch.compile's inductor generates C++ for the CPU (it needs a C++ compiler: $CXX, g++, clang++ or
c++) and Triton kernels for GPUs (it needs the triton package). Without them the first step fails
deep inside the compiler; here the run trains eager instead and says why. Compiling is not the
default: on the 2-core AVX-512 CPU it measured no gain for MiniLM or GPT-2 (benchmarks/results/speed).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from typing import cast

import torch


def compiler_missing(device: torch.device) -> str | None:
    """Why torch.compile cannot generate code for `device` here, or None when it can."""
    if device.type == "cuda":
        return None if importlib.util.find_spec("triton") else "the triton package is not installed"
    if device.type == "cpu":
        candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "clang++", "c++"]
        return None if any(shutil.which(c) for c in candidates) else "no C++ compiler (g++, clang++ or $CXX) was found"
    return None


def maybe_compile(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`torch.compile(model)`, or `model` itself (eager) with a warning when no compiler exists."""
    missing = compiler_missing(device)
    if missing:
        logging.getLogger("fpt").warning(f"--compile: {missing}, so this run trains eager (uncompiled).")
        return model
    return cast(torch.nn.Module, torch.compile(model))  # an OptimizedModule for a module

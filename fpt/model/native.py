"""Compiled CPU kernels (native.c) for what PyTorch eager runs as many small operators, in fp32: attention
with dropout (head sizes that are multiples of 16), dropout itself, and BERT's dropout-add-LayerNorm.
fpt.model.dropout and fpt.model.residual_norm call them, where `takes` says so.

They are built at first use with the system's C compiler ($CC, else `cc`) into the cache
($FPT_CACHE, else $XDG_CACHE_HOME/fpt, else ~/.cache/fpt; under `kernels/`, one file per source,
compiler and instruction set) and loaded with ctypes: nothing to install, no build step. Without a
compiler, where the build fails, or with FPT_NATIVE_KERNELS=0, `library()` is None and the callers keep
their eager formulas; `status()` says which. The instruction set follows PyTorch's CPU capability
(AVX-512, AVX2), never the build machine's: a cache shared by a cluster's nodes stays valid on each.
The kernels run on one thread: with several torch threads, calls larger than PyTorch's grain (which it
would spread over threads) keep the eager formulas.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

import torch

from fpt.files import cache_root

SOURCE = Path(__file__).with_name("native.c")
LANES = 16  # native.c's W: head sizes are multiples of it, and it is the slack its buffers need
DISABLE = "FPT_NATIVE_KERNELS"  # =0: the eager formulas
SERIAL_ELEMENTS = 32768  # PyTorch's grain (at::internal::GRAIN_SIZE): smaller elementwise work runs on one thread
ARCH_FLAGS = {  # the vector instructions each PyTorch CPU capability allows (x86-64)
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-mavx2"],
    "AVX2": ["-mavx2", "-mfma"],
}


class Strided(ctypes.Structure):
    """native.c's In/Out: a (B, H, L, D) tensor whose last dimension is contiguous."""

    _fields_ = [("p", ctypes.c_void_p), ("sb", ctypes.c_int64), ("sh", ctypes.c_int64), ("sl", ctypes.c_int64)]

    @classmethod
    def of(cls, t: torch.Tensor) -> Strided:
        sb, sh, sl, _ = t.stride()
        return cls(t.data_ptr(), sb, sh, sl)


class Mask(ctypes.Structure):
    """native.c's Mask: boolean (keep where true), additive or causal (key j <= query i), broadcast to
    (B, H, Lq, Lk); or none."""

    _fields_ = (
        [("keep", ctypes.c_void_p), ("add", ctypes.c_void_p)]
        + [(name, ctypes.c_int64) for name in ("sb", "sh", "si", "sj")]
        + [("causal", ctypes.c_int)]
    )

    @classmethod
    def of(cls, mask: torch.Tensor | None, shape: tuple[int, ...], causal: bool = False) -> Mask:
        if mask is None:
            return cls(None, None, 0, 0, 0, 0, int(causal))
        mask = mask.expand(shape)
        pointers = (mask.data_ptr(), None) if mask.dtype == torch.bool else (None, mask.data_ptr())
        return cls(*pointers, *mask.stride(), 0)


def status() -> str:
    """'built' when the kernels are loaded, else why not (one line)."""
    return _load()[1]


def library() -> ctypes.CDLL | None:
    """The loaded kernels, or None (see `status()`)."""
    return _load()[0]


def kernels() -> ctypes.CDLL:
    """The loaded kernels, for the calls `takes` let through."""
    lib, why = _load()
    if lib is None:
        raise RuntimeError(f"fpt's native kernels are not built: {why}")
    return lib


def takes(elements: int) -> bool:
    """Whether a call over `elements` values takes the native kernels: they are built, and running on one
    thread costs nothing PyTorch would have parallelized (one intra-op thread, or at most SERIAL_ELEMENTS)."""
    return library() is not None and (elements <= SERIAL_ELEMENTS or torch.get_num_threads() == 1)


@functools.cache
def _load() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get(DISABLE, "1") == "0":
        return None, f"off ({DISABLE}=0)"
    return load_for(cpu_capability())


def load_for(capability: str) -> tuple[ctypes.CDLL | None, str]:
    """The kernels built for `capability` (a PyTorch CPU capability: AVX512, AVX2, DEFAULT), or None and why."""
    compiler = shutil.which(os.environ.get("CC") or "cc")
    if compiler is None:
        return None, "no C compiler (`cc`, or $CC) on PATH: the eager formulas"
    flags = ["-O3", "-shared", "-fPIC", "-Wno-psabi", *ARCH_FLAGS.get(capability, [])]
    try:
        lib = ctypes.CDLL(str(_build(compiler, flags)))
    except (OSError, subprocess.SubprocessError) as err:
        return None, f"not built ({' '.join(str(err).split())[:300]}): the eager formulas"
    for name, arguments in SIGNATURES.items():
        function = getattr(lib, name)
        function.argtypes = arguments
        function.restype = ctypes.c_int if name.startswith("attention") else None  # 1: out of memory
    return lib, "built"


def cpu_capability() -> str:
    """PyTorch's CPU capability where the instruction-set flags apply (x86-64), else DEFAULT."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return "DEFAULT"
    return torch.backends.cpu.get_cpu_capability()


def _build(compiler: str, flags: list[str]) -> Path:
    """The shared library for this source, compiler and flags: from the cache, else compiled into it (to a
    private name first, then renamed, so concurrent processes never load a half-written file)."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    key = hashlib.sha256("\0".join([SOURCE.read_text(), compiler, version, *flags]).encode()).hexdigest()[:16]
    target = cache_root() / "kernels" / f"native-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    private = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    done = subprocess.run(
        [compiler, *flags, str(SOURCE), "-o", str(private)], capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        private.unlink(missing_ok=True)
        raise OSError(f"{compiler} exited with {done.returncode}: {done.stderr.strip()[-300:]}")
    os.replace(private, target)
    return target


_I, _F, _P, _N = ctypes.c_int, ctypes.c_float, ctypes.c_void_p, ctypes.c_int64
_SHAPE = [_I] * 5  # B, H, Lq, Lk, D
_KEEP = [_P, _I, _F]  # draws, threshold, scale of what is kept
SIGNATURES = {  # native.c's functions and their arguments
    "attention_forward": [*_SHAPE, Strided, Strided, Strided, Mask, _F, *_KEEP, Strided, _P],
    "attention_backward": [
        *_SHAPE,
        Strided,
        Strided,
        Strided,
        Strided,
        Mask,
        _F,
        *_KEEP,
        _P,
        Strided,
        Strided,
        Strided,
    ],
    "dropout_forward": [_N, _P, *_KEEP, _P],
    "dropout_backward": [_N, _P, *_KEEP, _P],
    "residual_norm_forward": [_N, _I, _P, _P, *_KEEP, _P, _P, _F, _P, _P, _P, _P],
    "residual_norm_backward": [_N, _I, _P, _P, _P, _P, _P, *_KEEP, _P, _P, _P, _P],
}

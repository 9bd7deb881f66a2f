"""The fast paths a GPT-2 on CPU is built with here, in the order fpt.model.fast_paths applies them: those the
installed (or a test's pretended) transformers is tested with, and the native kernels only where a C compiler
built them (tests/test_native.py)."""

from __future__ import annotations

from fpt.model import native
from fpt.model.compat import fast_path_off

GPT2_CPU = ["fused-gelu", "cpu-dropout", "native-kernels", "last-block-read-positions-only", "packed-frozen-matrices"]


def gpt2_cpu_fast_paths() -> list[str]:
    built = native.library() is not None
    return [n for n in GPT2_CPU if fast_path_off(n) is None and (built or n != "native-kernels")]

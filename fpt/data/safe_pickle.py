"""Unpickling limited to plain data and numpy arrays: dataset files are data, never code.

CIFAR batches and TAPE LMDB records are pickles; a plain `pickle.load` would run whatever a
tampered file asks for, so only the handful of numpy constructors that arrays need are allowed.
"""

from __future__ import annotations

import io
import pickle

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only data and numpy arrays are allowed)")
        return super().find_class(module, name)


def loads(data: bytes, encoding: str = "ASCII"):
    """Like `pickle.loads`, for data only; raises `pickle.UnpicklingError` on anything else."""
    return _DataUnpickler(io.BytesIO(data), encoding=encoding).load()

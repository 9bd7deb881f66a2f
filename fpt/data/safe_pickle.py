"""Unpickling limited to plain data and numpy arrays: dataset files are data, never code.

CIFAR batches and TAPE LMDB records are pickles; a plain `pickle.load` would run whatever a
tampered file asks for, so only the handful of numpy constructors that arrays need are allowed.
"""

from __future__ import annotations

import io
import math
import pickle

import numpy as np

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


def _check_size(shape, dtype, limit: int) -> bool:
    """Refuse an array larger than the pickle itself: its values must all be in the file, so a bigger
    one (a tampered header asking for terabytes) is refused before it is allocated."""
    try:
        dims = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
        nbytes = math.prod(int(d) for d in dims) * np.dtype(dtype).itemsize
    except (TypeError, ValueError, OverflowError) as err:
        raise pickle.UnpicklingError(
            f"an array of shape {str(shape)[:60]} and dtype {str(dtype)[:40]} ({err})"
        ) from err
    if nbytes > limit or min(dims, default=0) < 0:
        raise pickle.UnpicklingError(f"an array of {nbytes:,} bytes announced in a {limit:,}-byte pickle")
    return True


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, file, size: int, **kwargs):
        super().__init__(file, **kwargs)
        self.limit = size + 4096

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only data and numpy arrays are allowed)")
        found = super().find_class(module, name)
        if name == "_reconstruct":  # how numpy pickles arrays: an empty array, then its values
            return lambda cls, shape, dtype: (_check_size(shape, dtype, self.limit), found(cls, shape, dtype))[1]
        if name == "ndarray":
            limit = self.limit

            class BoundedArray(np.ndarray):  # np.ndarray(shape) itself would allocate the whole shape
                def __new__(cls, shape, dtype=float, *args, **kwargs):
                    _check_size(shape, dtype, limit)
                    return np.ndarray.__new__(cls, shape, dtype, *args, **kwargs)

            return BoundedArray
        if name == "scalar":
            return lambda dtype, *args: (_check_size((1,), dtype, self.limit), found(dtype, *args))[1]
        return found


def loads(data: bytes, encoding: str = "ASCII"):
    """Like `pickle.loads`, for data only; raises `pickle.UnpicklingError` on anything else (and on
    arrays larger than the pickle, before allocating them)."""
    try:
        return _DataUnpickler(io.BytesIO(data), len(data), encoding=encoding).load()
    except (MemoryError, OverflowError, RecursionError) as err:
        raise pickle.UnpicklingError(f"{type(err).__name__} while unpickling") from err

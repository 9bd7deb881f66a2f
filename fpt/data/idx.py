"""Reader for the IDX format of MNIST and Fashion-MNIST, gzipped or not.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values in C order.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from fpt.errors import FPTError

_TYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it is gzipped (judged by its first bytes, not its name)."""
    raw = Path(path).read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise FPTError(
            f"{path} is a damaged gzip file ({err}); it was probably cut short while downloading. "
            "Delete it and run `fpt data download` again, or copy an intact file in its place."
        ) from err


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (e.g. (60000, 28, 28) uint8 images or (60000,) labels)."""
    path = Path(path)
    data = read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise FPTError(
            f"{path} is not an IDX file: its magic number is {data[:4].hex() or 'missing'}, expected "
            "00 00 <type> <dims> (e.g. 00000803 for images, 00000801 for labels). Check that it is an "
            "MNIST-style *-ubyte or *-ubyte.gz file."
        )
    dims = data[3]
    header = 4 + 4 * dims
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">u4")) if len(data) >= header else None
    dtype = np.dtype(_TYPES[data[2]])
    expected = header + (int(np.prod(shape)) * dtype.itemsize if shape is not None else 0)
    if shape is None or len(data) != expected:
        raise FPTError(
            f"{path} is truncated or padded: its header announces shape {shape} ({expected} bytes) but "
            f"the file holds {len(data)} bytes. Replace it with an intact copy."
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))

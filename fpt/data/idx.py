"""Reader for the IDX format of MNIST and Fashion-MNIST, gzipped or not.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values in C order.
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np

from fpt.errors import FPTError

_TYPES: dict[int, Any] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


GZIP_MAX_RATIO = 1032  # deflate cannot expand data more than ~1032:1


@contextmanager
def open_content(path: str | Path) -> Iterator[BinaryIO]:
    """The file's content as a stream, decompressed when it is gzipped (judged by its first bytes, not its name);
    a damaged gzip stream is an FPTError when read."""
    path = Path(path)
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        try:
            if gzipped:
                with gzip.GzipFile(fileobj=raw) as handle:
                    yield cast(BinaryIO, handle)
            else:
                yield raw
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise FPTError(
                f"{path} is a damaged gzip file ({err}); it was probably cut short while downloading. "
                "Delete it and run `fpt data download` again, or copy an intact file in its place."
            ) from err


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (e.g. (60000, 28, 28) uint8 images or (60000,) labels).

    The size its header announces is checked against the file's size before anything is allocated."""
    path = Path(path)
    with open_content(path) as handle:
        magic = handle.read(4)
        if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _TYPES:
            raise FPTError(
                f"{path} is not an IDX file: its magic number is {magic.hex() or 'missing'}, expected "
                "00 00 <type> <dims> (e.g. 00000803 for images, 00000801 for labels). Check that it is an "
                "MNIST-style *-ubyte or *-ubyte.gz file."
            )
        dims = handle.read(4 * magic[3])
        shape = tuple(int.from_bytes(dims[i : i + 4], "big") for i in range(0, len(dims), 4))
        dtype = np.dtype(_TYPES[magic[2]])
        announced = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
        on_disk = path.stat().st_size
        limit = on_disk * GZIP_MAX_RATIO if isinstance(handle, gzip.GzipFile) else on_disk - 4 - len(dims)
        if len(dims) < 4 * magic[3] or announced > limit:
            raise FPTError(
                f"{path} is truncated or damaged: its header announces shape {shape} ({announced:,} bytes of "
                f"values) but the file is {on_disk:,} bytes. Replace it with an intact copy."
            )
        data = handle.read(announced + 1)
    if len(data) != announced:
        raise FPTError(
            f"{path} is truncated or padded: its header announces shape {shape} ({announced:,} bytes of values) but "
            f"the file holds {len(data):,}{'+' if len(data) > announced else ''}. Replace it with an intact copy."
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))

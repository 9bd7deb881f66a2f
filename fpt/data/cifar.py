"""Reader for the CIFAR-10 python batches (`cifar-10-batches-py/data_batch_1..5`, `test_batch`)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from fpt.data import safe_pickle
from fpt.errors import FPTError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 3, 32, 32) uint8 and labels (n,) int64 of one batch file."""
    path = Path(path)
    try:
        batch = safe_pickle.loads(path.read_bytes(), encoding="bytes")
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise FPTError(
            f"{path} is not a CIFAR-10 python batch ({type(err).__name__}: {err}). Expected a pickled dict "
            "with b'data' and b'labels', as in cifar-10-python.tar.gz; replace the file with an intact copy."
        ) from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch)[:6] if isinstance(batch, dict) else type(batch).__name__
        raise FPTError(
            f"{path} is not a CIFAR-10 python batch: expected a dict with keys b'data' and b'labels', found "
            f"{keys}. (CIFAR-100 batches use b'fine_labels'; this reader is for CIFAR-10.)"
        )
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise FPTError(
            f"{path}: expected b'data' as (n, 3072) uint8 and n labels, found {data.shape} {data.dtype} and "
            f"{len(labels)} labels."
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise FPTError(f"{path}: labels must be in [0, 10), found {labels.min()}..{labels.max()}.")
    return data.reshape(-1, 3, 32, 32), labels


def read_split(directory: str | Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated images and labels of the named batch files in `directory`."""
    parts = [read_batch(Path(directory) / name) for name in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

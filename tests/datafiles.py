"""Tiny dataset files in the real formats, written by the tests (IDX, CIFAR batches, LRA TSV, TAPE LMDB)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import lmdb
import numpy as np
import pytest

from fpt.data import listops, tape


def debian_fashion_mnist(test):
    """Marks a test of Debian's dataset-fashion-mnist package: it sees system data folders (which tests
    otherwise do not, see conftest.py) and is skipped where the package is absent."""
    skip = pytest.mark.skipif(
        not Path("/usr/share/datasets/fashion-mnist").is_dir(),
        reason="Debian package dataset-fashion-mnist not installed (apt-get install dataset-fashion-mnist)",
    )
    return pytest.mark.system_data(skip(test))


def idx_bytes(array: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08}[array.dtype]
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist(directory: Path, n_train: int = 60, n_test: int = 20, seed: int = 0, gz: bool = True) -> Path:
    """MNIST-layout IDX files of random 28x28 images whose class is the brightest quadrant pattern."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        images[np.arange(n), labels * 2 + 4, 4:24] = 255  # a learnable stripe per class
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            data = idx_bytes(array)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (directory / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (directory / name).write_bytes(data)
    return directory


def write_cifar(directory: Path, per_batch: int = 12, seed: int = 0) -> Path:
    """cifar-10-batches-py with five small training batches and a test batch."""
    rng = np.random.default_rng(seed)
    base = directory / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    for name in (*[f"data_batch_{i}" for i in range(1, 6)], "test_batch"):
        batch = {
            b"batch_label": name.encode(),
            b"labels": rng.integers(0, 10, per_batch).tolist(),
            b"data": rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8),
            b"filenames": [b"x.png"] * per_batch,
        }
        (base / name).write_bytes(pickle.dumps(batch, protocol=2))
    return directory


def write_listops(directory: Path, seed: int = 0) -> Path:
    """Short expressions (20-100 tokens) by the LRA recipe, in the LRA TSV format."""
    listops.generate(directory, seed=seed, train=40, val=10, test=10, min_length=20, max_length=100, max_depth=4)
    return directory


def write_lmdb(path: Path, records: list[dict], num_examples: int | None = None) -> Path:
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        if num_examples is not False:
            txn.put(b"num_examples", pickle.dumps(len(records) if num_examples is None else num_examples))
        for i, record in enumerate(records):
            txn.put(str(i).encode(), pickle.dumps(record))
    env.close()
    return path


def write_homology(directory: Path, seed: int = 0, per_split: int = 12) -> Path:
    rng = np.random.default_rng(seed)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    directory.mkdir(parents=True, exist_ok=True)
    for filename in tape.SPLITS.values():
        records = [
            {
                "primary": "".join(rng.choice(letters, rng.integers(5, 40))),
                "fold_label": int(rng.integers(0, 1195)),
                "class_label": 0,
                "superfamily_label": 0,
                "family_label": 0,
                "protein_length": 0,
            }
            for _ in range(per_split)
        ]
        write_lmdb(directory / filename, records)
    return directory

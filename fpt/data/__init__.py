"""Datasets of the paper: a registry that finds, downloads and verifies them, and their readers.

`fpt data list|download|verify|generate` is the command-line face of this package.
"""

from __future__ import annotations

from pathlib import Path

from fpt.data.fetch import download, verify
from fpt.data.registry import data_root, dataset_names, get_dataset, locate, require


def status(name: str, data_dir: str | Path | None = None) -> dict:
    """Whether dataset `name` is present, where, and its size on disk in bytes."""
    directory = locate(name, data_dir)
    size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) if directory else 0
    return {
        "name": name,
        "present": directory is not None,
        "where": str(directory or data_root(data_dir) / name),
        "bytes": size,
        "description": get_dataset(name).description,
    }


def generate(name: str, data_dir: str | Path | None = None, seed: int = 0, **sizes) -> Path:
    """Write a synthetic copy of dataset `name` (ListOps only) into the data root."""
    import json

    from fpt.data import listops
    from fpt.errors import FPTError
    from fpt.training.rundir import atomic_write

    if get_dataset(name).generator != name:
        raise FPTError(
            f"Dataset {name!r} has no generator; only listops can be generated. Use `fpt data download {name}`."
        )
    target = data_root(data_dir) / name
    listops.generate(target, seed=seed, **sizes)
    atomic_write(
        target / "GENERATED",
        (json.dumps({"generator": "LRA recipe (fpt.data.listops)", "seed": seed, **sizes}) + "\n").encode(),
    )
    return target


__all__ = ["data_root", "dataset_names", "download", "generate", "get_dataset", "locate", "require", "status", "verify"]

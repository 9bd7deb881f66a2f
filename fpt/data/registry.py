"""Where each dataset lives: its files, checksums, canonical sources and manual instructions.

One data root holds everything: `--data-dir`, else `$FPT_DATA`, else the per-user cache
(`~/.cache/fpt` on Linux). Each dataset sits in `<root>/<name>/`; a few known system locations
(e.g. Debian's dataset-fashion-mnist package) are searched too.

Checksums are of file *content*: for gzipped IDX files, of the decompressed bytes, so a copy
that was re-compressed (as Debian's is) or unpacked still verifies. Downloads are checked against
the SHA-256 of the archive as published. Where no checksum is published (the LRA and TAPE
archives), the registry says so and verification reads every file in full instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from fpt.data.catalog import DATASETS
from fpt.data.specs import Dataset, find_file
from fpt.errors import FPTError, unknown_name


def data_root(data_dir: str | Path | None = None) -> Path:
    """The data root: the argument, else $FPT_DATA, else the per-user cache."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("FPT_DATA"):
        return Path(os.environ["FPT_DATA"]).expanduser()
    import pooch

    return Path(pooch.os_cache("fpt"))


def writable_root(data_dir: str | Path | None = None) -> Path:
    """The data root, for writing into: refused when it is itself a dataset's directory (a data root holds
    one folder per dataset), so a dataset is never written inside another."""
    from fpt.runs.record import enclosing_run

    root = data_root(data_dir)
    if (root / "config.yaml").is_file() or enclosing_run(root / "x") is not None:
        raise FPTError(f"--data-dir {root} is (or lies inside) a run directory; choose a data root outside runs.")
    for dataset in DATASETS.values():
        if any(find_file(root, f) for f in dataset.files):
            raise FPTError(
                f"{root} looks like the {dataset.name} dataset's own folder, not a data root; pass the folder "
                f"that holds it ({root.parent}) as --data-dir."
            )
    return root


def candidate_dirs(dataset: Dataset, data_dir: str | Path | None = None) -> list[Path]:
    return [data_root(data_dir) / dataset.name, *(Path(d) for d in dataset.system_dirs)]


def locate(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The first directory that holds every file of the dataset, or None."""
    dataset = get_dataset(name)
    for directory in candidate_dirs(dataset, data_dir):
        if all(find_file(directory, f) for f in dataset.files):
            return directory
    return None


def require(name: str, data_dir: str | Path | None = None) -> Path:
    """Like `locate`, but a missing dataset is an `FPTError` saying how to get it."""
    directory = locate(name, data_dir)
    if directory is None:
        dataset = get_dataset(name)
        searched = ", ".join(str(d) for d in candidate_dirs(dataset, data_dir))
        raise FPTError(
            f"Dataset {name!r} was not found (searched {searched}). Download it with `fpt data download "
            f"{name}` (needs a network), or: {dataset.manual_instructions(data_root(data_dir))}"
        )
    return directory


def get_dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise unknown_name("dataset", name, sorted(DATASETS))
    return DATASETS[name]


def dataset_names() -> list[str]:
    return sorted(DATASETS)

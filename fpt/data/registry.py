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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fpt.errors import FPTError, unknown_name


@dataclass(frozen=True)
class Download:
    """One published file. `members` maps archive paths to dataset files (None: the file is one)."""

    url: str
    sha256: str | None  # of the downloaded file; None where none is published
    members: dict[str, str] | None = None
    size: str = ""  # human-readable, for the user's information


@dataclass(frozen=True)
class Dataset:
    name: str
    files: dict[str, str | None]  # relative path -> content checksum "sha256:..." / "md5:...", None if unpublished
    downloads: tuple[Download, ...]
    summary: Callable[[Path], str]  # reads every file in full, returns e.g. "60000 train, 10000 test"
    description: str
    system_dirs: tuple[str, ...] = ()
    generator: str | None = None  # `fpt data generate NAME` can write it instead
    notes: tuple[str, ...] = field(default_factory=tuple)

    def manual_instructions(self, root: Path) -> str:
        where = root / self.name
        sources = " ".join(d.url + (f" ({d.size})" if d.size else "") for d in self.downloads)
        text = (
            f"Put these files in {where}/: {', '.join(self.files)} (gzipped or not for .gz files). "
            f"They come from {sources}"
        )
        if any(d.members for d in self.downloads):
            text += " (unpack the archive and copy the files named above)"
        text += ". Then check them with `fpt data verify " + self.name + "`."
        if self.generator:
            text += f" Or write a synthetic copy offline with `fpt data generate {self.generator}`."
        return text


def data_root(data_dir: str | Path | None = None) -> Path:
    """The data root: the argument, else $FPT_DATA, else the per-user cache."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("FPT_DATA"):
        return Path(os.environ["FPT_DATA"]).expanduser()
    import pooch

    return Path(pooch.os_cache("fpt"))


def _find_file(directory: Path, relative: str) -> Path | None:
    """The file, or its uncompressed twin for a .gz name (or the reverse)."""
    for candidate in (relative, relative[:-3] if relative.endswith(".gz") else relative + ".gz"):
        path = directory / candidate
        if path.exists():
            return path
    return None


def candidate_dirs(dataset: Dataset, data_dir: str | Path | None = None) -> list[Path]:
    return [data_root(data_dir) / dataset.name, *(Path(d) for d in dataset.system_dirs)]


def locate(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The first directory that holds every file of the dataset, or None."""
    dataset = get_dataset(name)
    for directory in candidate_dirs(dataset, data_dir):
        if all(_find_file(directory, f) for f in dataset.files):
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


def dataset_file(directory: Path, relative: str) -> Path:
    path = _find_file(directory, relative)
    if path is None:
        raise FPTError(f"{directory / relative} is missing; the dataset in {directory} is incomplete.")
    return path


def get_dataset(name: str) -> Dataset:
    from fpt.data.catalog import DATASETS

    if name not in DATASETS:
        raise unknown_name("dataset", name, sorted(DATASETS))
    return DATASETS[name]


def dataset_names() -> list[str]:
    from fpt.data.catalog import DATASETS

    return sorted(DATASETS)

"""What a dataset is: its files with content checksums, where they are published, how to check
them, and how a file is found in a dataset directory.

The catalog (the datasets of the paper) and the registry (finding them on disk) both import these
specs; neither imports the other's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fpt.errors import FPTError


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
    # raises FPTError when a package the reader needs is missing, before a download is started
    check_installed: Callable[[], object] | None = None

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


def find_file(directory: Path, relative: str) -> Path | None:
    """The file, or its uncompressed twin for a .gz name (or the reverse)."""
    for candidate in (relative, relative[:-3] if relative.endswith(".gz") else relative + ".gz"):
        path = directory / candidate
        if path.exists():
            return path
    return None


def dataset_file(directory: Path, relative: str) -> Path:
    path = find_file(directory, relative)
    if path is None:
        raise FPTError(f"{directory / relative} is missing; the dataset in {directory} is incomplete.")
    return path

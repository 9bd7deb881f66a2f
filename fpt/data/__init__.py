"""Datasets of the paper: a registry that finds, downloads and verifies them, and their readers.

`fpt data list|download|verify|generate` is the command-line face of this package.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fpt.data import listops
from fpt.data.fetch import download, recorded_downloads, verify
from fpt.data.fingerprint import generate_command
from fpt.data.registry import data_root, dataset_names, get_dataset, locate, require, writable_root
from fpt.data.specs import find_file
from fpt.errors import FPTError
from fpt.files import atomic_write


def status(name: str, data_dir: str | Path | None = None) -> dict:
    """Whether dataset `name` is present, where, and its size on disk in bytes."""
    directory = locate(name, data_dir)
    size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) if directory else 0
    records = recorded_downloads(data_root(data_dir))
    checksums = []
    for item in get_dataset(name).downloads:
        if item.sha256:
            checksums.append(f"{Path(item.url).name}: published SHA-256 pinned")
        elif item.url in records:
            known = records[item.url]
            checksums.append(
                f"{Path(item.url).name}: none published; SHA-256 {str(known.get('sha256'))[:16]}... recorded at the "
                f"first verified download ({known.get('recorded', '?')}), a different file is refused"
            )
        else:
            checksums.append(f"{Path(item.url).name}: none published; recorded at the first verified download")
    return {
        "name": name,
        "present": directory is not None,
        "where": str(directory or data_root(data_dir) / name),
        "bytes": size,
        "description": get_dataset(name).description,
        "checksums": sorted(set(checksums)),
    }


MAX_GENERATED = 1_000_000  # examples per split; LRA has 96,000 training examples


def _generate_settings(seed: int, settings: dict) -> tuple[dict, dict]:
    """The split sizes and the recipe of `fpt data generate` (LRA's where left out), checked."""
    unknown = sorted(set(settings) - set(listops.LRA_SIZES) - set(listops.LRA_RECIPE))
    sizes = {k: settings.get(k, v) for k, v in listops.LRA_SIZES.items()}
    bad = [
        f"{k} {v!r}"
        for k, v in {**sizes, "seed": seed}.items()
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if k == "seed" else 1) or v > MAX_GENERATED
    ]
    if bad or unknown:
        raise FPTError(
            f"fpt data generate: {', '.join(bad) or ', '.join(unknown)} "
            f"is not allowed: --train, --val and --test take 1 to {MAX_GENERATED:,} examples, --seed a "
            "non-negative integer. Nothing was written."
        )
    recipe = {k: settings.get(k, v) for k, v in listops.LRA_RECIPE.items()}
    listops.check_recipe(**recipe)
    return sizes, recipe


def _generate_target(name: str, data_dir: str | Path | None, force: bool) -> tuple[Path, Path]:
    """The data root and the dataset's folder in it, refused inside a run directory or, without
    `force`, where a copy already lies."""
    root = writable_root(data_dir)
    target = root / name
    run = next(
        (p for p in (root, *root.parents) if (p / "config.yaml").is_file() and (p / "checkpoints").is_dir()), None
    )
    if run is not None:  # a run directory's files stay as training left them
        raise FPTError(
            f"--data-dir {root} is inside the run directory {run}; choose a data root outside it. Nothing was written."
        )
    if target.exists() and any(target.iterdir()) and not force:
        origin = "a generated copy" if (target / "GENERATED").exists() else "files"
        raise FPTError(
            f"{target} already holds {origin} of {name}; it is kept. Pass --force to replace it with a new "
            "generated copy, or choose another --data-dir."
        )
    return root, target


def generate(
    name: str, data_dir: str | Path | None = None, seed: int = 0, force: bool = False, progress=None, **settings
) -> Path:
    """Write a synthetic copy of dataset `name` (ListOps only) into the data root.

    `settings` are split sizes (train, val, test) and the recipe's min_length, max_length,
    max_depth, max_args (LRA's where left out); the folder's GENERATED file records them all.
    `progress(n)` is called as examples are drawn (a Reporter's `counting`).
    The arguments are checked first; the files are written to a temporary folder beside the target
    and renamed into place, so an existing dataset is replaced only with `force` and only whole."""
    if get_dataset(name).generator != name:
        raise FPTError(
            f"Dataset {name!r} has no generator; only listops can be generated. Use `fpt data download {name}`."
        )
    sizes, recipe = _generate_settings(seed, settings)
    root, target = _generate_target(name, data_dir, force)
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-generating-", dir=root))
    except OSError as err:
        raise FPTError(f"Cannot write to the data root {root} ({err.strerror or err}).") from err
    try:
        listops.generate(staging, seed=seed, **sizes, **recipe, progress=progress)
        marker = {"generator": "LRA recipe (fpt.data.listops)", "seed": seed, **sizes, **recipe}
        atomic_write(staging / "GENERATED", (json.dumps(marker) + "\n").encode())
        if target.exists():  # --force: the old copy goes only once the new one is whole
            old = Path(tempfile.mkdtemp(prefix=f".{name}-replaced-", dir=root))
            target.rename(old / name)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    except OSError as err:
        raise FPTError(f"Writing {name} under {root} failed ({err.strerror or err}); nothing was replaced.") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@dataclass(frozen=True)
class GeneratedData:
    """A generated dataset that a budget reads: its data root (relative paths from the working directory,
    like runs/) and the `fpt data generate` settings (seed 0 unless named) that write it."""

    name: str
    data_dir: str
    settings: dict[str, int]
    note: str = ""  # what differs from the dataset it stands in for, and why

    def describe(self) -> str:
        """The note, where the data is read from and the command that writes it (for results.md)."""
        return f"{self.note} Read from {self.data_dir}/{self.name}, written by `{self.command()}`."

    def command(self) -> str:
        return generate_command(self.name, self.data_dir, self.settings)

    def require(self) -> Path:
        """Its folder, if present and generated with exactly these settings; else an FPTError naming the command."""
        directory = data_root(self.data_dir) / self.name
        if not all(find_file(directory, f) for f in get_dataset(self.name).files):
            raise FPTError(
                f"Dataset {self.name!r} was not found in {directory}: this budget reads a reduced copy there. "
                f"Generate it with `{self.command()}`, then run fpt reproduce again."
            )
        recorded = listops.generated_record(directory)
        wanted = {"seed": 0, **self.settings}
        if recorded is None or any(recorded.get(k) != v for k, v in wanted.items()):
            found = (
                "no readable GENERATED record"
                if recorded is None
                else (", ".join(f"{k} {recorded.get(k)}" for k, v in wanted.items() if recorded.get(k) != v))
            )
            raise FPTError(
                f"{directory} holds {self.name} made otherwise than this budget needs ({found}). Replace it with "
                f"`{self.command()} --force`, or move it away first to keep it."
            )
        return directory


__all__ = [
    "GeneratedData",
    "data_root",
    "dataset_names",
    "download",
    "generate",
    "get_dataset",
    "locate",
    "require",
    "status",
    "verify",
]

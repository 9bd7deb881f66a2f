"""What a run records of the dataset files it read: their SHA-256 and, for a generated copy, the seed
and settings that wrote it. `fpt train --resume` and `fpt eval` compare that record with the copy
they find, so a run is never continued or measured on other examples without a word (a copy
regenerated with another seed or other lengths has the same file names and the same shapes).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path

from fpt.data.fetch import content_hash
from fpt.data.listops import generated_record
from fpt.data.registry import get_dataset
from fpt.data.specs import dataset_file
from fpt.errors import FPTError

SETTINGS_NOT_FLAGS = ("generator",)  # GENERATED keys that are not `fpt data generate` flags


def fingerprint(name: str, directory: Path) -> dict:
    """The record of dataset `name` in `directory`: one SHA-256 over its files' contents, and the
    GENERATED record (seed, sizes, recipe) of a generated copy (None for a downloaded one)."""
    digest = hashlib.sha256()
    for relative in sorted(get_dataset(name).files):
        digest.update(f"{relative}\0{content_hash(dataset_file(directory, relative), 'sha256')}\0".encode())
    return {
        "dataset": name,
        "directory": str(directory.absolute()),
        "sha256": digest.hexdigest(),
        "generated": generated(directory),
    }


def generated(directory: Path) -> dict | None:
    return generated_record(directory) if (directory / "GENERATED").exists() else None


def generate_command(name: str, data_dir: str, settings: dict) -> str:
    """The `fpt data generate` command that writes a copy with `settings` (seed, sizes, recipe)."""
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings.items() if k not in SETTINGS_NOT_FLAGS)
    return f"fpt data generate {name} --data-dir {data_dir} {flags}"


def _what_changed(recorded: Mapping, found: Mapping) -> str:
    before, after = recorded.get("generated"), found.get("generated")
    if before and after:
        keys = [k for k in {**before, **after} if k not in SETTINGS_NOT_FLAGS and before.get(k) != after.get(k)]
        if keys:
            now = ", ".join(f"{k} {after.get(k)}" for k in keys)
            return f"this copy was generated with {now}; the run's with " + ", ".join(
                f"{k} {before.get(k)}" for k in keys
            )
        return "its files differ from the run's although the recorded generation settings are the same (edited since?)"
    if before:
        return "this copy was not generated, and the run read a generated one"
    if after:
        return "this copy was generated, and the run read downloaded files"
    return "its files differ from the run's"


def check_unchanged(recorded: Mapping | None, found: Mapping | None, run_dir: str | Path, action: str) -> None:
    """Refuse (FPTError) to `action` (e.g. "resume", "evaluate") the run in `run_dir` on a copy of its
    dataset whose fingerprint `found` differs from the one the run recorded; a run from before fpt
    recorded fingerprints is allowed with a warning, since nothing says what it read."""
    if found is None:
        return
    if recorded is None:
        logging.getLogger("fpt").warning(
            f"{run_dir} recorded no fingerprint of its {found['dataset']} data (written by an older fpt), so "
            f"whether {found['directory']} holds the examples it trained on cannot be checked."
        )
        return
    if recorded.get("sha256") == found.get("sha256"):
        return
    name, before = found["dataset"], recorded.get("generated")
    if before:
        command = generate_command(name, str(Path(found["directory"]).parent), before)
        remedy = (
            f"Write the run's copy again with `{command} --force` (generation is deterministic: the same settings "
            "give the same files; move the present copy away first to keep it)"
        )
    else:
        remedy = f"Put back the copy the run read (it was in {recorded.get('directory')}) or name it with --data-dir"
    raise FPTError(
        f"Cannot {action} {run_dir} on {found['directory']}: it holds other {name} examples than the run trained on "
        f"({_what_changed(recorded, found)}; SHA-256 {str(found.get('sha256'))[:12]}..., the run's "
        f"{str(recorded.get('sha256'))[:12]}...), so the numbers would measure other data. {remedy}, or start a "
        "new run on this copy."
    )

"""Download, unpack and verify datasets.

pooch does the fetching: it streams to a temporary file beside the target, checks the SHA-256
and only then renames, so a corrupt download never lands in the cache. The downloader below adds
resuming: bytes already received are kept in `<file>.part` and asked for again with an HTTP Range
request; a part that fails the checksum is deleted with the temporary file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from pathlib import Path
from typing import IO, cast

import pooch
import requests

from fpt.data.idx import open_content
from fpt.data.registry import get_dataset, locate, require, writable_root
from fpt.data.specs import Dataset, Download, dataset_file
from fpt.errors import FPTError
from fpt.files import atomic_write

CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 5, 60
CHUNK = 1 << 20


class ResumingDownloader:
    """A pooch downloader that continues an interrupted download where it stopped."""

    def __init__(self, progressbar: bool = True):
        self.progressbar = progressbar

    def __call__(self, url: str, output_file: str, pooch_obj=None, check_only: bool = False) -> bool | None:
        if check_only:
            return requests.head(url, timeout=CONNECT_TIMEOUT_S, allow_redirects=True).ok
        part = Path(output_file).parent / (Path(url).name + ".part")
        done = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={done}-"} if done else {}
        with requests.get(url, headers=headers, stream=True, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) as response:
            if response.status_code == 416:  # the part is already whole
                pass
            else:
                response.raise_for_status()
                if done and response.status_code != 206:  # the server ignores Range: start again
                    done = 0
                total = done + int(response.headers.get("content-length", 0)) or None
                from tqdm.auto import tqdm

                with (
                    open(part, "ab" if done else "wb") as handle,
                    tqdm(
                        total=total,
                        initial=done,
                        unit="B",
                        unit_scale=True,
                        desc=Path(url).name,
                        disable=not self.progressbar,
                        leave=False,
                    ) as bar,
                ):
                    for chunk in response.iter_content(CHUNK):
                        handle.write(chunk)
                        bar.update(len(chunk))
        os.replace(part, output_file)  # pooch verifies, then renames or deletes it
        return None


def fetch(download: Download, directory: Path, progressbar: bool = True) -> Path:
    """One published file into `directory`, verified; an `FPTError` on network or checksum failure."""
    name = Path(download.url).name
    try:
        return Path(
            pooch.retrieve(
                download.url,
                known_hash=f"sha256:{download.sha256}" if download.sha256 else None,
                fname=name,
                path=directory,
                downloader=ResumingDownloader(progressbar),
                progressbar=False,
            )
        )
    except ValueError as err:  # pooch: checksum mismatch; it has deleted the file
        (directory / (name + ".part")).unlink(missing_ok=True)
        raise FPTError(
            f"The download of {download.url} does not match its published SHA-256, so nothing was kept "
            f"({err}). Try again later; if it persists the source has changed: report it."
        ) from err
    except requests.RequestException as err:
        raise FPTError(f"Could not download {download.url}: {type(err).__name__}: {err}.") from err


def _unpack(archive: Path, members: dict[str, str], target: Path) -> None:
    """Copy the named archive members to `target` (via a temporary directory, renamed at the end).

    If any is missing, nothing is copied, the archive is kept, and the error says which members were
    missing and what the archive holds."""
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        held = []
        with tarfile.open(archive) as tar:
            for member in tar:
                held.append(member.name)
                if member.name in members and member.isfile():
                    out = staging / members[member.name]
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with cast(IO[bytes], tar.extractfile(member)) as source, open(out, "wb") as sink:
                        shutil.copyfileobj(source, sink, CHUNK)
        missing = [m for m, relative in members.items() if not (staging / relative).is_file()]
        if missing:
            shown = ", ".join(held[:12]) + (f", ... ({len(held)} entries)" if len(held) > 12 else "")
            raise FPTError(
                f"{archive} does not hold the expected file(s) {', '.join(missing)}; it holds: {shown or 'nothing'}. "
                f"The archive is kept (not downloaded again): if the files sit under other names, copy them "
                f"into {target} by hand; else the source has changed: report it."
            )
        for relative in members.values():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / relative, target / relative)
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise FPTError(f"{archive} could not be unpacked ({err}); delete it and download again.") from err
    except OSError as err:
        raise FPTError(
            f"Unpacking {archive} into {target} failed ({err.strerror or err}); the archive is kept."
        ) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _trust_on_first_use(root: Path, download: Download, path: Path) -> str:
    """Check `path` against the size and SHA-256 recorded for its URL at the first verified download
    (no checksum is published for it); returns the SHA-256, to record once the files verify."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    sha256, size = digest.hexdigest(), path.stat().st_size
    known = recorded_downloads(root).get(download.url)
    if known and (known.get("sha256"), known.get("size")) != (sha256, size):
        raise FPTError(
            f"{path} ({size:,} bytes, SHA-256 {sha256}) differs from the copy of {download.url} first downloaded "
            f"and verified into {root} ({known.get('size'):,} bytes, SHA-256 {known.get('sha256')}), so it was "
            f"not used. The source may have changed or been tampered with; the file is kept for you to inspect. "
            f"If the change is expected, remove its entry from {root / TOFU_FILE}."
        )
    return sha256


TOFU_FILE = "downloads.json"  # url -> size and SHA-256 of its first verified download (no published checksum)


def recorded_downloads(root: Path) -> dict:
    """The trust-on-first-use records of the data root (empty when none or unreadable)."""
    try:
        records = json.loads((root / TOFU_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def _record_download(root: Path, download: Download, sha256: str, size: int) -> None:

    records = recorded_downloads(root)
    if download.url not in records:
        records[download.url] = {"sha256": sha256, "size": size, "recorded": time.strftime("%Y-%m-%d")}
        atomic_write(root / TOFU_FILE, (json.dumps(records, indent=2) + "\n").encode())


def download(name: str, data_dir: str | Path | None = None, progressbar: bool = True, log=print) -> Path:
    """Fetch, unpack and verify dataset `name` into the data root; returns its directory.

    Published SHA-256s are checked by pooch; where none is published, the first verified download's
    size and SHA-256 are recorded in the data root and a later, different file is refused."""
    dataset = get_dataset(name)
    found = locate(name, data_dir)
    if found is not None:
        log(f"{name}: already present in {found}")
        return found
    if dataset.check_installed:
        dataset.check_installed()
    root = writable_root(data_dir)
    target = root / name
    created = [p for p in (target, *target.parents) if not p.exists()]
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FPTError(f"Cannot create {target} ({err.strerror or err}); choose a writable --data-dir.") from err
    try:
        return _download(dataset, root, target, data_dir, progressbar, log)
    except FPTError:
        for folder in created:  # leave no empty folders behind (a partial download's .part file stays)
            _remove_empty(folder)
        raise


def _remove_empty(folder: Path) -> None:
    for sub in sorted(folder.rglob("*"), reverse=True) if folder.is_dir() else ():
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _download(dataset, root: Path, target: Path, data_dir, progressbar: bool, log) -> Path:
    name = dataset.name
    unpublished = []
    for item in dataset.downloads:
        try:
            path = fetch(item, target / ".downloads" if item.members else target, progressbar)
        except FPTError as err:
            raise FPTError(f"{err} {dataset.manual_instructions(root)}") from err
        if not item.sha256:
            log(f"{name}: no checksum is published for {item.url}; checking it against the first verified download")
            unpublished.append((item, _trust_on_first_use(root, item, path), path.stat().st_size))
        if item.members:
            _unpack(path, item.members, target)
    summary = verify(name, data_dir, log=log)
    for item, sha256, size in unpublished:
        _record_download(root, item, sha256, size)
    for item in dataset.downloads:  # unpacked and verified: the archives can go
        if item.members:
            archive = target / ".downloads" / Path(item.url).name
            archive.unlink(missing_ok=True)
            if archive.parent.is_dir() and not any(archive.parent.iterdir()):
                archive.parent.rmdir()
    log(f"{name}: downloaded to {target} ({summary})")
    return target


def content_hash(path: Path, algorithm: str) -> str:
    """Hash of the file's content; for gzip files, of the decompressed bytes (streamed, never all in memory)."""
    digest = hashlib.new(algorithm)
    with open_content(path) as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(name: str, data_dir: str | Path | None = None, log=print) -> str:
    """Check every file's content checksum (where published) and read the dataset in full."""
    dataset: Dataset = get_dataset(name)
    directory = require(name, data_dir)
    for relative, expected in dataset.files.items():
        path = dataset_file(directory, relative)
        if expected is None:
            continue
        algorithm, _, value = expected.partition(":")
        actual = content_hash(path, algorithm)
        if actual != value:
            raise FPTError(
                f"{path} does not match the published {algorithm} of {relative} (expected {value}, got {actual}): "
                f"it is damaged or a different version. Delete it and run `fpt data download {name}`."
            )
    summary = dataset.summary(directory)
    notes = () if (directory / "GENERATED").exists() else dataset.notes  # they are about the downloads
    log(f"{name}: OK in {directory}: {summary}" + "".join(f" Note: {n}" for n in notes))
    return summary

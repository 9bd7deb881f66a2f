"""Download, unpack and verify datasets.

pooch does the fetching: it streams to a temporary file beside the target, checks the SHA-256
and only then renames, so a corrupt download never lands in the cache. The downloader below adds
resuming: bytes already received are kept in `<file>.part` and asked for again with an HTTP Range
request; a part that fails the checksum is deleted with the temporary file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import pooch
import requests

from fpt.data.idx import read_bytes
from fpt.data.registry import Dataset, Download, data_root, dataset_file, get_dataset, locate
from fpt.errors import FPTError

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
    """Copy the named archive members to `target` (via a temporary directory, renamed at the end)."""
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                if member.name in members and member.isfile():
                    out = staging / members[member.name]
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as source, open(out, "wb") as sink:
                        shutil.copyfileobj(source, sink, CHUNK)
        for relative in members.values():
            if (staging / relative).exists():
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / relative, target / relative)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise FPTError(f"{archive} could not be unpacked ({err}); delete it and download again.") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download(name: str, data_dir: str | Path | None = None, progressbar: bool = True, log=print) -> Path:
    """Fetch, unpack and verify dataset `name` into the data root; returns its directory."""
    dataset = get_dataset(name)
    found = locate(name, data_dir)
    if found is not None:
        log(f"{name}: already present in {found}")
        return found
    target = data_root(data_dir) / name
    target.mkdir(parents=True, exist_ok=True)
    for item in dataset.downloads:
        try:
            path = fetch(item, target / ".downloads" if item.members else target, progressbar)
        except FPTError as err:
            raise FPTError(f"{err} {dataset.manual_instructions(data_root(data_dir))}") from err
        if not item.sha256:
            log(f"{name}: no checksum is published for {item.url}; the files will be checked by reading them")
        if item.members:
            _unpack(path, item.members, target)
            path.unlink()
            if not any(path.parent.iterdir()):
                path.parent.rmdir()
    summary = verify(name, data_dir, log=log)
    log(f"{name}: downloaded to {target} ({summary})")
    return target


def content_hash(path: Path, algorithm: str) -> str:
    """Hash of the file's content; for gzip files, of the decompressed bytes."""
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    if gzipped:
        return hashlib.new(algorithm, read_bytes(path)).hexdigest()
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(name: str, data_dir: str | Path | None = None, log=print) -> str:
    """Check every file's content checksum (where published) and read the dataset in full."""
    from fpt.data.registry import require

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
    log(f"{name}: OK in {directory}: {summary}" + "".join(f" Note: {n}" for n in dataset.notes))
    return summary

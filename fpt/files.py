"""File writes every layer uses: whole files that a crash cannot leave half written.

With `fpt.yamlsafe` (the one YAML reader) and `fpt.errors` this is the bottom layer: it imports
nothing else from fpt, so data, runs, models and training can all use it without importing each other.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


def cache_root() -> Path:
    """Where fpt keeps what it builds once per machine (converted backbones, compiled kernels):
    $FPT_CACHE, else $XDG_CACHE_HOME/fpt, else ~/.cache/fpt."""
    if os.environ.get("FPT_CACHE"):
        return Path(os.environ["FPT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "fpt"


def write_synced(path: Path, data: bytes) -> str:
    """Write `data` to `path` and flush it to disk; returns its SHA-256 (hex)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write `path` whole: to a temporary name first, then renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    write_synced(tmp, data)
    os.replace(tmp, path)


def not_a_file(path: Path) -> str | None:
    """What `path` is when it exists but is not a regular file (None otherwise): reading a FIFO or a
    device blocks until something writes to it, so an input that is one is refused, not read."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    kinds = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket"}
    kinds |= {stat.S_ISCHR: "a device", stat.S_ISBLK: "a device"}
    return next((name for test, name in kinds.items() if test(mode)), None)

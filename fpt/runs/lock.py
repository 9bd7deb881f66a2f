"""One writer per run directory: an exclusive lock on `RUN_DIR/.lock`, held for the life of the run.

A POSIX record lock (`fcntl.lockf`): the operating system releases it when the process ends, crash
or `kill -9` included, so a stale lock file never blocks a later run. The holder's PID is read back
from the kernel (F_GETLK), so the lock file stays empty and never changes. Note that record locks
belong to a process: a second lock from the same process succeeds, so two writers are two processes.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path
from typing import Any

from fpt.errors import FPTError

LOCK_FILE = ".lock"


class RunLocked(FPTError):
    """Another process is writing this run directory."""


def _holder(handle) -> int | None:
    """The PID holding a conflicting lock on `handle` (Linux layout of struct flock), or None."""
    import fcntl

    if not sys.platform.startswith("linux"):
        return None
    query = struct.pack("@hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    try:
        result = fcntl.fcntl(handle, fcntl.F_GETLK, query)
    except OSError:
        return None
    kind, _, _, _, pid = struct.unpack("@hhqqi4x", result)
    return pid if kind != fcntl.F_UNLCK else None


class RunLock:
    """`with RunLock(run_dir):` or `acquire()` / `release()`; the directory must exist."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.handle: Any = None  # the open lock file while held

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock, as before
            return self
        try:
            handle = open(self.path, "a+b")
        except OSError as err:
            raise FPTError(f"Cannot write in {self.run_dir} ({err.strerror or err}); choose a writable --out.") from err
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            pid = _holder(handle)
            handle.close()
            holder = f"process {pid}" if pid else "another process"
            raise RunLocked(
                f"{self.run_dir} is being written by {holder} (it holds the lock {self.path}); only one "
                "`fpt train` may write a run directory at a time. Wait for it to finish (or stop it), then try again."
            ) from err
        self.handle = handle
        return self

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing releases the lock
            self.handle = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

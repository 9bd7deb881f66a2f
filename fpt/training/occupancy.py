"""Is this machine oversubscribed? Training processes x torch threads vs the cores we may use.

Each CPU training process registers itself while it trains: one small file per process in a
per-user temporary folder, holding its torch thread count and its start time (so a reused process
id is never counted). A new run reads the others' files, skips and removes those of processes that
no longer exist, and warns if all threads together exceed the cores: threads then spin-wait on each
other, and every run is many times slower per step than with fewer threads
(benchmarks/results/design_figures.md).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path


def default_registry() -> Path:
    return Path(tempfile.gettempdir()) / f"fpt-training-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    with suppress(AttributeError, OSError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot, from /proc), or None where /proc has none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name before ')' may hold spaces


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return started is None or _start_time(pid) in (None, started)


@dataclass(frozen=True, order=True)
class TrainingProcess:
    pid: int
    threads: int


def running(registry: Path | None = None) -> list[TrainingProcess]:
    """The registered training processes still alive (stale entries are removed)."""
    registry = registry or default_registry()
    found = []
    for path in registry.glob("*.json"):
        try:
            entry = json.loads(path.read_text())
            pid, threads, started = int(entry["pid"]), int(entry["threads"]), entry.get("started")
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not ours
        if _alive(pid, started):
            found.append(TrainingProcess(pid, threads))
        else:
            with suppress(OSError):
                path.unlink()
    return found


@contextmanager
def registered(threads: int, registry: Path | None = None) -> Iterator[list[TrainingProcess]]:
    """Register this process as training with `threads` threads for the duration; yields the other
    registered processes. Never fails the run: without a writable temporary folder nothing is registered."""
    registry = registry or default_registry()
    pid = os.getpid()
    own = registry / f"{pid}.json"
    try:
        others = [p for p in running(registry) if p.pid != pid]
        registry.mkdir(mode=0o700, parents=True, exist_ok=True)
        staged = registry / f".{pid}.tmp"
        staged.write_text(json.dumps({"pid": pid, "threads": threads, "started": _start_time(pid)}))
        staged.replace(own)
    except OSError:
        others = []
    try:
        yield others
    finally:
        with suppress(OSError):
            own.unlink()


def oversubscription(threads: int, others: list[TrainingProcess], cores: int | None = None) -> str | None:
    """A warning when this process's and the other training processes' threads exceed the cores, else None."""
    cores = cores or usable_cores()
    total = threads + sum(p.threads for p in others)
    if total <= cores:
        return None
    per_process = max(1, cores // (len(others) + 1))
    return (
        f"Warning: this machine is oversubscribed: {len(others) + 1} fpt training processes use {total} torch "
        f"threads on {cores} cores (this one {threads}; others: "
        + ", ".join(f"pid {p.pid} {p.threads}" for p in others)
        + f"). Each step can run many times slower. Give each run fewer threads (e.g. OMP_NUM_THREADS="
        f"{per_process}) or run them one after another."
    )


@contextmanager
def registered_training(device: str) -> Iterator[None]:
    """`fpt train` on the CPU (`device` cpu, or auto without a GPU): register for the duration, and
    warn (logging, so --quiet runs warn too) if the machine is oversubscribed."""
    import torch

    if device != "cpu" and not (device == "auto" and not torch.cuda.is_available()):
        yield
        return
    threads = torch.get_num_threads()
    with registered(threads) as others:
        message = oversubscription(threads, others)
        if message:
            logging.getLogger("fpt").warning(message)
        yield

"""Progress of a whole grid while it runs: runs done, failed, running and waiting, and the time left.

A line when a run starts (with its log to follow), one when it ends (its result, how long it took,
the time left at the pace so far, and the grid's counts), and one every few minutes while none ends;
the same lines, time-stamped, are appended to `OUT/sweep.log`, so a sweep on a cluster can be followed
with `tail -f` from any machine that sees the sweep directory. A run counts as running while its
marker `logs/KEY.running` exists: the process that trains it (a thread here, a Ray task or a SLURM
array task elsewhere) writes it, so every backend is counted the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fpt.training.progress import clock

SWEEP_LOG = "sweep.log"
HEARTBEAT_S = 300.0  # a line at least this often while runs go on but none ends
STARTS_EVERY_S = 10.0  # how often the markers are read for runs that started on another machine


def running_marker(out: Path, key: str) -> Path:
    """The file that says a run is being trained now (its trainer writes it, and removes it at the end)."""
    return out / "logs" / f"{key}.running"


def _score(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@dataclass
class Pace:
    """The time left, from the runs finished so far: after each, `after(started)` says it. `jobs` runs
    go at once; where the backend does not fix that (a cluster), `at_once` says how many do now."""

    runs: int
    jobs: int | None
    done: int = 0
    seconds: float = 0.0

    def after(self, started: float, at_once: int = 1) -> str:
        took = time.time() - started
        self.done, self.seconds = self.done + 1, self.seconds + took
        left = max(self.runs - self.done, 0)
        if not left:
            return f" in {clock(took)}"
        eta = self.seconds / self.done * left / max(min(self.jobs or at_once, left), 1)
        return f" in {clock(took)}; about {clock(eta)} left for {left} run(s) at this pace"


class GridProgress:
    """A grid's records, kept as its runs end, and its progress reported. `found` takes the runs that
    ended before (read back, not trained again); `pace` counts the runs still to train."""

    def __init__(self, out: Path, total: int, pace: Pace, log: Callable[[str], object] = print):
        self.out, self.total, self.pace, self.log = out, total, pace, log
        self.records: dict[str, dict] = {}
        self.finished = self.failed = self.skipped = 0
        self.waiting: dict[str, float] = {}  # key -> when it was handed to the backend
        self.started_at: dict[str, float] = {}  # key -> when it was seen to start
        self.began = self.last_line = self.last_scan = time.monotonic()

    def say(self, line: str) -> None:
        """`line` on the terminal and, time-stamped, in OUT/sweep.log."""
        self.log(line)
        self.last_line = time.monotonic()
        with open(self.out / SWEEP_LOG, "a") as file:
            file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {line}\n")

    def found(self, key: str, record: dict) -> None:
        """A run that ended before this sweep started: its record, counted, not announced."""
        self.records[key] = record
        self.finished += 1

    def dispatched(self, keys: list[str]) -> None:
        self.waiting.update(dict.fromkeys(keys, time.time()))

    def started(self, key: str) -> None:
        """A run began to train (its backend says so, or its marker appeared)."""
        if key not in self.started_at:
            self.started_at[key] = time.time()
            self.say(f"  started {key} (progress: {self.out / 'logs' / (key + '.log')})")

    def ended(self, key: str, record: dict) -> None:
        """A run ended (finished, stopped early, diverged or failed): its result, time and the counts."""
        self.records[key] = record
        self.waiting.pop(key, None)
        # a run that ended before its marker was seen started after the last look at the markers
        began = self.started_at.pop(key, time.time() - (time.monotonic() - self.last_scan))
        if record["status"] == "failed":
            self.failed += 1
        else:
            self.finished += 1
        detail = (
            record.get("error")
            or f"test {_score(record['summary'].get('test_metric', record['summary'].get('test_accuracy')))}"
        )
        timing = self.pace.after(began, at_once=self._running() + 1)
        done = self.finished + self.failed + self.skipped
        self.say(f"  [{done}/{self.total}] {key}: {record['status']} ({detail}){timing} | {self.counts()}")

    def skip(self, key: str, reason: str) -> None:
        """A run that will not train (its lr was not chosen on the selection seeds); one that ended
        before leaves the counts of ended runs, one that did not leaves the runs to train."""
        if key in self.records:
            self.finished -= 1
        else:
            self.pace.runs -= 1
        self.records[key] = {"key": key, "status": "skipped", "error": reason}
        self.skipped += 1

    def grow(self, runs: int) -> None:
        """`runs` more to train (an lr grid extended beyond its edge)."""
        self.total += runs
        self.pace.runs += runs

    def tick(self) -> None:
        """Called while waiting: starts seen in the markers, and a line of counts when none was written
        for HEARTBEAT_S."""
        if time.monotonic() - self.last_scan >= STARTS_EVERY_S:
            self.last_scan = time.monotonic()
            for key in [k for k in self.waiting if k not in self.started_at]:
                if running_marker(self.out, key).exists():
                    self.started(key)
        if time.monotonic() - self.last_line >= HEARTBEAT_S:
            self.say(f"  progress | {self.counts()} | {clock(time.monotonic() - self.began)} elapsed")

    def _running(self) -> int:
        return sum(running_marker(self.out, key).exists() for key in self.waiting)

    def counts(self) -> str:
        running = self._running()
        left = self.total - self.finished - self.failed - self.skipped
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        return f"{self.finished} done, {self.failed} failed, {running} running, {left - running} waiting{skipped}"

"""A training subprocess that waits at a known step, so a test signals it there however fast the machine is.

The killed and stopped runs of tests/test_resume.py import this before `fpt train` (see `_start_and_stop`):
once the run has written its metrics line for step $FPT_STALL_AT or later, it waits until the file
$FPT_STALL_RELEASE exists. A SIGKILL ends it there; after a SIGTERM the test creates the file and the run
stops at that step. Timing the signal instead made the outcome depend on the machine's load (a fast run
could finish between two looks at its metrics)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fpt.runs.record import RunDir

_append_metrics = RunDir.append_metrics


def _append_then_wait(self: RunDir, record: dict) -> None:
    _append_metrics(self, record)
    if record["step"] >= int(os.environ["FPT_STALL_AT"]):
        release = Path(os.environ["FPT_STALL_RELEASE"])
        while not release.exists():
            time.sleep(0.01)


RunDir.append_metrics = _append_then_wait  # type: ignore[method-assign]

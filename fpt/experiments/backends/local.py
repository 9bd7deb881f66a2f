"""The default backend: `jobs` runs at a time on this machine, each an `fpt train` subprocess."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING

from fpt.experiments.backends import POLL_S, Work, check_count, failed

if TYPE_CHECKING:
    from fpt.experiments.progress import GridProgress
    from fpt.experiments.sweep import Run


class LocalBackend:
    OPTIONS: tuple[str, ...] = ()

    def __init__(self, jobs: int | None = None):
        self.jobs = 1 if jobs is None else jobs
        check_count("--jobs", self.jobs)
        # The machine's cores shared between the jobs; the caller's own OMP_NUM_THREADS (a shared machine) caps it.
        self.threads = max(1, (os.cpu_count() or 1) // self.jobs)
        if os.environ.get("OMP_NUM_THREADS", "").isdigit():
            self.threads = max(1, min(self.threads, int(os.environ["OMP_NUM_THREADS"])))

    def describe(self) -> str:
        return f"with {self.jobs} job(s)"

    def run(self, runs: list[Run], work: Work, out: Path, progress: GridProgress) -> None:
        lock = threading.Lock()  # one thread at a time reports (the lines stay whole, the counts right)

        def train(run: Run) -> None:
            with lock:
                progress.started(run.key)
            try:
                record = work(run)
            except Exception as err:  # not a training error (its log has those): the launch itself broke
                record = failed(run, out, f"{type(err).__name__}: {err}")
            with lock:
                progress.ended(run.key, record)  # before this thread takes the next run

        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = [pool.submit(train, run) for run in runs]
            while wait(futures, timeout=POLL_S).not_done:
                with lock:
                    progress.tick()
            for future in futures:
                future.result()

    def close(self) -> None:
        pass

"""The default backend: `jobs` runs at a time on this machine, each an `fpt train` subprocess."""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
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
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            pending = {pool.submit(self._train, work, run, progress): run for run in runs}
            while pending:
                done, _ = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    run = pending.pop(future)
                    try:
                        record = future.result()
                    except Exception as err:  # not a training error (its log has those): the launch itself broke
                        record = failed(run, out, f"{type(err).__name__}: {err}")
                    progress.ended(run.key, record)
                progress.tick()

    @staticmethod
    def _train(work: Work, run: Run, progress: GridProgress) -> dict:
        progress.started(run.key)
        return work(run)

    def close(self) -> None:
        pass

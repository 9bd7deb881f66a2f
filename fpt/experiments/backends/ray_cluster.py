"""`--backend ray`: every run of the grid a Ray task, on a cluster (`--address`) or a local instance.

Each task declares its resources (`--cpus-per-run`, `--gpus-per-run`; Ray sets CUDA_VISIBLE_DEVICES
for it) and trains its run with the same `fpt train` subprocess as a local sweep, in the directory
the sweep was started from: that directory and --out must be on storage every node sees at the same
path, and every node needs fpt installed as here. A task whose worker or node is lost is retried
(`retries` times, by Ray) and resumes from the run's last checkpoint; the training of a lost worker
gets SIGTERM, checkpoints and stops. A run that fails in training is recorded with its error, as
locally, and the others go on.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fpt.errors import FPTError
from fpt.experiments.backends import POLL_S, Work, check_count, failed, import_extra

if TYPE_CHECKING:
    from fpt.experiments.progress import GridProgress
    from fpt.experiments.sweep import Run

RETRIES = 3  # Ray's own default for a task whose worker died
LOCAL_OBJECT_STORE = 100 * 2**20  # only small records travel through it (Ray's minimum is 75 MiB)


def _in_directory(work: Work, run: Run, directory: str) -> dict:
    """On the worker: train `run` from the sweep's own directory, so relative paths (--out, data,
    `from:` runs) mean what they mean to the driver."""
    os.chdir(directory)
    return work(run)


class RayBackend:
    OPTIONS = ("address", "cpus_per_run", "gpus_per_run")

    def __init__(
        self,
        address: str | None = None,
        cpus_per_run: int = 1,
        gpus_per_run: float = 0,
        jobs: int | None = None,
        retries: int = RETRIES,
    ):
        check_count("--cpus-per-run", cpus_per_run)
        check_count("--jobs", jobs, none=True)
        if isinstance(gpus_per_run, bool) or not isinstance(gpus_per_run, (int, float)) or not gpus_per_run >= 0:
            raise FPTError(
                f"--gpus-per-run must be a number of at least 0 (0.5: two runs share a GPU), got {gpus_per_run!r}."
            )
        if address is not None and not re.fullmatch(r"auto|(ray://)?[\w.\-\[\]:]+:\d+", address):
            raise FPTError(
                f"--address {address!r} is not a Ray cluster's address: give HOST:PORT of its head (as `ray start "
                "--head` printed it) or `auto` on a node of the cluster; leave it out for a local instance."
            )
        self.address, self.gpus, self.jobs, self.retries = address, gpus_per_run, jobs, retries
        self.threads = cpus_per_run
        self._ray = None  # the module, once connected
        self._started_here = False

    def describe(self) -> str:
        where = f"on the Ray cluster at {self.address}" if self.address else "on a local Ray instance"
        limit = f", at most {self.jobs} at a time" if self.jobs else ""
        return f"{where} ({self.threads} CPU, {self.gpus:g} GPU per run{limit})"

    def _connect(self):
        if self._ray is not None:
            return self._ray
        if self.address is None and "ray" not in sys.modules:
            # A local instance serves this machine alone: bound to loopback, as Ray does on macOS and
            # Windows, instead of the machine's network address (nothing outside can reach it), and
            # started without Ray's usage report (the user started no Ray); both can be set otherwise.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray = import_extra("ray", "ray", "ray")
        if not ray.is_initialized():
            local = {"include_dashboard": False, "object_store_memory": LOCAL_OBJECT_STORE}
            try:
                ray.init(
                    address=self.address or "local",
                    log_to_driver=False,  # each run's output is in its own log file
                    **({} if self.address else local),
                )
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise FPTError(
                    f"Cannot join the Ray cluster at {self.address} ({err}). Give the address `ray start --head` "
                    "printed (HOST:PORT, from a node of the cluster), or leave --address out for a local instance."
                ) from err
            self._started_here = True
        self._ray = ray
        return ray

    def _warn_unplaceable(self, ray, progress: GridProgress) -> None:
        """A run no node can hold waits for one to join: say so rather than look stuck."""
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        if not any(r.get("CPU", 0) >= self.threads and r.get("GPU", 0) >= self.gpus for r in nodes):
            progress.say(
                f"No node of the Ray cluster has {self.threads} CPU and {self.gpus:g} GPU free for a run now "
                f"(nodes: {[{k: v for k, v in r.items() if k in ('CPU', 'GPU')} for r in nodes]}); the runs wait "
                "until such a node joins (lower --cpus-per-run / --gpus-per-run, or add nodes)."
            )

    def run(self, runs: list[Run], work: Work, out: Path, progress: GridProgress) -> None:
        ray = self._connect()
        self._warn_unplaceable(ray, progress)
        task = ray.remote(_in_directory).options(
            num_cpus=self.threads, num_gpus=self.gpus, max_retries=self.retries, retry_exceptions=False
        )
        queue, here = list(runs), os.getcwd()
        pending: dict = {}  # ObjectRef -> Run
        try:
            while queue or pending:
                while queue and (self.jobs is None or len(pending) < self.jobs):
                    run = queue.pop(0)
                    pending[task.remote(work, run, here)] = run
                done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                for ref in done:
                    run = pending.pop(ref)
                    try:
                        record = ray.get(ref)
                    except ray.exceptions.RayError as err:  # lost beyond its retries, or the task itself broke
                        cause = getattr(err, "cause", None)
                        text = f"{type(cause).__name__}: {cause}" if cause else str(err).strip().splitlines()[0]
                        record = failed(run, out, f"Ray: {text}")
                    progress.ended(run.key, record)
                progress.tick()
        finally:
            for ref in pending:  # interrupted: stop the runs (they checkpoint; the next sweep resumes them)
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._ray is not None and self._started_here:
            self._ray.shutdown()
        self._ray, self._started_here = None, False

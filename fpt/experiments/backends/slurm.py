"""`--backend submitit`: the grid's runs as one SLURM array job, through submitit.

One `sbatch` per stage of the grid (`--array=0-N%JOBS`), each array task training one run exactly as a
local sweep does, from the directory the sweep was started from (which, with --out, must be on storage
the compute nodes see at the same path). `--partition`, `--time` and `--gpus-per-run` go to SLURM,
as do any `--slurm KEY=VALUE` (account, qos, constraint, ...). When SLURM warns a task of its time
limit or of preemption, the task asks its training to checkpoint and stop, and requeues itself; the
requeued task resumes the run. A task lost otherwise (node failure, out of memory) is recorded as
failed with where its output is; running the same command again resumes it.

`--submitit-cluster local` runs the same tasks as processes on this machine (submitit's local
executor, used by the tests), a few at a time, to try a grid before submitting it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fpt.errors import FPTError
from fpt.experiments.backends import POLL_S, Work, check_count, failed, import_extra

if TYPE_CHECKING:
    from fpt.experiments.progress import GridProgress
    from fpt.experiments.sweep import Run

CLUSTERS = ("slurm", "local")
STOP_WAIT_S = 60  # a training told to stop checkpoints within this (SLURM warns 90 s before the limit)


def minutes(time: str | int) -> int:
    """SLURM's time formats (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S) as whole minutes, rounded up."""
    text = str(time).strip()
    days, _, clock = text.rpartition("-")
    parts = clock.split(":")
    if (
        isinstance(time, bool)
        or not (days == "" or days.isdigit())
        or len(parts) > 3
        or not all(p.isdigit() for p in parts)
    ):
        raise FPTError(f"--time {time!r} is not a SLURM time: give MINUTES, H:MM:SS or D-HH:MM:SS (e.g. 240, 4:00:00).")
    numbers = [int(p) for p in parts]
    if days:
        hours, mins, secs = (numbers + [0, 0])[:3]
    else:
        hours, mins, secs = {1: (0, numbers[0], 0), 2: (0, *numbers), 3: tuple(numbers)}[len(numbers)]
    seconds = ((int(days or 0) * 24 + hours) * 60 + mins) * 60 + secs
    if seconds < 60:
        raise FPTError(f"--time {time!r} is under a minute; give each run time to train (e.g. --time 4:00:00).")
    return -(-seconds // 60)


class _TrainRun:
    """One array task: train `run` from the sweep's directory. submitit calls `checkpoint` on SLURM's
    warning (time limit, preemption) and requeues what it returns."""

    def __init__(self, work: Work, directory: str):
        self.work, self.directory = work, directory

    def __call__(self, run: Run) -> dict:
        os.chdir(self.directory)
        return self.work(run)

    def checkpoint(self, run: Run):
        from submitit.helpers import DelayedSubmission

        from fpt.experiments.sweep import stop_training

        stop_training(STOP_WAIT_S)  # the training checkpoints and stops; the requeued task resumes it
        return DelayedSubmission(self, run)


class SubmititBackend:
    OPTIONS = ("partition", "time", "cpus_per_run", "gpus_per_run", "slurm", "submitit_cluster")

    def __init__(
        self,
        partition: str | None = None,
        time: str | int = "4:00:00",
        cpus_per_run: int = 1,
        gpus_per_run: float = 0,
        jobs: int | None = None,
        slurm: dict[str, str] | None = None,
        submitit_cluster: str = "slurm",
    ):
        check_count("--cpus-per-run", cpus_per_run)
        check_count("--jobs", jobs, none=True)
        if isinstance(gpus_per_run, float) and gpus_per_run.is_integer():
            gpus_per_run = int(gpus_per_run)
        if isinstance(gpus_per_run, bool) or not isinstance(gpus_per_run, int) or gpus_per_run < 0:
            raise FPTError(
                f"--gpus-per-run must be a whole number of GPUs for SLURM (0 or more), got {gpus_per_run!r}."
            )
        if submitit_cluster not in CLUSTERS:
            raise FPTError(f"--submitit-cluster must be one of {', '.join(CLUSTERS)}, got {submitit_cluster!r}.")
        self.partition, self.time_min, self.gpus, self.jobs = partition, minutes(time), gpus_per_run, jobs
        self.slurm, self.cluster, self.threads = dict(slurm or {}), submitit_cluster, cpus_per_run

    def describe(self) -> str:
        where = f"partition {self.partition}" if self.partition else "the default partition"
        limit = f", at most {self.jobs} at a time" if self.jobs else ""
        if self.cluster == "local":
            return f"as submitit jobs on this machine ({self.threads} CPU per run{limit})"
        return (
            f"as a SLURM array job on {where} ({self.threads} CPU, {self.gpus} GPU, {self.time_min} min per run{limit})"
        )

    def _executor(self, out: Path):
        submitit = import_extra("submitit", "slurm", "submitit")
        executor = submitit.AutoExecutor(folder=out / "submitit" / "%j", cluster=self.cluster)
        executor.update_parameters(
            name="fpt-sweep",
            timeout_min=self.time_min,
            cpus_per_task=self.threads,
            gpus_per_node=self.gpus,
            tasks_per_node=1,
            nodes=1,
            slurm_partition=self.partition,
            slurm_array_parallelism=self.jobs or 256,  # submitit's own default
            slurm_additional_parameters=self.slurm or None,
        )
        return executor

    def run(self, runs: list[Run], work: Work, out: Path, progress: GridProgress) -> None:
        task = _TrainRun(work, os.getcwd())
        try:
            executor = self._executor(out)
            # SLURM: one array job (`--array=0-N%jobs`), SLURM keeps `jobs` running; local: submitted below
            pending = dict(zip(executor.map_array(task, runs), runs, strict=True)) if self.cluster == "slurm" else {}
        except (OSError, RuntimeError) as err:  # no SLURM commands here, or SLURM refused the job
            raise FPTError(
                f"SLURM did not take the array job ({str(err).strip()[-800:] or type(err).__name__}). Submit from a "
                "machine with SLURM's commands (a login node), check the --partition, --time and --slurm options, "
                "or try the grid here first with --submitit-cluster local."
            ) from err
        if pending:
            array = next(iter(pending)).job_id.split("_")[0]
            progress.say(f"Submitted SLURM array job {array} ({len(runs)} runs); files in {out / 'submitit'}")
        queue = [] if self.cluster == "slurm" else list(runs)  # local: processes here, `jobs` at a time
        window = self.jobs or max(1, (os.cpu_count() or 1) // self.threads)
        try:
            while queue or pending:
                while queue and len(pending) < window:
                    run = queue.pop(0)
                    pending[executor.submit(task, run)] = run
                for job in [j for j in pending if j.done()]:
                    run = pending.pop(job)
                    progress.ended(run.key, self._record(job, run, out))
                progress.tick()
                if pending:
                    time.sleep(POLL_S)
        finally:
            for job in pending:  # interrupted: cancel what is left (the runs checkpoint; the next sweep resumes)
                job.cancel(check=False)

    def close(self) -> None:
        pass

    @staticmethod
    def _record(job, run: Run, out: Path) -> dict:
        try:
            return job.result()
        except Exception as err:  # the task itself was lost (time limit, memory, node), not a training error
            lines = str(err).strip().splitlines() or [type(err).__name__]
            return failed(run, out, f"SLURM job {job.job_id}: {lines[0]} (its output: {job.paths.stderr})")

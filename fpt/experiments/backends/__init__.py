"""Where a sweep's runs train: threads on this machine, tasks on a Ray cluster, or SLURM array jobs.

Every backend trains each run the same way (`fpt.experiments.sweep._launch`: a normal `fpt train`
run directory under the sweep's --out, resumed where it stopped) and hands back the same record, so
the grid is tabulated identically whatever ran it. A backend gets the runs still to train and the
function that trains one, and reports each record to the grid's progress as the run ends.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

from fpt.errors import FPTError, install_hint

if TYPE_CHECKING:
    from fpt.experiments.progress import GridProgress
    from fpt.experiments.sweep import Run

Work = Callable[["Run"], dict]  # trains one run (picklable: a cluster ships it to the run's worker)
CLASSES = {  # imported when chosen: each cluster's module imports its extra only when it runs
    "local": ("fpt.experiments.backends.local", "LocalBackend"),
    "ray": ("fpt.experiments.backends.ray_cluster", "RayBackend"),
    "submitit": ("fpt.experiments.backends.slurm", "SubmititBackend"),
}
BACKENDS = tuple(CLASSES)
POLL_S = 2.0  # how often a backend checks on its runs (and the progress may print a heartbeat)


class Backend(Protocol):
    @property
    def threads(self) -> int:
        """CPU threads each run's `fpt train` uses."""
        ...

    @property
    def jobs(self) -> int | None:
        """Runs trained at once, where the backend fixes it (None: the cluster decides)."""
        ...

    def describe(self) -> str:
        """How the runs are trained, for the sweep's first line ("with 2 job(s)", "on Ray at ...")."""
        ...

    def run(self, runs: list[Run], work: Work, out: Path, progress: GridProgress) -> None:
        """Train `runs` (none finished yet) with `work`, reporting each record by `progress.ended` (and
        each start by `progress.started` where the backend sees it; the runs' markers say it otherwise)."""
        ...

    def close(self) -> None:
        """Let go of what the backend started (a local Ray instance); the sweep's runs are over."""
        ...


def import_extra(module: str, extra: str, backend: str) -> ModuleType:
    """`module`, or an error naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise FPTError(
            f"--backend {backend} needs the `{module}` package, which is not installed here ({err}). Install it "
            f"into this environment (on every node too) with {install_hint(extra, module)}."
        ) from err


def check_count(flag: str, value: object, none: bool = False) -> None:
    """`value` is a positive integer (or None where `none`), else an error naming `flag`."""
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FPTError(f"{flag} must be a positive integer, got {value!r}.")


def failed(run: Run, out: Path, error: str) -> dict:
    """The record of a run whose trainer itself was lost (not a training error, which its log gives)."""
    return {"key": run.key, "status": "failed", "error": error[:500], "log": str(out / "logs" / f"{run.key}.log")}


def make_backend(name: str = "local", jobs: int | None = None, **options) -> Backend:
    """The backend `name` (one of BACKENDS) with its options (see each backend's class)."""
    if name not in BACKENDS:
        raise FPTError(f"Unknown backend {name!r} (known: {', '.join(BACKENDS)}).")
    given = {k: v for k, v in options.items() if v is not None}
    module, class_name = CLASSES[name]
    cls = getattr(importlib.import_module(module), class_name)
    unknown = sorted(set(given) - set(cls.OPTIONS))
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise FPTError(
            f"{flags} {'does' if len(unknown) == 1 else 'do'} not apply to --backend {name} (its options: "
            f"{', '.join('--' + k.replace('_', '-') for k in cls.OPTIONS) or 'none but --jobs'})."
        )
    return cls(jobs=jobs, **given)

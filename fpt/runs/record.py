"""The run directory: config.yaml, metrics.jsonl, summary.json and checkpoints/, and `RunRecord`,
the typed view of a run's config.yaml that models, evaluation and prediction rebuild a run from.

This layer sits below both the models and the training loop (both read runs; neither imports the
other). Files are written whole to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fpt import yamlsafe
from fpt.errors import FPTError
from fpt.files import atomic_write
from fpt.importing import import_modules


def default_run_dir(task: str, model: str, init: str, seed: int) -> Path:
    """runs/TASK-MODEL-INIT-sSEED-TIME, numbered -2, -3... where runs started in the same second (a short
    run finishes within one) would otherwise share it and the second be refused."""
    safe = lambda s: "".join(c if c.isalnum() or c in "-." else "_" for c in s.split("/")[-1])[:40]
    base = Path("runs") / f"{task}-{safe(model)}-{safe(init)}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, number = base, 1
    while path.exists():
        number += 1
        path = base.with_name(f"{base.name}-{number}")
    return path


@dataclass(frozen=True)
class RunRecord:
    """A run's config.yaml: the run config's keys, the model config derived from the task, and the
    process layout and precision the run trained with."""

    path: Path
    config: dict[str, Any]  # the RunConfig keys (fpt.training.config)
    model: dict[str, Any]  # FPTConfig or LSTMConfig keys
    distributed: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] | None = None  # the fingerprint of the dataset files it read (fpt.data.fingerprint)

    @property
    def architecture(self) -> str:
        return str(self.model.get("architecture", "transformer"))

    @property
    def task(self) -> str:
        return str(self.config["task"])

    @property
    def precision(self) -> str:
        """The precision the run trained (and evaluated) in; fp32 for runs that predate the record."""
        return str(self.distributed.get("precision", "fp32"))

    def check_task(self, spec) -> None:
        """Refuse a task (its `TaskSpec`) whose shapes differ from those the run's model was built for:
        config.yaml's task_options (or the data) changed after training, so the checkpoint does not fit."""
        changed = [
            f"{key} {value!r} (the model has {self.model.get(key)!r})"
            for key, value in spec.model_fields().items()
            if key in self.model and self.model[key] != value
        ]
        if changed:
            raise FPTError(
                f"{self.path}/config.yaml no longer describes the task this run trained on: its task "
                f"{self.task!r} with task_options {self.config.get('task_options') or {}} now gives "
                f"{'; '.join(changed)}. config.yaml (or the dataset) was changed after training; restore it."
            )

    def task_kwargs(self, data_dir: str | None = None) -> dict[str, Any]:
        """Keyword arguments for `get_task(record.task, **kwargs)`: the run's options and data root."""
        root = data_dir or self.config.get("data_dir")
        return {**({"data_dir": root} if root else {}), **(self.config.get("task_options") or {})}


def read_run_record(run_dir: str | Path) -> RunRecord:
    """config.yaml of a run, after importing the modules it records (see fpt.plugins)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FPTError(f"{run_dir} is not a run directory: it has no config.yaml. Pass the --out of a `fpt train` run.")
    try:
        values = yamlsafe.load(path.read_bytes(), f"{path}")  # bytes: undecodable files raise a YAMLError too
    except FPTError as err:
        raise FPTError(f"{err} The run directory is damaged.") from err
    if not isinstance(values, dict) or not isinstance(values.get("model"), dict) or "task" not in values:
        raise FPTError(f"{path} has no `task` key or no `model` section; it was not written by `fpt train`.")
    import_modules(values.get("imports") or [], search_cwd=False)  # they register the run's task/backbone
    model, distributed, data = values.pop("model"), values.pop("distributed", None), values.pop("data", None)
    values.pop("fast_paths_applied", None)  # derived from the model; its fast_paths setting is in `model`
    distributed = distributed if isinstance(distributed, dict) else {}
    return RunRecord(Path(run_dir), values, model, distributed, data if isinstance(data, dict) else None)


def enclosing_run(path: str | Path) -> Path | None:
    """The run directory that `path` lies inside (not `path` itself), if any: nothing is ever written
    into another run's directory."""
    for parent in Path(path).resolve().parents:
        if (parent / "config.yaml").is_file() and (
            (parent / "checkpoints").is_dir() or (parent / "metrics.jsonl").is_file()
        ):
            return parent
    return None


def check_output_file(out: str | Path, suffixes: tuple[str, ...], writes: str, flag: str = "--out") -> Path:
    """`out` as a Path, or an FPTError before any work when it cannot take `writes` (e.g. "an HTML report")
    without harm: a name without one of `suffixes` (a run's config.yaml or summary.json among them), a
    directory, a place inside a run directory (its files stay as training left them), or no writable folder."""
    out = Path(out)
    if out.suffix.lower() not in suffixes:
        example = out.with_suffix(suffixes[0]).name if out.name else f"out{suffixes[0]}"
        raise FPTError(
            f"{flag} {str(out) if out.name else repr(str(out))}: this writes {writes}; give a file name ending in "
            f"{' or '.join(suffixes)} (e.g. {example})."
        )
    if out.is_dir():
        raise FPTError(f"{flag} {out} is a directory; give a file name ending in {suffixes[0]}.")
    if enclosing_run(out) is not None:
        raise FPTError(
            f"{flag} {out} lies inside the run directory {enclosing_run(out)}; write {writes} outside it, so the run's "
            "files stay as training left them."
        )
    parent = next((p for p in (out.parent, *out.parent.parents) if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise FPTError(f"{flag} {out}: {parent} is not a writable directory.")
    return out


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path, config: dict, model_config: dict) -> RunDir:
        run = cls(path)
        if (run.path / "config.yaml").exists():
            raise FPTError(f"{run.path} already holds a run; choose another --out so its results are not overwritten.")
        run.path.mkdir(parents=True, exist_ok=True)
        atomic_write(
            run.path / "config.yaml", yaml.safe_dump({**config, "model": model_config}, sort_keys=False).encode()
        )
        return run

    def append_metrics(self, record: dict) -> None:
        with open(self.path / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def truncate_metrics(self, step: int) -> None:
        """Drop metrics lines written after `step` (and any half-written line): a resume from `step`."""
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return
        kept = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
                kept.append(line + "\n")
        atomic_write(path, "".join(kept).encode())

    def write_summary(self, summary: dict) -> None:
        atomic_write(self.path / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of metrics.jsonl, oldest first (none for a run that has not evaluated yet); a run's
    kept evidence may hold it gzipped (fpt.experiments.evidence)."""
    path = Path(run_dir) / "metrics.jsonl"
    packed = path.with_name(path.name + ".gz")
    if path.is_file():
        text = path.read_text()
    elif packed.is_file():
        text = gzip.decompress(packed.read_bytes()).decode()
    else:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def read_summary(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_bytes())
    except ValueError as err:
        summary = err
    if not isinstance(summary, dict):
        raise FPTError(f"{path} is damaged ({summary!r:.100}); delete it to let the run be resumed or re-summarised.")
    return summary

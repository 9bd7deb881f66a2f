"""The run directory: config.yaml, metrics.jsonl, summary.json and checkpoints/.

Files are written whole to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import yaml

from fpt import yamlsafe
from fpt.errors import FPTError
from fpt.model.fpt import FPTConfig


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def default_run_dir(task: str, backbone: str, init: str, seed: int) -> Path:
    safe = lambda s: "".join(c if c.isalnum() or c in "-." else "_" for c in s.split("/")[-1])[:40]
    return Path("runs") / f"{task}-{safe(backbone)}-{safe(init)}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"


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

    def write_summary(self, summary: dict) -> None:
        atomic_write(self.path / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"


def read_run_config(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FPTError(f"{run_dir} is not a run directory: it has no config.yaml. Pass the --out of a `fpt train` run.")
    try:
        values = yamlsafe.load(path.read_bytes(), f"{path}")  # bytes: undecodable files raise a YAMLError too
    except FPTError as err:
        raise FPTError(f"{err} The run directory is damaged.") from err
    if not isinstance(values, dict) or not isinstance(values.get("model"), dict):
        raise FPTError(f"{path} has no `model` section; it was not written by `fpt train`.")
    return values


def read_model_config(run_dir: str | Path) -> FPTConfig:
    return FPTConfig.from_dict(read_run_config(run_dir)["model"])


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

"""A sweep's evidence, kept small enough to commit: what its table is rebuilt from.

Run directories hold checkpoints (megabytes to gigabytes) and live under the git-ignored runs/. A
recorded table keeps, per run, only what its cells, curves and choices come from: the resolved
config.yaml, summary.json, metrics.jsonl (the validation curve that chose the lr and the checkpoint)
and align.jsonl where the run aligned first; files above GZIP_ABOVE are gzipped. With the sweep's own
files (results, runs.jsonl, the lr-grid extensions, plots) beside them, `fpt sweep --tabulate-only`
and `fpt reproduce --tabulate-only` rebuild the table from the copy alone.

    python -m fpt.experiments.evidence SWEEP_DIR DEST      # e.g. runs/cpu-main benchmarks/results/reproduce-main-cpu
"""

from __future__ import annotations

import gzip
import os
import shutil
import sys
from pathlib import Path

from fpt.errors import FPTError
from fpt.experiments.lr_grid import RECORD

RUN_FILES = ("config.yaml", "summary.json", "metrics.jsonl", "align.jsonl")
SWEEP_FILES = ("results.md", "results.csv", "runs.jsonl", RECORD)
GZIP_ABOVE = 64 * 1024  # bytes; a 500-step curve evaluated every 25 steps is about 4 KB


def _copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.stat().st_size > GZIP_ABOVE:
        # mtime 0: the same file packs to the same bytes, so re-keeping an unchanged run changes nothing in git
        dest.with_name(dest.name + ".gz").write_bytes(gzip.compress(source.read_bytes(), mtime=0))
        dest.unlink(missing_ok=True)
    else:
        shutil.copyfile(source, dest)
        dest.with_name(dest.name + ".gz").unlink(missing_ok=True)


def run_dirs(sweep_dir: Path) -> list[Path]:
    """Every run directory (one with a summary.json) under `sweep_dir`/runs, following the links that
    share one table's runs with another (the init table's pretrained row is the main table's FPT row)."""
    found = []
    for root, dirs, files in os.walk(sweep_dir / "runs", followlinks=True):
        dirs.sort()
        if "summary.json" in files:
            found.append(Path(root))
            dirs.clear()  # checkpoints/ below: never kept
    return found


def keep(sweep_dir: str | Path, dest: str | Path) -> int:
    """Copy the evidence of sweep `sweep_dir` (and of its pretraining stage) to `dest`; return the number
    of runs kept. Links are copied as files, so `dest` stands alone."""
    sweep_dir, dest = Path(sweep_dir), Path(dest)
    if not (sweep_dir / "runs").is_dir():
        raise FPTError(f"{sweep_dir} holds no runs/ directory: pass the --out of an `fpt sweep` or `fpt reproduce`.")
    kept = 0
    for stage in (sweep_dir, sweep_dir / "pretrain"):
        target = dest if stage == sweep_dir else dest / "pretrain"
        if not (stage / "runs").is_dir():
            continue
        for run in run_dirs(stage):
            for name in RUN_FILES:
                if (run / name).is_file():
                    _copy(run / name, target / run.relative_to(stage) / name)
            kept += 1
        for name in SWEEP_FILES:
            if (stage / name).is_file():
                _copy(stage / name, target / name)
        if (stage / "plots").is_dir():
            shutil.copytree(stage / "plots", target / "plots", dirs_exist_ok=True)
    return kept


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    try:
        print(f"Kept the evidence of {keep(*argv)} runs in {argv[1]}")
    except FPTError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

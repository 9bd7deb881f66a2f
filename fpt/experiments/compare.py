"""Compare finished runs side by side: a table and one plot of their validation curves (`fpt compare`).

Reads only the run directories' files (config.yaml, summary.json, metrics.jsonl), so it starts in
well under a second and works on runs from other machines. Arguments may be run directories, globs
of them, or sweep directories (every run below).
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from pathlib import Path

from fpt.errors import FPTError
from fpt.tasks.outputs import selection_of
from fpt.yamlsafe import read_yaml_mapping

COLUMNS = (
    ("run", "run"),
    ("task", "task"),
    ("backbone", "backbone"),
    ("init", "init"),
    ("policy", "train"),
    ("steps", "steps"),
    ("status", "status"),
    ("test accuracy", "test_accuracy"),
    ("best val", "best_val_accuracy"),
    ("trainable params", "trainable_params"),
    ("wall s", "wall_seconds"),
)
# The metric columns of a kind other than classification, put where the accuracy columns stand.
METRIC_COLUMNS = {"mse": (("test mse", "test_mse"), ("test mae", "test_mae"), ("best val mse", "best_val_mse"))}


def columns(runs: list[RunInfo]) -> tuple[tuple[str, str], ...]:
    """The table's columns for `runs`: each output kind's own metrics (classification's accuracy
    columns, regression's MSE and MAE), those of every kind among them, in COLUMNS' place."""
    metrics = dict.fromkeys(run.selection_metric for run in runs)
    accuracy = COLUMNS[7:9] if "accuracy" in metrics or not metrics else ()
    others = tuple(column for metric in metrics for column in METRIC_COLUMNS.get(metric, ()))
    return COLUMNS[:7] + accuracy + others + COLUMNS[9:]


@dataclass
class RunInfo:
    """What a run directory records, read without building its model."""

    path: Path
    config: dict
    summary: dict
    metrics: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def selection_metric(self) -> str:
        """The metric that selects this run's best checkpoint: its summary's, else (a run still going, or
        one from before output kinds) the one its validation records hold."""
        if self.summary:
            return selection_of(self.summary).metric
        recorded = [k[4:] for record in self.metrics[:1] for k in record if k.startswith("val_")]
        return recorded[0] if recorded else "accuracy"

    def row(self, shown: tuple[tuple[str, str], ...] = COLUMNS) -> dict:
        values = {**self.config, **self.summary, "run": self.name}
        return {label: values.get(key) for label, key in shown}


def _read_json_lines(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill: the rest of the file is still good
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def read_run(path: str | Path) -> RunInfo:
    """The config, summary (empty while a run is going) and metrics of run directory `path`."""
    path = Path(path)
    config = read_yaml_mapping(path / "config.yaml", "run config", "run config keys")
    try:
        summary = json.loads((path / "summary.json").read_bytes()) if (path / "summary.json").is_file() else {}
    except (OSError, ValueError) as err:
        raise FPTError(f"{path}/summary.json cannot be read ({err}); the run directory is damaged.") from err
    if not isinstance(summary, dict):
        raise FPTError(f"{path}/summary.json is not a mapping; it was not written by `fpt train`.")
    return RunInfo(path, config, summary, _read_json_lines(path / "metrics.jsonl"))


def find_runs(arguments: list[str]) -> list[Path]:
    """Run directories named by `arguments`: directories, globs, or sweep directories (all runs below)."""
    found: list[Path] = []
    for argument in arguments:
        matches = sorted(glob.glob(argument, recursive=True)) if glob.has_magic(argument) else [argument]
        paths = [Path(m) for m in matches if Path(m).is_dir()]
        if not paths:
            raise FPTError(
                f"{argument!r} matches no directory; pass run directories (written by `fpt train`) or globs."
            )
        for path in paths:
            if (path / "config.yaml").is_file():
                found.append(path)
            else:
                below = sorted(p.parent for p in path.rglob("config.yaml"))
                if not below:
                    raise FPTError(f"{path} is neither a run directory (no config.yaml) nor a directory holding runs.")
                found.extend(below)
    return list(dict.fromkeys(found))


def cell_text(label: str, value) -> str:
    """A table cell: accuracies to 4 places, seconds to 1, counts with separators; mappings and lists as
    `key: value` and comma-separated items (never Python's repr)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}" if label in ("wall s", "wall_seconds") else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {cell_text(str(key), item)}" for key, item in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell_text(label, item) for item in value) or "-"
    return str(value)


def units_per_example(run: RunInfo) -> int | None:
    """Output units per example from the run's model config (None when it does not say): with one, exact
    match is the accuracy again and is not shown twice."""
    model = run.config.get("model") or {}
    units = [model.get("output_tokens"), model.get("outputs_per_token", 1)]
    return units[0] * units[1] if all(isinstance(u, int) for u in units) else None


def table(runs: list[RunInfo], style: str = "text") -> str:
    """The comparison table as aligned text, markdown or CSV."""
    shown = columns(runs)
    rows = [run.row(shown) for run in runs]
    labels = [label for label, _ in shown]
    if style == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, labels)
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    cells = [[cell_text(label, row[label]) for label in labels] for row in rows]
    if style == "markdown":
        lines = ["| " + " | ".join(labels) + " |", "|" + "---|" * len(labels)]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])
    widths = [max(len(x) for x in column) for column in zip(labels, *cells, strict=False)]
    rows_text = ("  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)).rstrip() for line in [labels, *cells])
    return "\n".join(rows_text)


def short_labels(runs: list[RunInfo]) -> list[str]:
    """Legend labels: the part of each run's path that differs from the others'."""
    parts = [run.path.resolve().parts for run in runs]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    return ["/".join(p[common:]) for p in parts]


def plot_curves(runs: list[RunInfo], metric: str, out, title: str | None = None) -> None:
    """One figure: `metric` (from metrics.jsonl) against step, one line per run, saved as PNG to `out`
    (a path or a binary file object)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    known = sorted({k for run in runs for record in run.metrics for k in record} - {"step"})
    if not any(metric in record for run in runs for record in run.metrics):
        raise FPTError(
            f"No run records {metric!r} in its metrics.jsonl; recorded metrics: {', '.join(known) or 'none'}."
        )
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for run, label in zip(runs, short_labels(runs), strict=True):
        points = [(r["step"], r[metric]) for r in run.metrics if isinstance(r.get(metric), (int, float))]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=label)
    ax.set(title=title or f"{metric} vs step", xlabel="step", ylabel=metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    if isinstance(out, (str, Path)):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, format="png")
    plt.close(fig)

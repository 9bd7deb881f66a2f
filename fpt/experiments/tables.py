"""Aggregate a sweep's runs into results.csv / results.md (mean +- std over seeds, beside the paper).

Per (task, condition) the learning rate is chosen on validation (best mean `best_val_accuracy` over
seeds); the reported figure is the test accuracy of that learning rate's seeds, in percent.
Convergence: steps until validation accuracy first reaches 95% of its final value (metrics.jsonl).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from fpt.experiments.paper import NOTES, paper_value
from fpt.experiments.plots import plot_curves
from fpt.files import atomic_write
from fpt.runs.record import read_metrics

CONVERGENCE_FRACTION = 0.95


def steps_to_fraction(metrics: list[dict], fraction: float = CONVERGENCE_FRACTION) -> int | None:
    """First step whose validation accuracy reaches `fraction` of the final one (the last record's)."""
    if not metrics:
        return None
    target = fraction * metrics[-1]["val_accuracy"]
    return next(m["step"] for m in metrics if m["val_accuracy"] >= target)


@dataclass
class Cell:
    """One (task, condition): its chosen learning rate and the per-seed figures behind the mean."""

    task: str
    condition: str
    backbone: str
    lr: float | None
    lrs_tried: list[float]
    test: list[float] = field(default_factory=list)  # percent, one per finished seed at `lr`
    val: list[float] = field(default_factory=list)
    steps_to_95: list[int] = field(default_factory=list)
    run_dirs: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "key: error" over every lr
    paper: float | None = None

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.test) if self.test else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.test) if len(self.test) > 1 else None


def _mean(values: list) -> float | None:
    return statistics.fmean(values) if values else None


def aggregate(grid, records: list[dict]) -> list[Cell]:
    by_key = {r["key"]: r for r in records}
    cells = []
    for task in grid.tasks:
        for condition in grid.conditions:
            runs = [r for r in grid.runs if r.task == task and r.condition == condition]
            if not runs:
                continue
            lrs = sorted({r.lr for r in runs})
            finished = {
                lr: [
                    by_key[r.key]
                    for r in runs
                    if r.lr == lr and by_key[r.key].get("summary", {}).get("test_accuracy") is not None
                ]
                for lr in lrs
            }
            scored = {
                lr: _mean([rec["summary"]["best_val_accuracy"] for rec in recs])
                for lr, recs in finished.items()
                if recs
            }
            lr = max(scored, key=scored.get) if scored else None
            config = runs[0].config
            backbone = "lstm" if config.get("architecture") == "lstm" else config.get("backbone", "minilm")
            cell = Cell(
                task, condition, backbone, lr, lrs, paper=paper_value(grid.paper_table, runs[0].paper_row, task)
            )
            for rec in finished.get(lr, []):
                cell.test.append(100 * rec["summary"]["test_accuracy"])
                cell.val.append(100 * rec["summary"]["best_val_accuracy"])
                cell.run_dirs.append(rec["run_dir"])
                steps = steps_to_fraction(read_metrics(rec["run_dir"]))
                if steps is not None:
                    cell.steps_to_95.append(steps)
            for r in runs:
                rec = by_key[r.key]
                if rec["status"] == "failed" or rec.get("summary", {}).get("test_accuracy") is None:
                    cell.failed.append(f"{r.key}: {rec.get('error') or rec['status']}")
            cells.append(cell)
    return cells


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _steps(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def results_csv(cells: list[Cell]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "task",
            "condition",
            "backbone",
            "lr",
            "lrs_tried",
            "n_seeds",
            "n_failed",
            "mean",
            "std",
            "paper",
            "val_mean",
            "steps_to_95_mean",
            "steps_to_95_std",
            "run_dirs",
        ]
    )
    for c in cells:
        writer.writerow(
            [
                c.task,
                c.condition,
                c.backbone,
                c.lr if c.lr is not None else "",
                " ".join(f"{x:g}" for x in c.lrs_tried),
                len(c.test),
                len(c.failed),
                _round(c.mean),
                _round(c.std),
                "" if c.paper is None else c.paper,
                _round(_mean(c.val)),
                _round(_mean(c.steps_to_95)),
                _round(statistics.stdev(c.steps_to_95) if len(c.steps_to_95) > 1 else None),
                " ".join(c.run_dirs),
            ]
        )
    return buffer.getvalue()


def _round(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def results_markdown(grid, cells: list[Cell]) -> str:
    lines = [f"# {grid.name}", ""]
    lines += [f"- {note}" for note in grid.notes]
    if grid.paper_table in NOTES:
        lines.append(f"- {NOTES[grid.paper_table]}")
    lines += [
        "- Cells: test accuracy (%) on the full test split, mean ± sample std over seeds (n), at the learning rate "
        "chosen on validation per condition; `paper` is the paper's figure for the same row.",
        "",
    ]
    cell = {(c.task, c.condition): c for c in cells}
    header = ["condition"] + [h for t in grid.tasks for h in (t, f"{t} paper")]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for condition in grid.conditions:
        row = [condition]
        for task in grid.tasks:
            c = cell.get((task, condition))
            if c is None or not c.test:
                row += ["failed" if c is not None and c.failed else "–", _fmt(c.paper if c else None)]
                continue
            row += [f"{_fmt(c.mean)} ± {_fmt(c.std)} (n={len(c.test)})", _fmt(c.paper)]
        lines.append("| " + " | ".join(row) + " |")

    lines += [
        "",
        "## Details",
        "",
        "| task | condition | backbone | lr (chosen on val) | lrs tried | val mean | steps to 95% of final val | failed runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        steps = f"{_steps(_mean(c.steps_to_95))} ± {_steps(statistics.stdev(c.steps_to_95)) if len(c.steps_to_95) > 1 else '–'}"
        lines.append(
            f"| {c.task} | {c.condition} | {c.backbone} | {'' if c.lr is None else f'{c.lr:g}'} | "
            f"{', '.join(f'{x:g}' for x in c.lrs_tried)} | {_fmt(_mean(c.val))} | {steps} | {len(c.failed)} |"
        )

    if grid.ratio:
        lines += convergence_section(grid, cell)

    failures = [f for c in cells for f in c.failed]
    if failures:
        lines += ["", "## Failed runs", ""] + [f"- {f}" for f in failures]
    return "\n".join(lines) + "\n"


def steps_to_value(metrics: list[dict], target: float) -> int | None:
    """First step whose validation accuracy reaches `target`, or None if it never does."""
    return next((m["step"] for m in metrics if m["val_accuracy"] >= target), None)


def _steps_to_common_target(cell: Cell, target: float) -> tuple[float, bool]:
    """Mean steps over seeds to reach `target`, and whether it is only a lower bound (some seeds
    never got there: their budget's last step is counted)."""
    curves = [c for c in (read_metrics(d) for d in cell.run_dirs) if c]
    steps = [steps_to_value(c, target) for c in curves]
    return _mean([s if s is not None else c[-1]["step"] for s, c in zip(steps, curves, strict=False)]), None in steps


def convergence_section(grid, cell: dict) -> list[str]:
    """Steps to converge, numerator vs denominator condition (the paper: random vs pretrained).

    Two measures: each run's steps to 95% of its own final validation accuracy (the issue's
    definition), and steps to one common target, 95% of the denominator's mean final accuracy, which
    stays meaningful when the numerator never gets near the denominator's accuracy.
    """
    numerator, denominator = grid.ratio
    lines = [
        "",
        "## Convergence",
        "",
        f"Steps to reach {CONVERGENCE_FRACTION:.0%} of each run's own final validation accuracy, and to reach a common "
        f"target ({CONVERGENCE_FRACTION:.0%} of the {denominator} runs' mean final validation accuracy); mean over seeds. "
        "The paper's figures are its steps to converge.",
        "",
        f"| task | {numerator} final val % | {denominator} final val % | {numerator} steps (own) | "
        f"{denominator} steps (own) | ratio | common target % | {numerator} steps | {denominator} steps | ratio | "
        f"paper {numerator} | paper {denominator} | paper ratio |",
        "|" + "---|" * 13,
    ]
    for task in grid.tasks:
        num, den = cell.get((task, numerator)), cell.get((task, denominator))
        if num is None or den is None or not num.run_dirs or not den.run_dirs:
            continue
        a, b = _mean(num.steps_to_95), _mean(den.steps_to_95)
        target = CONVERGENCE_FRACTION * _final_val(den) / 100
        pa, pb = paper_value("convergence", numerator, task), paper_value("convergence", denominator, task)
        (ca, a_bound), (cb, b_bound) = _steps_to_common_target(num, target), _steps_to_common_target(den, target)
        common = "–" if b_bound else ("> " if a_bound else "") + _fmt(ca / cb, 2)
        lines.append(
            f"| {task} | {_fmt(_final_val(num))} | {_fmt(_final_val(den))} | {_steps(a)} | {_steps(b)} | "
            f"{_fmt(a / b if a and b else None, 2)} | {100 * target:.1f} | {'> ' if a_bound else ''}{_steps(ca)} | "
            f"{'> ' if b_bound else ''}{_steps(cb)} | {common} | {_steps(pa)} | {_steps(pb)} | "
            f"{_fmt(pa / pb if pa and pb else None, 1)} |"
        )
    lines += [
        "",
        "The own-final ratio only means something where both conditions end near the same accuracy (a run "
        "that stays near chance reaches 95% of its own final value at once); the common target does not have "
        "that problem; where some seeds never reach it within the budget, their last step is counted and the figure is a lower bound (`>`).",
    ]
    return lines


def _final_val(cell: Cell) -> float | None:
    finals = [read_metrics(d)[-1]["val_accuracy"] * 100 for d in cell.run_dirs if read_metrics(d)]
    return _mean(finals)


def write_results(grid, records: list[dict], out: Path) -> Path:
    """Write runs.jsonl, results.csv, results.md and plots/<task>.png under `out`."""
    cells = aggregate(grid, records)
    atomic_write(out / "runs.jsonl", "".join(json.dumps(r) + "\n" for r in records).encode())
    atomic_write(out / "results.csv", results_csv(cells).encode())
    markdown = results_markdown(grid, cells)
    plots = plot_curves(cells, out / "plots")
    if plots:
        markdown += "\n## Validation accuracy vs step\n\n" + "".join(f"![{p.stem}](plots/{p.name})\n" for p in plots)
    atomic_write(out / "results.md", markdown.encode())
    return out / "results.md"

"""Aggregate a sweep's runs into results.csv / results.md (mean +- std over seeds, beside the paper).

Per (task, condition) the learning rate is chosen on validation (best mean `best_val_accuracy` over
seeds, or over the grid's selection seeds when it has them); the reported figure is the test accuracy
of that learning rate's seeds, in percent.
Convergence: steps until validation accuracy first reaches 95% of its final value (metrics.jsonl).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from fpt.experiments.lr_grid import LIMIT
from fpt.experiments.paper import NOTES, REPORTED_ON_VAL, paper_value
from fpt.experiments.plots import plot_curves
from fpt.files import atomic_write
from fpt.runs.record import read_metrics
from fpt.tasks.outputs import selection_of, test_metric, val_metric

CONVERGENCE_FRACTION = 0.95


def steps_to_fraction(metrics: list[dict], fraction: float = CONVERGENCE_FRACTION) -> int | None:
    """First step whose validation accuracy reaches `fraction` of the final one (the last record's)."""
    if not metrics or "val_accuracy" not in metrics[-1]:  # a regression's error has no "95% of final"
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
    val: list[float] = field(default_factory=list)  # best validation accuracy (the checkpoint tested), percent
    seeds: list[int] = field(default_factory=list)
    steps_to_95: list[int] = field(default_factory=list)
    run_dirs: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "key: error" over every lr
    not_run: list[str] = field(default_factory=list)  # keys of runs the grid has and the sweep has not trained
    unfinished: dict[float, str] = field(default_factory=dict)  # lr -> "failed" or "not run": no selection score
    paper: float | None = None
    base_task: str = ""  # the registered task (a column may be a variant, e.g. ListOps with the paper tokenizer)
    precisions: list[str] = field(default_factory=list)  # each finished seed's autocast precision
    marks: list[str] = field(default_factory=list)  # what makes the cell differ from the paper's (see aggregate)
    extended: list[float] = field(default_factory=list)  # lrs added beyond the grid's edge (fpt.experiments.lr_grid)
    limit_hit: list[str] = field(default_factory=list)  # "up"/"down": the choice still at that edge after the limit
    constant: list[int] = field(default_factory=list)  # seeds whose test predictions are all one class
    val_by_lr: dict[float, float] = field(default_factory=dict)  # percent: what chose the lr (selection_scores)
    params: tuple[int, int] | None = None  # trained and total parameters (the first seed's summary)
    metric: str = "accuracy"  # the selection metric its figures are: accuracy in percent, or an error (mse)
    mae: list[float] = field(default_factory=list)  # regression: test MAE per seed, beside the MSE in `test`
    baselines: dict = field(default_factory=dict)  # {split: {name: {metric: value}}} (Task.baselines)

    @property
    def lower_is_better(self) -> bool:
        return self.metric != "accuracy"

    @property
    def on_val(self) -> bool:
        """Whether the paper's figure for this task is validation accuracy (ListOps, remote homology)."""
        return (self.base_task or self.task) in REPORTED_ON_VAL

    @property
    def mean(self) -> float | None:
        """Mean test accuracy: the headline figure of every task."""
        return _mean(self.test)

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.test) if len(self.test) > 1 else None

    @property
    def learned_nothing(self) -> bool:
        """Every seed predicted one class on the whole test split: its accuracy is that class's share."""
        return bool(self.test) and len(self.constant) == len(self.test)

    @property
    def precision(self) -> str:
        return "/".join(dict.fromkeys(self.precisions)) or "–"


def _mean(values: list) -> float | None:
    return statistics.fmean(values) if values else None


def _finished(record: dict | None) -> bool:
    return record is not None and test_metric(record.get("summary", {})) is not None


def _percent(summary: dict) -> float:
    """What a summary's metric is multiplied by in tables: accuracy in percent, errors as they are."""
    return 100.0 if selection_of(summary).metric == "accuracy" else 1.0


def chosen_lr(grid, task: str, condition: str, records: dict[str, dict] | list[dict]) -> float | None:
    """The lr with the best mean validation accuracy over the finished runs of (task, condition),
    counting only the grid's selection seeds when it has them (ties: the smaller lr); None when none finished."""
    means = selection_scores(grid, task, condition, records)
    by_key = records if isinstance(records, dict) else {r["key"]: r for r in records}
    finished = [by_key[r.key]["summary"] for r in grid.runs if r.task == task and _finished(by_key.get(r.key))]
    if not means:
        return None
    return cast(float, selection_of(finished[0]).best_of(means))  # first listed among ties: the smaller lr


def selection_scores(grid, task: str, condition: str, records: dict[str, dict] | list[dict]) -> dict[float, float]:
    """Per lr tried, ascending: the mean best validation accuracy (0-1) that chose among them (the
    selection seeds' where the grid has them)."""
    by_key = records if isinstance(records, dict) else {r["key"]: r for r in records}
    select = getattr(grid, "selection_seeds", None)
    scores: dict[float, list[float]] = {}
    for run in grid.runs:
        record = by_key.get(run.key)
        if (
            record is not None
            and run.task == task
            and run.condition == condition
            and (not select or run.seed in select)
            and _finished(record)
            and val_metric(record["summary"]) is not None
        ):
            scores.setdefault(run.lr, []).append(cast(float, val_metric(record["summary"])))
    return {lr: statistics.fmean(values) for lr, values in sorted(scores.items())}


def aggregate(grid, records: list[dict]) -> list[Cell]:
    by_key = {r["key"]: r for r in records}
    cells = []
    for task in grid.tasks:
        for condition in grid.conditions:
            runs = [r for r in grid.runs if r.task == task and r.condition == condition]
            if not runs:
                continue
            lr = chosen_lr(grid, task, condition, by_key)
            config = runs[0].config
            architecture = config.get("architecture", "transformer")
            backbone = architecture if architecture != "transformer" else config.get("backbone", "minilm")
            base = config.get("task", task)
            extension = getattr(grid, "extensions", {}).get((task, condition), {})
            scale = next((_percent(by_key[r.key]["summary"]) for r in runs if _finished(by_key.get(r.key))), 100.0)
            cell = Cell(
                task,
                condition,
                backbone,
                lr,
                sorted({r.lr for r in runs}),
                paper=paper_value(grid.paper_table, runs[0].paper_row, base),
                base_task=base,
                extended=sorted(extension.get("added", [])),
                limit_hit=list(extension.get("limit_hit", [])),
                val_by_lr={k: scale * v for k, v in selection_scores(grid, task, condition, by_key).items()},
            )
            for run in (r for r in runs if r.lr == lr and _finished(by_key.get(r.key))):
                _add_seed(cell, run.seed, by_key[run.key])
            for r in runs:
                rec = by_key.get(r.key, {"status": "not run"})
                if rec["status"] == "not run":  # a sweep still under way, or a row added after the recording
                    cell.not_run.append(r.key)
                    cell.unfinished.setdefault(r.lr, "not run")
                elif rec["status"] != "skipped" and not _finished(rec):
                    cell.failed.append(f"{r.key}: {rec.get('error') or rec['status']}")
                    cell.unfinished[r.lr] = "failed"
            cells.append(cell)
    return cells


def _add_seed(cell: Cell, seed: int, record: dict) -> None:
    summary = record["summary"]
    if cell.params is None and "trainable_params" in summary:
        cell.params = (summary["trainable_params"], summary.get("total_params", 0))
    cell.seeds.append(seed)
    scale, cell.metric = _percent(summary), selection_of(summary).metric
    cell.test.append(scale * cast(float, test_metric(summary)))  # finished: both are set
    cell.val.append(scale * cast(float, val_metric(summary)))
    if "test_mae" in summary:
        cell.mae.append(summary["test_mae"])
    cell.baselines = cell.baselines or summary.get("baselines", {})
    cell.run_dirs.append(record["run_dir"])
    cell.precisions.append(summary.get("precision", "?"))
    if summary.get("test_prediction_share") == 1.0:
        cell.constant.append(seed)
    for mark in _marks(summary):
        if mark not in cell.marks:
            cell.marks.append(mark)
    steps = steps_to_fraction(read_metrics(record["run_dir"]))
    if steps is not None:
        cell.steps_to_95.append(steps)


def _marks(summary: dict) -> list[str]:
    """What a run did that the paper's cell did not, as short labels for the table."""
    marks = []
    table = summary.get("position_table")
    if table:
        marks.append(f"position table interpolated {table['interpolated_from']}->{table['to']}")
    if summary.get("features_cached"):
        marks.append("cached features (backbone in eval mode: no dropout)")
    return marks


def cell_marks(cell: Cell) -> list[str]:
    """The cell's labels: its runs' marks, its grid's extension, seeds that predicted one class."""
    marks = list(cell.marks)
    if cell.extended:
        marks.append(f"lr grid extended to {', '.join(f'{lr:g}' for lr in cell.extended)}")
    for direction in cell.limit_hit:
        side = "top" if direction == "up" else "bottom"
        marks.append(f"lr still at the {side} of the grid after the extension limit")
    if cell.lr is not None and len(cell.lrs_tried) > 1 and not cell.limit_hit:
        edge = "top" if cell.lr == max(cell.lrs_tried) else "bottom" if cell.lr == min(cell.lrs_tried) else None
        if edge:  # a sweep run without the extension (or before it): the choice is not bracketed
            marks.append(f"lr at the {edge} of its grid, not extended")
    if cell.not_run:
        marks.append(f"{len(cell.not_run)} run(s) of its grid not run")
    if cell.constant and not cell.learned_nothing:
        marks.append(f"seed {', '.join(map(str, cell.constant))}: constant prediction")
    return marks


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _steps(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def _spread(values: list[float], digits: int = 1) -> str:
    return f"{_fmt(_mean(values), digits)} ± {_fmt(statistics.stdev(values) if len(values) > 1 else None, digits)}"


def _digits(cell: Cell) -> int:
    """Decimals a cell's figures are printed with: accuracy in percent to 0.1, errors (MSE) to 0.0001."""
    return 4 if cell.lower_is_better else 1


def baseline_rows(grid, cell: dict) -> list[str]:
    """Main-table rows of the tasks' baselines (Task.baselines, recorded in the runs' summaries): exact
    figures of one deterministic forecast each, test and val, in the same columns as the trained rows."""
    found: dict[str, dict] = {}
    for c in cell.values():
        for split, named in c.baselines.items():
            for name, scores in named.items():
                found.setdefault(name, {}).setdefault(c.task, {})[split] = scores
    lines = []
    for name, by_task in found.items():
        row = [f"baseline: {name}"]
        for task in grid.tasks:
            scores = by_task.get(task, {})
            test, val = scores.get("test"), scores.get("val")
            row += [
                "–" if test is None else f"{test['mse']:.4f} (MAE {test['mae']:.4f}; exact, no seed)",
                "–" if val is None else f"{val['mse']:.4f}",
                "–",
            ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


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
            "lrs_added",
            "n_seeds",
            "n_failed",
            "test_mean",
            "test_std",
            "val_mean",
            "val_std",
            "paper",
            "paper_split",
            "learned_nothing",
            "precision",
            "marks",
            "test_by_seed",
            "val_by_seed",
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
                " ".join(f"{x:g}" for x in c.extended),
                len(c.test),
                len(c.failed),
                _round(c.mean),
                _round(c.std),
                _round(_mean(c.val)),
                _round(statistics.stdev(c.val) if len(c.val) > 1 else None),
                "" if c.paper is None else c.paper,
                "val" if c.on_val else "test",
                c.learned_nothing,
                c.precision,
                "; ".join(cell_marks(c)),
                " ".join(f"{v:.4g}" for v in c.test),
                " ".join(f"{v:.4g}" for v in c.val),
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
    selection = (
        f"chosen on validation per condition on seed(s) {', '.join(map(str, grid.selection_seeds))} (the other seeds "
        "ran at that lr only)"
        if getattr(grid, "selection_seeds", None)
        else "chosen on validation per condition"
    )
    lines += [
        "- `test`: test accuracy (%) of the best-on-validation checkpoint (on all of the test split unless a note "
        f"above gives its size), mean ± sample std over seeds (n), at the learning rate {selection}, with the "
        "autocast precision the runs trained and evaluated in. `val`: that checkpoint's validation accuracy, on the "
        "split that also chose the lr and the checkpoint (so it flatters every cell). `paper`: the paper's figure "
        "for the same row, on the split it names.",
        f"- An lr chosen at the edge of its grid was not final: the grid was extended one step that way until the "
        f"choice was interior, at most {LIMIT} steps per direction; such cells say so. A cell whose every seed "
        "predicted one class on the whole test split is labelled `learned nothing (constant prediction)`: its "
        "accuracy is that class's share.",
    ]
    cell = {(c.task, c.condition): c for c in cells}
    on_val = {t for t in grid.tasks if any(c.on_val for c in cells if c.task == t)}
    if on_val:
        lines.append(
            f"- {', '.join(sorted(on_val))}: the paper's figure is on the validation split (ListOps: LRA's val; remote "
            "homology: TAPE's `valid`), so it compares with `val` more closely than with `test`; the paper's holdout "
            "figures for remote homology are TAPE's (Rao et al. 2019)."
        )
    lines += ["", *main_table(grid, cell), "", "## Details", "", *details_table(cells)]
    if grid.ratio:
        lines += convergence_section(grid, cell)
    failures = [f for c in cells for f in c.failed]
    if failures:
        lines += ["", "## Failed runs", ""] + [f"- {f}" for f in failures]
    return "\n".join(lines) + "\n"


def unfinished_state(cell: Cell | None) -> str:
    """What a cell without a finished seed shows: `failed`, `not run` (its sweep is under way, or the row
    was added to the grid after the recording), or `–` (no such cell)."""
    if cell is None:
        return "–"
    return "failed" if cell.failed else "not run" if cell.not_run else "–"


def main_table(grid, cell: dict) -> list[str]:
    """Per condition and task: test accuracy (the headline), validation beside it, and the paper's figure."""
    on_val = {t for t in grid.tasks if any(c.on_val for c in cell.values() if c.task == t)}
    header = ["condition"]
    for t in grid.tasks:
        header += [f"{t} test", f"{t} val", f"{t} paper (val)" if t in on_val else f"{t} paper"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for condition in grid.conditions:
        row = [condition]
        for task in grid.tasks:
            c = cell.get((task, condition))
            if c is None or not c.test:
                row += [unfinished_state(c), "–", _fmt(c.paper if c else None)]
                continue
            marks = "".join(f"; {m}" for m in cell_marks(c))
            label = "learned nothing (constant prediction): " if c.learned_nothing else ""
            mae = f"MAE {_spread(c.mae, 4)}; " if c.mae else ""
            figure = f"{label}{_spread(c.test, _digits(c))} ({mae}n={len(c.test)}, {c.precision}{marks})"
            row += [figure, _spread(c.val, _digits(c)), _fmt(c.paper)]
        lines.append("| " + " | ".join(row) + " |")
    return lines + baseline_rows(grid, cell)


def _params(params: tuple[int, int] | None) -> str:
    if params is None:
        return "–"
    return " / ".join(f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}" for n in params)


def _by_seed(seeds: list[int], values: list[float], digits: int = 2) -> str:
    return ", ".join(f"s{s} {v:.{digits}f}" for s, v in zip(seeds, values, strict=True))


def details_table(cells: list[Cell]) -> list[str]:
    """Per cell: the lr, the validation accuracy that chose it at each lr tried (`+` marks lrs added beyond
    the grid's edge; the selection seeds' mean where the grid has them), and every seed's figures."""
    lines = [
        "| task | condition | backbone | lr (chosen on val) | val % at each lr tried | test by seed | val by seed | "
        "steps to 95% of final val | trained / total parameters | failed runs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        steps = f"{_steps(_mean(c.steps_to_95))} ± {_steps(statistics.stdev(c.steps_to_95)) if len(c.steps_to_95) > 1 else '–'}"
        tried = ", ".join(
            f"{'+' if x in c.extended else ''}{x:g}: {_fmt(c.val_by_lr[x], _digits(c)) if x in c.val_by_lr else c.unfinished.get(x, '–')}"
            for x in c.lrs_tried
        )
        lines.append(
            f"| {c.task} | {c.condition} | {c.backbone} | {'' if c.lr is None else f'{c.lr:g}'} | {tried} | "
            f"{_by_seed(c.seeds, c.test, 5 if c.lower_is_better else 2)} | "
            f"{_by_seed(c.seeds, c.val, 5 if c.lower_is_better else 2)} | {steps} | {_params(c.params)} | {len(c.failed)} |"
        )
    return lines


def steps_to_value(metrics: list[dict], target: float) -> int | None:
    """First step whose validation accuracy reaches `target`, or None if it never does."""
    return next((m["step"] for m in metrics if m["val_accuracy"] >= target), None)


def _steps_to_common_target(cell: Cell, target: float) -> tuple[float | None, bool]:
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
        a, b, final = _mean(num.steps_to_95), _mean(den.steps_to_95), _final_val(den)
        if final is None:  # no evaluation recorded
            continue
        target = CONVERGENCE_FRACTION * final / 100
        pa, pb = paper_value("convergence", numerator, task), paper_value("convergence", denominator, task)
        (ca, a_bound), (cb, b_bound) = _steps_to_common_target(num, target), _steps_to_common_target(den, target)
        common = "–" if b_bound or ca is None or not cb else ("> " if a_bound else "") + _fmt(ca / cb, 2)
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

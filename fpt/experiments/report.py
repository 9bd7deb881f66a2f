"""A self-contained HTML report of a run or a sweep (`fpt report`): one file to mail, attach or archive.

A run's report has its summary, learning curves, freeze report and config; a sweep's has its results
table, its plots, notes, and a table of every run. Images are embedded as base64 PNG and the style is
inline, so the page needs nothing beside it.
"""

from __future__ import annotations

import base64
import csv
import glob
import html
import io
from pathlib import Path

import yaml

from fpt.errors import FPTError
from fpt.experiments.compare import (
    RunInfo,
    cell_text,
    columns,
    find_runs,
    plot_curves,
    read_run,
    short_labels,
    units_per_example,
)
from fpt.files import atomic_write
from fpt.runs.record import check_output_file

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 49%; border: 1px solid #eee; margin: 0.5em 0; vertical-align: top; }
"""


def _table(header: list[str], rows: list[list], css_class: str) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _image(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _figure(runs: list[RunInfo], metric: str, title: str) -> str:
    """`metric` vs step for `runs`, as an embedded image ('' when no run records it)."""
    if not any(metric in record for run in runs for record in run.metrics):
        return ""
    buffer = io.BytesIO()
    plot_curves(runs, metric, buffer, title)
    return _image(buffer.getvalue(), title)


def _freeze_report(run: RunInfo) -> str:
    """The run's freeze report: the saved text, else rebuilt from its model config (loads the backbone)."""
    saved = run.path / "freeze_report.txt"
    if saved.is_file():
        return saved.read_text()
    try:
        from fpt.model import load_run_model

        return load_run_model(run.path).freeze_report()
    except FPTError as err:
        return f"(not available: {err})"


def _page(title: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<section><h2>{html.escape(name)}</h2>{content}</section>" for name, content in sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def _shown(run: RunInfo) -> dict:
    """The run's summary as a report shows it: exact match left out where it repeats the accuracy."""
    repeated = units_per_example(run) == 1
    return {k: v for k, v in run.summary.items() if not (repeated and k.endswith("exact_match"))}


def _runs_table(runs: list[RunInfo]) -> str:
    """The comparison table of `runs` (fpt compare's columns), each named by the part of its path that differs."""
    shown = columns(runs)
    rows = [
        [label, *[cell_text(c, run.row(shown)[c]) for c, _ in shown[1:]]]
        for run, label in zip(runs, short_labels(runs), strict=True)
    ]
    return _table([c for c, _ in shown], rows, "runs")


def run_report(path: Path) -> str:
    run = read_run(path)
    summary = _shown(run)
    recorded = [k for record in run.metrics[:1] for k in record if k.startswith("val_")] or ["val_accuracy"]
    repeated = units_per_example(run) == 1  # exact match is the accuracy again
    metrics = (*(k for k in recorded if not (repeated and k == "val_exact_match")), "train_loss")
    curves = "".join(_figure([run], metric, f"{metric} vs step") for metric in metrics)
    config = {k: v for k, v in run.config.items() if k != "model"}
    sections = [
        (
            "Summary",
            _table(["key", "value"], [[k, cell_text(k, v)] for k, v in summary.items()], "summary")
            if summary
            else "<p>No summary.json yet: the run has not ended.</p>",
        ),
        ("Curves", curves or "<p>No evaluations recorded yet (metrics.jsonl is empty).</p>"),
        ("Freeze report", f"<pre>{html.escape(_freeze_report(run))}</pre>"),
        ("Config", f"<pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre>"),
        ("Model config", f"<pre>{html.escape(yaml.safe_dump(run.config.get('model', {}), sort_keys=False))}</pre>"),
    ]
    return _page(f"fpt run {path}", sections)


def sweep_report(path: Path) -> str:
    runs = [read_run(p) for p in find_runs([str(path / "runs")])] if (path / "runs").is_dir() else []
    sections = []
    results = path / "results.csv"
    if results.is_file():
        rows = list(csv.reader(io.StringIO(results.read_text())))
        header, body = rows[0], [[c for c in row] for row in rows[1:]]
        keep = [i for i, h in enumerate(header) if h != "run_dirs"]
        sections.append(
            ("Results", _table([header[i] for i in keep], [[row[i] for i in keep] for row in body], "results"))
        )
    plots = sorted((path / "plots").glob("*.png")) if (path / "plots").is_dir() else []
    if plots:
        sections.append(("Plots", "".join(_image(p.read_bytes(), p.stem) for p in plots)))
    if runs:
        sections.append(("Runs", _runs_table(runs)))
        metric = runs[0].selection_metric
        sections.append(("Validation curves", _figure(runs, f"val_{metric}", f"validation {metric} vs step")))
    notes = path / "results.md"
    if notes.is_file():
        sections.append(("results.md", f"<pre>{html.escape(notes.read_text())}</pre>"))
    if not sections:
        raise FPTError(f"{path} holds no sweep results yet (results.csv, plots/ or runs/); run `fpt sweep` first.")
    return _page(f"fpt sweep {path}", sections)


def runs_report(paths: list[Path]) -> str:
    """Several runs side by side: the comparison table, their curves in one plot each, every summary."""
    runs = [read_run(p) for p in paths]
    labels = short_labels(runs)
    metric = runs[0].selection_metric
    curves = _figure(runs, f"val_{metric}", f"validation {metric} vs step") + _figure(
        runs, "train_loss", "train loss vs step"
    )
    summaries = "".join(
        f"<h3>{html.escape(label)}</h3>"
        + (
            _table(["key", "value"], [[k, cell_text(k, v)] for k, v in _shown(run).items()], "summary")
            if run.summary
            else "<p>No summary.json yet: the run has not ended.</p>"
        )
        for run, label in zip(runs, labels, strict=True)
    )
    sections = [
        ("Runs", _runs_table(runs)),
        ("Curves", curves or "<p>No evaluations recorded yet.</p>"),
        ("Summaries", summaries),
    ]
    return _page(f"fpt runs: {', '.join(labels)}", sections)


def write_report(sources: str | Path | list, out: str | Path) -> Path:
    """Write the HTML report of `sources` to `out`: one run or sweep directory, or several runs (run
    directories, globs or sweep directories, as `fpt compare` takes them) side by side."""
    out = check_output_file(out, (".html", ".htm"), "an HTML report")
    names = [str(s) for s in sources] if isinstance(sources, list) else [str(sources)]
    if len(names) > 1 or glob.has_magic(names[0]):
        text = runs_report(find_runs(names))
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, text.encode())
        return out
    source = Path(names[0])
    if (source / "config.yaml").is_file():
        text = run_report(source)
    elif (source / "results.csv").is_file() or (source / "runs.jsonl").is_file():
        text = sweep_report(source)
    else:
        raise FPTError(
            f"{source} is neither a run directory (config.yaml) nor a sweep directory (results.csv); pass the "
            "--out of `fpt train`, `fpt sweep` or `fpt reproduce`."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, text.encode())
    return out

"""A sweep's kept evidence: small, checkpoint-free, and enough to rebuild its table exactly."""

from __future__ import annotations

import json

import pytest

from fpt import FPTError
from fpt.experiments import evidence
from fpt.experiments.sweep import collect, expand
from fpt.experiments.tables import aggregate, results_markdown
from fpt.runs.record import read_metrics

GRID = {
    "tasks": ["bit-xor"],
    "inits": ["pretrained", "random"],
    "lrs": [1e-4, 1e-3],
    "seeds": [0, 1],
    "selection_seeds": 1,
    "paper_table": "init",
}


def _run(path, val, test, curve_length=3):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text("task: bit-xor\n")
    (path / "summary.json").write_text(
        json.dumps(
            {"status": "finished", "best_val_accuracy": val, "test_accuracy": test, "test_prediction_share": 0.6}
        )
    )
    (path / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "val_accuracy": val, "pad": "x" * 200}) + "\n" for s in range(curve_length))
    )
    (path / "checkpoints" / "best").mkdir(parents=True)
    (path / "checkpoints" / "best" / "trained.safetensors").write_bytes(b"0" * 1000)


def test_kept_evidence_rebuilds_the_table_without_checkpoints(tmp_path):
    sweep_dir, kept = tmp_path / "sweep", tmp_path / "kept"
    grid = expand(GRID)
    for run in grid.runs:
        if run.seed == 0 or run.lr == 1e-3:  # seed 1 ran at the chosen lr only
            _run(sweep_dir / "runs" / run.key, 0.5 + run.lr * 100, 0.4 + run.lr * 100 + run.seed / 100, 400)
    before = results_markdown(grid, aggregate(grid, collect(grid, sweep_dir)))

    assert evidence.keep(sweep_dir, kept) == 6
    assert not list(kept.rglob("checkpoints")) and not list(kept.rglob("*.safetensors"))
    run = kept / "runs" / "bit-xor" / "pretrained" / "lr0.001" / "s0"
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "metrics.jsonl.gz", "summary.json"]  # curve > 64 KB
    assert len(read_metrics(run)) == 400
    again = expand(GRID)
    records = collect(again, kept)
    assert [r["status"] for r in records].count("skipped") == 2  # seed 1 at the lr seed 0 did not choose
    assert results_markdown(again, aggregate(again, records)) == before.replace(str(sweep_dir), str(kept))


def test_a_sweep_under_way_is_tabulated_as_such(tmp_path):
    """Runs the grid has and the sweep has not trained yet are `not run`, not failures."""
    grid = expand(GRID)
    for run in grid.runs:
        if run.condition == "pretrained" and run.seed == 0 and run.lr == 1e-3:
            _run(tmp_path / "runs" / run.key, 0.6, 0.5)
    markdown = results_markdown(grid, aggregate(grid, collect(grid, tmp_path)))
    assert "| random | not run | – |" in markdown and "Failed runs" not in markdown
    assert "2 run(s) of its grid not run" in markdown  # pretrained: lr 1e-4 on seed 0, seed 1 at 1e-3
    assert "| bit-xor | pretrained | minilm | 0.001 | 0.0001: not run, 0.001: 60.0 |" in markdown


def test_keep_refuses_a_folder_that_is_not_a_sweep(tmp_path):
    with pytest.raises(FPTError, match="no runs/ directory"):
        evidence.keep(tmp_path, tmp_path / "kept")
    with pytest.raises(FPTError, match="does not exist"):
        collect(expand(GRID), tmp_path / "missing")


def test_a_documented_table_is_found_and_rebuilt_from_its_command(tmp_path):
    import yaml

    from fpt.experiments.rebuild import documented_tables, rebuild

    grid = expand(GRID)
    for run in grid.runs:
        if run.seed == 0 or run.lr == 1e-3:
            _run(tmp_path / "kept" / "runs" / run.key, 0.5 + run.lr * 100, 0.4 + run.lr * 100 + run.seed / 100)
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(GRID))
    command = "fpt sweep grid.yaml --out kept"
    rebuilt = rebuild(command, tmp_path)
    # the evidence has no extension of the grid past 1e-3 (a sweep before lr_grid): the table says so
    assert rebuilt.parts["main"][2] == (
        "| pretrained | 50.5 ± 0.7 (n=2, ?; lr at the top of its grid, not extended) | 60.0 ± 0.0 | 100.0 |"
    )
    docs = f"Some prose.\n\n<!-- rebuilt: {command} | details -->\n" + "\n".join(rebuilt.parts["details"]) + "\n\nMore."
    ((found_command, part, lines, number),) = documented_tables(docs)
    assert (found_command, part, lines, number) == (command, "details", rebuilt.parts["details"], 3)
    with pytest.raises(FPTError, match="with --out"):
        rebuild("fpt sweep grid.yaml", tmp_path)
    # a placeholder, or a stale table, is replaced by the rebuilt lines; the prose stays
    from fpt.experiments.rebuild import fill

    stale = docs.replace(rebuilt.parts["details"][2], "| bit-xor | pretrained | old |")
    placeholder = f"Some prose.\n\n<!-- rebuilt: {command} | details -->\nTABLE\n\nMore."
    assert fill(stale, tmp_path) == fill(placeholder, tmp_path) == docs + "\n"

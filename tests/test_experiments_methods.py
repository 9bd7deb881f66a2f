"""`fpt reproduce methods`: the compared methods as one grid per budget, and the table of accuracy and
cost written from the runs' own files."""

from __future__ import annotations

import json

import pytest

from fpt.experiments.methods import BUDGETS, write_methods_table
from fpt.experiments.reproduce import build
from fpt.experiments.sweep import expand
from fpt.experiments.tables import write_results

LABELS = [
    "FPT",
    "output only",
    "full fine-tuning",
    "LN-tuning",
    "LoRA",
    "FPT+LoRA",
    "IA3",
    "prompt tuning",
    "ORCA align + FPT",
    "ORCA align + full fine-tuning",
]


@pytest.mark.parametrize("budget", sorted(BUDGETS))
def test_every_budget_compares_the_ten_methods_with_their_own_lr_grids(budget):
    pretrain, grid = build("methods", budget, tasks=["bit-xor", "bit-memory"], seeds=2)
    expanded = expand(grid)
    assert pretrain is None and expanded.conditions == LABELS
    runs = {r.condition: r for r in expanded.runs}
    assert runs["ORCA align + FPT"].config["align"] == "otdd" and runs["ORCA align + FPT"].config["train"] == "fpt"
    full_lrs = {r.lr for r in expanded.runs if r.condition == "full fine-tuning"}
    assert full_lrs == set(BUDGETS[budget].full_lrs) and max(full_lrs) < max(BUDGETS[budget].lrs)
    assert {r.seed for r in expanded.runs} == {0, 1}
    if budget == "cpu":  # lr chosen on seed 0's validation; seed 1 runs only at the chosen lr
        assert expanded.selection_seeds == [0] and len(BUDGETS[budget].lrs) == 3
        # trained to a plateau: stopped after 10 evaluations without a new best, or at the cap
        assert {(r.config["patience"], r.config["steps"]) for r in expanded.runs} == {(10, 3000)}


def _fake_run(
    run_dir, trainable: int, curve: list[float], align: dict | None = None, test_gap: float = 0.0, status="finished"
) -> dict:
    """A finished run's files as `fpt train` writes them (config.yaml, summary.json, metrics.jsonl); test
    accuracy is the last validation accuracy minus `test_gap`."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("target_accuracy: 1.0\n")
    metrics = [{"step": 10 * (i + 1), "val_accuracy": v, "samples_per_s": 20.0} for i, v in enumerate(curve)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    summary = {
        "status": status,
        "steps": 10 * len(curve),
        "best_step": 10 * (curve.index(max(curve)) + 1),
        "test_accuracy": curve[-1] - test_gap,
        "best_val_accuracy": max(curve),
        "trainable_params": trainable,
        "wall_seconds": 30.0,
        "align": align,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return {"status": "finished", "run_dir": str(run_dir), "summary": summary}


def test_the_table_gives_accuracy_parameters_steps_speed_and_alignment(tmp_path):
    grid = expand(build("methods", "smoke", tasks=["bit-xor"], seeds=2)[1])
    records = []
    for run in grid.runs:
        fast = run.condition == "FPT"
        curve = [0.6, 1.0] if fast else ([0.5, 0.6, 0.6, 0.6] if run.condition == "LoRA" else [0.5, 0.6, 0.7])
        status = "early-stopped" if fast or run.condition == "LoRA" else "finished"  # at 100%; at a plateau
        align = {"distance_before": 2.0, "distance_after": 1.0} if run.config.get("align") else None
        records.append(
            {
                "key": run.key,
                **_fake_run(tmp_path / "runs" / run.key, 1000 if fast else 50, curve, align, status=status),
            }
        )
    path = write_methods_table(grid, records, write_results(grid, records, tmp_path))
    rows = {line.split(" | ")[1]: line for line in path.read_text().splitlines() if line.startswith("| bit-xor |")}
    assert "| 100.0 ± 0.0 | 100.0, 100.0 | 100.0 ± 0.0 |" in rows["FPT"]
    assert "| 1,000 | 20/20 t, 20/20 t | 20 | 20.0 | 30 |" in rows["FPT"]
    assert "| 40/20 p, 40/20 p |" in rows["LoRA"] and "| 30/30 c, 30/30 c |" in rows["IA3"]
    assert "| > 40 |" in rows["LoRA"]  # never reached the common target (95% of FPT's final 100%)
    assert rows["ORCA align + FPT"].endswith("| 2 → 1 |") and rows["LoRA"].endswith("|  |")
    assert "common target: 95.0% val" in path.read_text()


def test_both_tables_lead_with_test_accuracy_on_listops(tmp_path):
    grid = expand(build("methods", "smoke", tasks=["listops"], seeds=2)[1])
    records = [
        {"key": run.key, **_fake_run(tmp_path / "runs" / run.key, 50, [0.2, 0.3, 0.4], test_gap=0.1)}
        for run in grid.runs
    ]
    text = write_methods_table(grid, records, write_results(grid, records, tmp_path)).read_text()
    main_fpt = next(line for line in text.splitlines() if line.startswith("| FPT |"))
    # ListOps' main table: test accuracy first, validation (the split the paper reports) beside it
    assert main_fpt.split(" | ")[1].startswith("30.0") and main_fpt.split(" | ")[2] == "40.0 ± 0.0"
    methods = text.partition("## Methods: accuracy and cost")[2]
    methods_fpt = next(line for line in methods.splitlines() if line.startswith("| listops | FPT |"))
    assert "| 30.0 ± 0.0 | 30.0, 30.0 | 40.0 ± 0.0 |" in methods_fpt


def test_a_method_without_runs_is_listed_as_not_run(tmp_path):
    """A row the grid has and the evidence lacks (a method registered after the recording, or a sweep under
    way) is said in the methods table, not dropped from it."""
    grid = expand(build("methods", "smoke", tasks=["bit-xor"], seeds=1)[1])
    records = [
        {"key": run.key, **_fake_run(tmp_path / "runs" / run.key, 50, [0.5, 1.0])}
        if run.condition != "prompt tuning"
        else {"key": run.key, "status": "not run", "error": "no finished run"}
        for run in grid.runs
    ]
    text = write_methods_table(grid, records, write_results(grid, records, tmp_path)).read_text()
    methods = text.partition("## Methods: accuracy and cost")[2].splitlines()
    rows = [line.split(" | ")[1] for line in methods if line.startswith("| bit-xor |")]
    assert rows[:-1] == LABELS  # every method, in the grid's order, then the common target
    assert "| bit-xor | prompt tuning | not run |" in text
    assert "| bit-xor | prompt tuning | minilm |  | 0.001: not run |" in text  # the details table

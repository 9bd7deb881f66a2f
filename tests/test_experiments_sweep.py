"""Sweeps: grid expansion and checks, lr choice on validation, tables, and a resumable end-to-end run."""

from __future__ import annotations

import csv
import json
import re

import pytest
import yaml

from fpt import FPTError
from fpt.experiments.sweep import expand, quick_look, sweep
from fpt.experiments.tables import aggregate, results_markdown, steps_to_fraction

TINY_XOR = {"n_bits": 2, "val_size": 16, "test_size": 16}


def test_product_of_axes_and_conditions():
    grid = expand(
        {
            "tasks": ["bit-xor", "bit-memory"],
            "inits": ["pretrained", "random"],
            "train": ["fpt", "output"],
            "lrs": [1e-3, 1e-4],
            "seeds": [0, 1, 2],
        }
    )
    assert len(grid.runs) == 2 * 2 * 2 * 2 * 3
    assert grid.conditions == ["pretrained/fpt", "pretrained/output", "random/fpt", "random/output"]
    grid = expand(
        {
            "tasks": ["bit-xor"],
            "seeds": [0],
            "lrs": [1e-3],
            "paper_table": "main",
            "conditions": [
                {"label": "FPT", "paper_row": "fpt"},
                {
                    "label": "LSTM",
                    "architecture": "lstm",
                    "init": "random",
                    "train": "all",
                    "lrs": [3e-4, 1e-4],
                    "paper_row": "lstm",
                },
            ],
        }
    )
    assert [(r.condition, r.lr) for r in grid.runs] == [("FPT", 1e-3), ("LSTM", 3e-4), ("LSTM", 1e-4)]
    assert grid.runs[1].config["architecture"] == "lstm"


def test_bad_grid_lists_every_problem_before_running(tmp_path):
    with pytest.raises(FPTError) as err:
        sweep(
            {
                "tasks": ["bit-xro"],
                "backbones": ["minilmm"],
                "inits": ["pretrianed"],
                "train": ["fpt+foo"],
                "lrs": [1e-3, "fast"],
                "conditions_typo": 1,
            },
            tmp_path / "sweep",
        )
    message = str(err.value)
    for name in ("bit-xro", "minilmm", "pretrianed", "fpt+foo", "'fast'", "conditions_typo"):
        assert name in message
    assert "6 problem(s)" in message and not (tmp_path / "sweep").exists()


def _fake_run(path, val, test, curve, **extra):
    path.mkdir(parents=True)
    (path / "summary.json").write_text(
        json.dumps(
            {"status": "finished", "best_val_accuracy": val, "test_accuracy": test, "precision": "bf16", **extra}
        )
    )
    (path / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": 10 * (i + 1), "val_accuracy": v}) + "\n" for i, v in enumerate(curve))
    )
    return {
        "key": str(path),
        "status": "finished",
        "run_dir": str(path),
        "summary": json.loads((path / "summary.json").read_text()),
    }


def test_lr_is_chosen_on_validation_and_test_is_reported(tmp_path):
    grid = expand(
        {
            "tasks": ["bit-xor"],
            "inits": ["pretrained", "random"],
            "lrs": [1e-3, 1e-4],
            "seeds": [0, 1],
            "paper_table": "init",
            "ratio": ["random", "pretrained"],
        }
    )
    scores = {  # (init, lr): per-seed (val, test); lr 1e-4 wins on validation for `pretrained` despite worse test
        ("pretrained", 1e-3): [(0.80, 0.99), (0.82, 0.99)],
        ("pretrained", 1e-4): [(0.90, 0.70), (0.92, 0.80)],
        ("random", 1e-3): [(0.60, 0.50), (0.60, 0.70)],
        ("random", 1e-4): [(0.50, 0.90), (0.50, 0.90)],
    }
    records = []
    for run in grid.runs:
        val, test = scores[(run.condition, run.lr)][run.seed]
        rec = _fake_run(tmp_path / run.key, val, test, [0.5, 0.8, val, val])
        records.append({**rec, "key": run.key})
    cells = {c.condition: c for c in aggregate(grid, records)}
    assert cells["pretrained"].lr == 1e-4 and cells["pretrained"].test == pytest.approx([70.0, 80.0])
    assert cells["pretrained"].mean == pytest.approx(75.0) and cells["pretrained"].std == pytest.approx(
        7.0711, abs=1e-3
    )
    assert cells["random"].lr == 1e-3 and cells["random"].paper == 100
    assert cells["pretrained"].steps_to_95 == [30, 30]
    markdown = results_markdown(grid, list(cells.values()))
    assert "| > 40 | 30 | > 1.33 |" in markdown  # random never reaches the common target
    # aggregated without running (no extension recorded), each choice is at an edge of its two-lr grid
    assert "75.0 ± 7.1 (n=2, bf16; lr at the bottom of its grid, not extended)" in markdown


def test_selection_seeds_choose_the_lr_and_the_other_seeds_run_only_there(tmp_path, monkeypatch):
    """With selection_seeds: 1, seed 0 tries every lr; seeds 1-2 run only at the lr seed 0 chose."""
    from fpt.experiments import sweep as sweep_module

    grid = expand(
        {"tasks": ["bit-xor"], "inits": ["pretrained"], "lrs": [1e-3, 1e-4], "seeds": [0, 1, 2], "selection_seeds": 1}
    )
    assert grid.selection_seeds == [0]
    val = {1e-3: 0.7, 1e-4: 0.9, 1e-5: 0.8}  # 1e-4 at the grid's lower edge: 1e-5 is tried, and brackets it
    launched = []

    def fake_launch(run, out, threads):
        launched.append((run.lr, run.seed))
        # seed 1 at lr 1e-3 would score best on validation: it must never be run, nor change the choice
        return {**_fake_run(out / run.key, val[run.lr], 0.5 + run.seed / 10, [0.5, val[run.lr]]), "key": run.key}

    monkeypatch.setattr(sweep_module, "_launch", fake_launch)
    records = sweep_module.run_grid(grid, tmp_path, log=lambda *a: None)
    assert sorted(launched) == [(1e-5, 0), (1e-4, 0), (1e-4, 1), (1e-4, 2), (1e-3, 0)]
    assert [r["status"] for r in records].count("skipped") == 4
    (cell,) = aggregate(grid, records)
    assert cell.lr == 1e-4 and cell.test == pytest.approx([50.0, 60.0, 70.0]) and not cell.failed
    assert "on seed(s) 0" in results_markdown(grid, [cell])
    with pytest.raises(FPTError, match="selection_seeds must be a positive integer"):
        expand({"tasks": ["bit-xor"], "selection_seeds": 0})


def test_cells_lead_with_test_accuracy_beside_validation_and_are_marked(tmp_path):
    """ListOps and homology figures in the paper are validation accuracy: the paper column says so, the
    headline stays test accuracy with validation beside it, and cells say what differs."""
    grid = expand(
        {
            "tasks": ["listops", "listops (paper tokenizer)"],
            "task_settings": {"listops (paper tokenizer)": {"task": "listops", "task_options": {"tokenizer": "paper"}}},
            "inits": ["pretrained"],
            "lrs": [1e-3],
            "paper_table": "init",
        }
    )
    assert {r.config["task"] for r in grid.runs} == {"listops"}
    assert {r.key.split("/")[0] for r in grid.runs} == {"listops", "listops__paper_tokenizer"}
    table = {"interpolated_from": 512, "to": 2001}
    records = [
        {
            **_fake_run(tmp_path / r.key, 0.40, 0.30, [0.4], position_table=table if r.task == "listops" else None),
            "key": r.key,
        }
        for r in grid.runs
    ]
    cells = {c.task: c for c in aggregate(grid, records)}
    # the headline is test accuracy (30.0), even where the paper's figure is on validation
    assert all(c.paper == 38.4 and c.mean == pytest.approx(30.0) for c in cells.values())
    markdown = results_markdown(grid, list(cells.values()))
    assert "| listops test | listops val | listops paper (val) |" in markdown
    assert (
        "| listops (paper tokenizer) test | listops (paper tokenizer) val | listops (paper tokenizer) paper (val) |"
        in markdown
    )
    assert "30.0 ± – (n=1, bf16; position table interpolated 512->2001) | 40.0 ± – | 38.4 |" in markdown
    assert markdown.count("position table interpolated") == 1  # only the column that stretched it


def test_steps_to_fraction_of_final_validation_accuracy():
    curve = [{"step": s, "val_accuracy": v} for s, v in ((50, 0.5), (100, 0.9), (150, 0.97), (200, 1.0))]
    assert steps_to_fraction(curve) == 150
    assert steps_to_fraction(curve[:2]) == 100
    assert steps_to_fraction([]) is None


@pytest.mark.slow
def test_sweep_runs_records_failures_and_resumes(tiny_gpt2, tmp_path):
    grid = {
        "name": "tiny",
        "tasks": ["bit-xor"],
        "seeds": [0],
        "lrs": [1e-3],
        "paper_table": "init",
        "settings": {"backbone": tiny_gpt2, "steps": 2, "eval_every": 1, "batch_size": 4, "task_options": TINY_XOR},
        "conditions": [{"label": "pretrained"}, {"label": "too deep", "layers": 5, "lrs": [1e-3]}],
    }
    out = tmp_path / "sweep"
    lines: list[str] = []
    sweep(grid, out, jobs=2, log=lines.append)
    rows = {r["condition"]: r for r in csv.DictReader(open(out / "results.csv"))}
    assert {"task", "condition", "n_seeds", "test_mean", "test_std", "val_mean", "paper"} <= set(rows["pretrained"])
    assert rows["pretrained"]["n_seeds"] == "1" and rows["pretrained"]["paper"] == "100"
    assert rows["pretrained"]["lr"] == "0.001"
    assert rows["too deep"]["n_seeds"] == "0" and rows["too deep"]["n_failed"] == "1"
    markdown = (out / "results.md").read_text()
    assert "from 1 to 2" in markdown  # the failed run's own error message
    assert (out / "plots" / "bit-xor.png").is_file()
    log = (out / "logs" / "bit-xor" / "pretrained" / "lr0.001" / "s0.log").read_text()
    assert "\r" not in log and [line[:8] for line in log.splitlines() if line.startswith("step ")] == [
        "step 1/2",
        "step 2/2",
    ]
    finished = out / "runs" / "bit-xor" / "pretrained" / "lr0.001" / "s0"
    summary = json.loads((finished / "summary.json").read_text())
    # what the test predictions were: the largest share of one predicted class, and of one answer
    assert 0.5 <= summary["test_prediction_share"] <= 1 and 0.5 <= summary["test_majority_share"] <= 1
    (finished / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))  # as if stopped
    lines.clear()
    sweep(grid, out, jobs=1, log=lines.append)
    assert "0 already finished, 2 to run" in lines[0]  # the interrupted run and the failed one again
    assert "4 training steps, 4 validation passes and 2 test pass(es) in all" in lines[0]  # the work, up front
    started = [line for line in lines if line.strip().startswith("started ")]
    assert len(started) == 2 and all("progress: " in line and line.endswith(".log)") for line in started)
    done = [line for line in lines if line.strip().startswith("[")]
    assert "left for 1 run(s) at this pace" in done[0] and "left" not in done[1]  # an ETA after each run
    resumed = json.loads((finished / "summary.json").read_text())
    assert resumed["status"] == "finished" and resumed["resumed_from_step"] == 2  # continued, not redone
    lines.clear()
    sweep({**grid, "conditions": grid["conditions"][:1]}, out, log=lines.append)
    assert "1 already finished, 0 to run" in lines[0]  # finished work is never redone
    grid["settings"]["steps"] = 3
    with pytest.raises(FPTError, match="other settings"):
        sweep(grid, out)

    # An interrupted run whose directory was made with other settings (a changed grid, a stale directory
    # written back) starts again under the grid's settings instead of resuming under its own.
    one = {**grid, "conditions": grid["conditions"][:1]}
    stale = tmp_path / "stale"
    sweep({**one, "settings": {**one["settings"], "task_options": {**TINY_XOR, "val_size": 9}}}, stale, log=print)
    run_dir = stale / "runs" / "bit-xor" / "pretrained" / "lr0.001" / "s0"
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    sweep(one, stale, log=print)
    redone = json.loads((run_dir / "summary.json").read_text())
    assert redone["status"] == "finished" and redone["resumed_from_step"] is None
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["task_options"]["val_size"] == TINY_XOR["val_size"]


def test_example_grid_shipped_with_fpt_is_valid():
    from fpt.experiments.sweep import load_grid

    grid = expand(load_grid("example"))  # shipped as package data
    assert len(grid.runs) == 24 and grid.ratio == ["random", "pretrained"]


def _quick_grid() -> dict:
    return {
        "tasks": ["bit-xor", "bit-memory"],
        "seeds": [0, 1, 2],
        "lrs": [1e-3, 1e-4],
        "inits": ["pretrained", "random"],
        "settings": {"steps": 500},
    }


def test_quick_look_shrinks_steps_and_runs_one_per_cell_first():
    grid = expand(_quick_grid())
    assert len(grid.runs) == 2 * 3 * 2 * 2
    quick = quick_look(grid, steps=7, max_runs=4)
    assert len(quick.runs) == 4 and all(r.config["steps"] == 7 for r in quick.runs)
    assert {(r.task, r.condition) for r in quick.runs} == {(t, c) for t in grid.tasks for c in grid.conditions}
    assert {(r.lr, r.seed) for r in quick.runs} == {(1e-3, 0)}  # the first lr and seed of every cell
    assert any("4 of 24 runs" in note for note in quick.notes) and any("7 steps" in note for note in quick.notes)
    assert quick_look(grid).runs == grid.runs and quick_look(grid, max_runs=100).runs == grid.runs
    with pytest.raises(FPTError, match="--max-runs must be a positive integer"):
        quick_look(grid, max_runs=0)


def test_sweep_list_writes_configs_and_prints_one_command_per_run(tmp_path, capsys):
    from fpt.cli import main

    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(_quick_grid()))
    assert main(["sweep", str(path), "--out", str(tmp_path / "sw"), "--list", "--max-runs", "3", "--steps", "9"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    key, command = lines[0].split("\t")
    assert key == "bit-xor/pretrained/lr0.001/s0" and command.startswith("fpt train --config ")
    config = yaml.safe_load(open(command.split()[-1]))
    assert config["steps"] == 9 and config["out"] == str(tmp_path / "sw" / "runs" / key)
    assert not (tmp_path / "sw" / "runs").exists()  # listed, not run


def test_lr_steps_continue_the_grids_spacing():
    from fpt.experiments.lr_grid import step_lr

    half_decades = [1e-4, 3e-4, 1e-3]
    assert [step_lr(half_decades, 1, k) for k in (1, 2, 3)] == [3e-3, 1e-2, 3e-2]
    assert [step_lr(half_decades, -1, k) for k in (1, 2)] == [3e-5, 1e-5]
    assert [step_lr([3e-4, 1e-3, 3e-3], 1, k) for k in (1, 2)] == [1e-2, 3e-2]
    assert step_lr([1e-3, 2e-3, 4e-3], 1, 1) == 8e-3  # off the 1-3 ladder: the grid's own ratio


def _extension_sweep(tmp_path, monkeypatch, val, grid_keys=None, log=lambda *a: None):
    """Run a one-cell grid (lrs 1e-4, 3e-4, 1e-3; seed 0 selects) with fake runs scoring `val(lr)`."""
    from fpt.experiments import sweep as sweep_module

    grid = expand(
        {"tasks": ["bit-xor"], "inits": ["pretrained"], "lrs": [1e-4, 3e-4, 1e-3], "seeds": [0, 1], **(grid_keys or {})}
    )
    launched = []

    def fake_launch(run, out, threads):
        launched.append((run.lr, run.seed))
        score = val(run.lr)
        if score is None:  # diverged: no test pass
            (out / run.key).mkdir(parents=True)
            (out / run.key / "summary.json").write_text(json.dumps({"status": "diverged", "test_accuracy": None}))
            return {"key": run.key, "status": "diverged", "run_dir": str(out / run.key), "summary": {}}
        return {**_fake_run(out / run.key, score, score, [score]), "key": run.key}

    monkeypatch.setattr(sweep_module, "_launch", fake_launch)
    records = sweep_module.run_grid(grid, tmp_path, log=log)
    return grid, records, launched


def test_a_choice_at_the_grids_edge_extends_the_grid_until_interior(tmp_path, monkeypatch):
    """The best lr is 3e-3, beyond the grid: the sweep adds 3e-3 then 1e-2 (worse), and reports 3e-3."""
    grid, records, launched = _extension_sweep(
        tmp_path, monkeypatch, {1e-4: 0.6, 3e-4: 0.7, 1e-3: 0.8, 3e-3: 0.9, 1e-2: 0.85}.get
    )
    assert sorted(lr for lr, seed in launched if seed == 0) == [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
    assert sorted(launched)[-2:] == [(1e-2, 0), (1e-2, 1)]  # no selection seeds: every seed runs every lr
    (cell,) = aggregate(grid, records)
    assert cell.lr == 3e-3 and cell.extended == [3e-3, 1e-2] and not cell.limit_hit
    saved = json.loads((tmp_path / "extensions.json").read_text())
    assert saved == [{"task": "bit-xor", "condition": "pretrained", "added": [3e-3, 1e-2], "limit_hit": []}]
    markdown = results_markdown(grid, [cell])
    assert "lr grid extended to 0.003, 0.01" in markdown
    assert "| 0.003 | 0.0001: 60.0, 0.0003: 70.0, 0.001: 80.0, +0.003: 90.0, +0.01: 85.0 |" in markdown
    # resumed (or rebuilt from the evidence), the grid comes back whole from extensions.json
    from fpt.experiments import lr_grid

    again = expand({"tasks": ["bit-xor"], "inits": ["pretrained"], "lrs": [1e-4, 3e-4, 1e-3], "seeds": [0, 1]})
    lr_grid.restore(again, tmp_path)
    assert [r.key for r in again.runs] == [r.key for r in grid.runs] and again.extensions == grid.extensions


def test_the_extension_stops_at_its_limit_and_a_diverged_lr_brackets_the_grid(tmp_path, monkeypatch):
    from fpt.experiments.lr_grid import LIMIT

    grid, records, launched = _extension_sweep(tmp_path / "a", monkeypatch, lambda lr: 0.5 + lr)  # ever better upward
    (cell,) = aggregate(grid, records)
    assert len(cell.extended) == LIMIT and cell.limit_hit == ["up"] and cell.lr == max(cell.extended)
    assert "lr still at the top of the grid after the extension limit" in results_markdown(grid, [cell])
    grid, records, launched = _extension_sweep(
        tmp_path / "b", monkeypatch, lambda lr: None if lr > 2e-3 else 0.5 + lr, {"selection_seeds": 1}
    )
    (cell,) = aggregate(grid, records)
    assert cell.lr == 1e-3 and cell.extended == [3e-3] and (3e-3, 1) not in launched


def test_progress_counts_every_seed_an_extension_adds(tmp_path, monkeypatch):
    """An extension adds its lr for every seed; the seeds that did not select train or are skipped later,
    so the counts' total grows by all of them (it grew by the selection seeds only: "[9/8] ... -1 waiting")."""
    lines = []
    scores = {1e-4: 0.6, 3e-4: 0.7, 1e-3: 0.8, 3e-3: 0.9, 1e-2: 0.85}
    grid, records, launched = _extension_sweep(
        tmp_path, monkeypatch, scores.get, {"selection_seeds": 1}, log=lambda line, *a: lines.append(str(line))
    )
    ended = [re.search(r"\[(\d+)/(\d+)\]", line).groups() for line in lines if re.search(r"\[\d+/\d+\]", line)]
    assert len(grid.runs) == 10 and len(launched) == 6  # seed 0 at five lrs, seed 1 at the chosen 3e-3
    assert ended[-1] == ("10", "10") and all(int(done) <= int(total) for done, total in ended)
    assert not [line for line in lines if re.search(r"-\d+ waiting", line)]


def test_the_pace_of_finished_runs_gives_the_time_left(monkeypatch):
    from fpt.experiments import progress

    now = [1000.0]
    monkeypatch.setattr(progress.time, "time", lambda: now[0])
    pace = progress.Pace(runs=5, jobs=2)
    now[0] += 60  # the first run took a minute
    assert pace.after(1000.0) == " in 0:01:00; about 0:02:00 left for 4 run(s) at this pace"  # 4 runs, 2 at a time
    now[0] += 120
    assert pace.after(1060.0) == " in 0:02:00; about 0:02:15 left for 3 run(s) at this pace"
    pace.runs = 3  # runs skipped as never to run (lr not chosen)
    assert pace.after(now[0] - 30) == " in 0:00:30"
    cluster = progress.Pace(runs=3, jobs=None)  # how many run at once is the cluster's: as many as run now
    assert cluster.after(now[0] - 60, at_once=2) == " in 0:01:00; about 0:01:00 left for 2 run(s) at this pace"


def test_a_grid_of_some_rows_keeps_the_extensions_the_other_rows_recorded(tmp_path):
    """`--rows` splits a table between invocations into one directory: saving one part's extensions must not
    drop the lrs the other part added (the whole table, tabulated later, would lose those runs)."""
    from fpt.experiments import lr_grid

    both = {"tasks": ["bit-xor"], "inits": ["pretrained", "random"], "lrs": [1e-4, 1e-3], "seeds": [0]}
    first = expand({**both, "inits": ["pretrained"]})
    first.extensions[("bit-xor", "pretrained")] = {"added": [3e-3], "limit_hit": []}
    lr_grid.save(first, tmp_path)
    second = expand({**both, "inits": ["random"]})
    lr_grid.restore(second, tmp_path)
    second.extensions[("bit-xor", "random")] = {"added": [3e-5], "limit_hit": []}
    lr_grid.save(second, tmp_path)
    whole = expand(both)
    lr_grid.restore(whole, tmp_path)
    assert whole.extensions == {
        ("bit-xor", "pretrained"): {"added": [3e-3], "limit_hit": []},
        ("bit-xor", "random"): {"added": [3e-5], "limit_hit": []},
    }
    assert sorted(r.lr for r in whole.runs) == [3e-5, 1e-4, 1e-4, 1e-3, 1e-3, 3e-3]

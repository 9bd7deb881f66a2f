"""Ready-made grids: every experiment builds at every budget, with the paper's rows and numbers."""

from __future__ import annotations

import pytest

from fpt import FPTError
from fpt.experiments.paper import paper_value
from fpt.experiments.reproduce import BUDGETS, EXPERIMENTS, build
from fpt.experiments.sweep import expand

BITS = ["bit-xor", "bit-memory"]


@pytest.mark.parametrize("budget", sorted(BUDGETS))
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_grid_passes_its_own_checks(experiment, budget, tmp_path):
    pretrain, grid = build(experiment, budget, tasks=BITS, seeds=2, out=tmp_path)
    pending = frozenset()
    if pretrain is not None:
        pending = frozenset(str(tmp_path / "pretrain" / "runs" / r.key) for r in expand(pretrain).runs)
    runs = expand(grid, pending).runs
    assert {r.seed for r in runs} == {0, 1} and {r.task for r in runs} == set(BITS)


def test_init_grid_has_the_papers_rows_and_a_bit_memory_backbone(tmp_path):
    pretrain, grid = build("init", "smoke", tasks=BITS, out=tmp_path)
    assert pretrain["settings"]["train"] == "all" and pretrain["settings"]["init"] == "random"
    expanded = expand(grid, frozenset(str(tmp_path / "pretrain" / "runs" / r.key) for r in expand(pretrain).runs))
    assert expanded.conditions == ["pretrained", "random", "stats", "bit-memory"]
    rows = {(r.condition, r.task): paper_value(expanded.paper_table, r.paper_row, r.task) for r in expanded.runs}
    assert rows[("random", "bit-memory")] == 75.8 and rows[("bit-memory", "bit-xor")] == 100
    assert all(r.config["init"].startswith("from:") for r in expanded.runs if r.condition == "bit-memory")
    assert any("stands in for the paper's GPT-2" in note for note in expanded.notes)


def test_main_grid_compares_fpt_full_transformer_and_lstms():
    _, grid = build("main", "paper", tasks=["bit-xor"])
    runs = {r.condition: r for r in expand(grid).runs}
    full = runs["full transformer, 3 layers"].config
    assert full["layers"] == 3 and full["train"] == "all" and full["init"] == "random"
    lstm = runs["LSTM (authors' cell), fully trained"]  # the faithful cell sits in the paper's LSTM row
    assert lstm.config["architecture"] == "lstm-paper" and lstm.lr == 3e-4 and lstm.paper_row == "lstm"
    strong = runs["LSTM, strong cell (not the paper's), fully trained"]
    assert strong.config["architecture"] == "lstm" and strong.paper_row == "none"
    assert runs["LSTM (authors' cell), frozen random"].config["train"] == "fpt"
    assert runs["FPT (frozen pretrained)"].config["backbone"] == "gpt2"


def test_paper_budget_uses_the_authors_settings():
    _, grid = build("main", "paper", tasks=["bit-memory", "listops", "listops (paper tokenizer)", "cifar10-lra"])
    runs = expand(grid).runs
    assert all(r.config["precision"] == "fp32" and r.config["feature_cache"] is False for r in runs)
    by_task = {r.task: r.config for r in runs}
    assert by_task["bit-memory"]["batch_size"] == 4 and by_task["listops"]["batch_size"] == 16
    assert by_task["cifar10-lra"]["task_options"] == {"augment": True}
    paper_listops = by_task["listops (paper tokenizer)"]
    assert paper_listops["task"] == "listops" and paper_listops["task_options"] == {"tokenizer": "paper"}
    assert any("LRA's own baseline did not augment" in n for n in grid["notes"])
    _, homology = build("main", "paper", tasks=["remote-homology"])
    lrs = {r.condition: r.lr for r in expand(homology).runs}
    assert lrs["FPT (frozen pretrained)"] == 1e-4 and lrs["LSTM (authors' cell), fully trained"] == 3e-4


def test_cpu_budget_chooses_the_lr_on_seed_0(tmp_path):
    _, grid = build("main", "cpu", tasks=["bit-xor"], out=tmp_path)
    expanded = expand(grid)
    assert expanded.selection_seeds == [0] and {r.seed for r in expanded.runs} == {0, 1, 2}
    assert {r.lr for r in expanded.runs} == {1e-4, 3e-4, 1e-3}
    assert expanded.conditions == [
        "FPT (frozen pretrained)",
        "full transformer, 3 layers",
        "LSTM (authors' cell), fully trained",
        "LSTM, strong cell (not the paper's), fully trained",
    ]
    assert {r.lr for r in expanded.runs if r.config.get("architecture") == "lstm-paper"} == {3e-4}
    pretrain, init = build("init", "cpu", tasks=["bit-xor"], out=tmp_path)
    assert [c["label"] for c in init["conditions"]] == ["pretrained", "random", "stats", "bit-memory"]
    assert pretrain is not None and pretrain["task_settings"]["bit-memory"]["steps"] == 200  # shortened
    _, ablation = build("ablation", "cpu", tasks=["bit-xor"], out=tmp_path)
    assert ablation["train"] == ["output", "output+norm", "output+norm+input", "fpt", "fpt+ff", "fpt+attention"]


def test_unknown_experiment_or_budget():
    with pytest.raises(FPTError, match="Did you mean 'init'"):
        build("inti")
    with pytest.raises(FPTError, match="budget"):
        build("init", "huge")


def test_default_tasks_are_the_papers_that_are_registered():
    from fpt.experiments.paper import TASKS
    from fpt.tasks import task_names

    _, grid = build("init")
    assert grid["tasks"] == [t for t in TASKS if t in task_names()] and "bit-xor" in grid["tasks"]


@pytest.mark.parametrize("installed", [True, False])
def test_size_comparison_has_a_gemma_row_where_installed(installed, monkeypatch):
    import fpt.experiments.reproduce as reproduce

    monkeypatch.setattr(reproduce, "_gemma_installed", lambda: installed)
    for budget in ("small", "paper"):
        _, grid = build("size", budget, tasks=["cifar10"])
        backbones = grid.get("backbones") or [c.get("backbone") for c in grid["conditions"]]
        assert ("gemma3-270m" in backbones) is installed


def test_reproduce_quick_look_overrides_steps_and_runs(tmp_path, monkeypatch):
    from fpt.experiments import reproduce as module

    grids = []

    def fake_run_grid(grid, out, jobs=1, log=print, backend=None):  # records what would run; every run "fails" at once
        grids.append(grid)
        return [{"key": r.key, "status": "failed", "error": "not run in this test"} for r in grid.runs]

    monkeypatch.setattr(module, "run_grid", fake_run_grid)
    module.reproduce("main", "smoke", tasks=BITS, seeds=2, out=tmp_path, steps=3, max_runs=2, log=lambda *a: None)
    (grid,) = grids
    assert len(grid.runs) == 2 and {r.config["steps"] for r in grid.runs} == {3}
    assert "Quick look" in (tmp_path / "results.md").read_text()


def test_rows_split_a_table_and_unknown_rows_are_refused(tmp_path):
    _, grid = build("main", "cpu", tasks=["bit-xor"], out=tmp_path, rows=["full", "fpt"])
    assert [c["label"] for c in grid["conditions"]] == ["FPT (frozen pretrained)", "full transformer, 3 layers"]
    pretrain, init = build("init", "cpu", tasks=["bit-xor"], out=tmp_path, rows=["random"])
    assert pretrain is None and [c["label"] for c in init["conditions"]] == ["random"]  # no Bit Memory stage
    with pytest.raises(FPTError, match="'lstm-frozen' is not a row of main in this budget; its rows are fpt, full"):
        build("main", "cpu", tasks=["bit-xor"], out=tmp_path, rows=["lstm-frozen"])  # left out by the cpu budget
    with pytest.raises(FPTError, match="has no named rows"):
        build("size", "cpu", out=tmp_path, rows=["fpt"])
    with pytest.raises(FPTError, match="'methods' has no named rows. Split its work with --tasks"):
        build("methods", "cpu", out=tmp_path, rows=["lora"])


def test_cli_rows_flag_reaches_the_grid(tmp_path, capsys):
    from fpt.cli import main

    argv = ["reproduce", "main", "--budget", "cpu", "--tasks", "bit-xor", "--out", str(tmp_path), "--rows"]
    assert main([*argv, "fpt,nope"]) == 2
    assert "'nope' is not a row of main" in capsys.readouterr().err


def test_cpu_budgets_read_the_reduced_listops_and_name_the_command_that_writes_it():
    """ListOps at LRA's lengths cannot run on a CPU: the cpu budgets read a shortened copy from runs/data-cpu,
    say so in the notes, and size the paper tokenizer's fixed length to it."""
    from fpt.experiments.methods import CPU_LISTOPS, methods_grid

    assert CPU_LISTOPS.data_dir == "runs/data-cpu"
    assert CPU_LISTOPS.settings["min_length"] < CPU_LISTOPS.settings["max_length"] < 500  # LRA's are 500-2000
    command = "fpt data generate listops --data-dir runs/data-cpu --train 20000 --val 500 --test 1000 --min-length 20"
    assert CPU_LISTOPS.command().startswith(command)
    _, grid = build("main", "cpu", tasks=["listops", "listops (paper tokenizer)"])
    runs = expand(grid).runs
    assert {r.config["data_dir"] for r in runs} == {"runs/data-cpu"}
    paper = {r.config["task_options"]["max_length"] for r in runs if r.task == "listops (paper tokenizer)"}
    assert paper == {CPU_LISTOPS.settings["max_length"]}
    assert any(command in note for note in grid["notes"]) and any("(the paper: 512)" in n for n in grid["notes"])
    methods = methods_grid("cpu", ["listops"])
    assert methods["task_settings"]["listops"]["data_dir"] == "runs/data-cpu"
    assert "data_dir" not in build("main", "paper", tasks=["listops"])[1]["task_settings"]["listops"]


@pytest.mark.parametrize("experiment", ["main", "methods"])
def test_a_missing_or_different_reduced_listops_stops_the_cpu_budget_before_any_run(experiment, tmp_path, monkeypatch):
    from fpt import data
    from fpt.experiments.methods import CPU_LISTOPS
    from fpt.experiments.reproduce import reproduce

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FPTError, match="not found in runs/data-cpu/listops") as err:
        reproduce(experiment, "cpu", tasks=["listops"], out="runs/out", log=lambda *_: None)
    assert f"`{CPU_LISTOPS.command()}`" in str(err.value)
    data.generate("listops", "runs/data-cpu", train=20, val=4, test=4, min_length=20, max_length=50)
    with pytest.raises(FPTError, match="made otherwise than this budget needs .train 20.") as err:
        reproduce(experiment, "cpu", tasks=["listops"], out="runs/out", log=lambda *_: None)
    assert f"`{CPU_LISTOPS.command()} --force`" in str(err.value)
    assert not (tmp_path / "runs" / "out").exists()

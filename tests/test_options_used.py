"""Options that would do nothing are refused, not recorded: only what the user gave counts (a default
is never "given"); a grid's shared setting goes to the runs that read it, and is checked before any run."""

from __future__ import annotations

import pytest
import yaml

from fpt import FPTError, RunConfig, train
from fpt.cli import main
from fpt.experiments.reproduce import build
from fpt.experiments.sweep import expand

QUIET = dict(progress=False, log=lambda *a: None)


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--train", "fpt", "--method-option", "rank=4"], "--method-option is read only by methods that add a tuner"),
        (["--method-option", "alpha=8"], "and --train fpt ignores it"),
        (["--train", "lora", "--method-option", "rank=8", "--align-steps", "5"], "--align-steps is read only by runs with --align"),
        (["--align-lr", "0.1"], "--align-lr is read only by runs with --align (mmd or otdd), and a run without --align ignores it"),
        (["--train", "ia3", "--method-option", "rank=4"], "Unknown option(s) rank for method 'ia3'; its options: targets"),
        (["--train", "lora", "--method-option", "targets=',,'"], "targets ',,' names no module"),
    ],
)  # fmt: skip
def test_an_option_the_method_ignores_is_refused(tmp_path, quiet_gpt2, capsys, flags, said):
    argv = ["train", "--backbone", quiet_gpt2, "--steps", "1", "--out", str(tmp_path / "run"), *flags]
    assert main(argv) == 2
    assert said in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_config_file_key_counts_as_given_and_defaults_do_not(tmp_path, quiet_gpt2, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("train: fpt\nalign_steps: 100\n")  # align_steps' default value, but written: given
    assert main(["train", "--config", str(path), "--backbone", quiet_gpt2, "--steps", "1"]) == 2
    assert "--align-steps is read only by runs with --align" in capsys.readouterr().err
    # nothing given: every default, including align_steps 100 and no method options, is fine for an fpt run
    run = tmp_path / "run"
    argv = ["train", "--backbone", quiet_gpt2, "--steps", "1", "--eval-every", "1", "--batch-size", "4"]
    assert main([*argv, "--task-option", "val_size=8", "--task-option", "test_size=8", "--out", str(run)]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["method_options"] == {}


def test_python_configs_count_values_other_than_the_default(tmp_path, quiet_gpt2):
    config = RunConfig(backbone=quiet_gpt2, train="fpt", method_options={"rank": 4}, steps=1, out=str(tmp_path / "a"))
    with pytest.raises(FPTError, match="--method-option is read only"):
        train(config, **QUIET)
    assert not (tmp_path / "a").exists()


def _grid(**keys) -> dict:
    return {"tasks": ["bit-xor"], "lrs": [1e-3], **keys}


def test_a_shared_setting_goes_to_the_runs_that_read_it(tiny_gpt2):
    grid = expand(_grid(train=["fpt", "lora"], settings={"backbone": tiny_gpt2, "method_options": {"rank": 4}}))
    ranks = {run.config["train"]: run.config.get("method_options") for run in grid.runs}
    assert ranks == {"fpt": None, "lora": {"rank": 4}}
    with pytest.raises(FPTError, match="method_options is set, and no run of the grid reads it"):
        expand(_grid(settings={"backbone": tiny_gpt2, "method_options": {"rank": 4}}))
    with pytest.raises(FPTError, match="condition 'b' sets align_steps, which its method ignores"):
        expand(_grid(conditions=[{"label": "b", "train": "fpt", "align_steps": 3}], settings={"backbone": tiny_gpt2}))


def test_a_grids_adapter_targets_are_checked_against_the_backbone_before_any_run(tiny_gpt2):
    conditions = [{"label": "a", "train": "lora", "method_options": {"targets": "c_attn,q_proj"}}]
    with pytest.raises(FPTError, match="Adapter targets q_proj: backbone .* has no module of that name.*c_attn"):
        expand(_grid(conditions=conditions, settings={"backbone": tiny_gpt2}))
    conditions[0]["method_options"] = {"targets": "c_attn"}
    assert len(expand(_grid(conditions=conditions, settings={"backbone": tiny_gpt2})).runs) == 1


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["main", "--rows", ""], "--rows names nothing"),
        (["main", "--tasks", " , "], "--tasks names nothing"),
        (["methods", "--seeds", "0"], "--seeds must be a positive number of seeds, got 0"),
        (["main", "--seeds", "-2"], "--seeds must be a positive number"),
    ],
)
def test_reproduce_refuses_empty_lists_and_zero_seeds(tmp_path, capsys, argv, said):
    assert main(["reproduce", *argv, "--out", str(tmp_path / "out")]) == 2
    assert said in capsys.readouterr().err and not (tmp_path / "out").exists()
    with pytest.raises(FPTError, match="--seeds must be"):
        build("methods", seeds=0)

"""Typed task options and the one YAML reader: bad values are refused by name before anything is
built, `lr: 1e-3` is a float, and YAML files cannot blow up through size or aliases."""

from __future__ import annotations

import pytest

from fpt import FPTError, RunConfig
from fpt.experiments.sweep import expand
from fpt.tasks import check_task_options, get_task, task_names, task_options_schema
from fpt.tasks.bits import BitXOR
from fpt.yamlsafe import MAX_BYTES, load, read_yaml_mapping


@pytest.mark.parametrize(
    "task, options, match",
    [
        ("bit-xor", {"n_bits": "abc"}, "n_bits must be an integer"),
        ("bit-xor", {"n_bits": -3}, "n_bits must be at least 1"),
        ("bit-xor", {"bits_per_token": 0}, "bits_per_token must be at least 1"),
        ("bit-xor", {"val_size": 0}, "val_size must be at least 1"),
        ("bit-xor", {"n_bits": 7, "bits_per_token": 2}, r"n_bits \(7\) must be a multiple"),
        ("bit-xor", {"n_bits": 10**12}, "GiB"),
        ("bit-memory", {"mask_prob": 1.5}, "mask_prob must be from 0 to 1"),
        ("bit-memory", {"n_strings": True}, "n_strings must be an integer"),
        ("mnist", {"patch_size": 5}, r"patch_size \(5\) must divide"),
        ("mnist", {"augment": "yes"}, "augment must be true or false"),
        ("cifar10", {"val_size": 60_000}, "val_size must be from 1 to 49999"),
        ("listops", {"overlong": "wrap"}, "overlong must be one of clip, skip"),
        ("listops", {"max_length": 0}, "max_length must be at least 1"),
        ("remote-homology", {"test_split": "x"}, "test_split must be one of"),
        ("bit-xor", {"width": 3}, "unknown option"),
    ],
)
def test_bad_task_options_are_refused_before_building(task, options, match):
    with pytest.raises(FPTError, match=match):
        get_task(task, data_dir="/nonexistent", **options)


def test_every_task_has_a_described_schema():
    for name in task_names():
        schema = task_options_schema(name)
        assert schema.options and all(o.type is not None for o in schema.options), name
        assert name in schema.describe()
    assert check_task_options("bit-memory", {"mask_prob": 1}) == {"mask_prob": 1.0}
    with pytest.raises(FPTError, match="Unknown task"):
        task_options_schema("bit-xro")


def test_registered_tasks_get_a_schema_from_their_signature(monkeypatch):
    import fpt.tasks

    for registry in ("_REGISTRY", "_RUN_DEFAULTS", "_SCHEMAS"):  # registered for this test only
        monkeypatch.setattr(fpt.tasks, registry, dict(getattr(fpt.tasks, registry)))

    def mine(n_bits: int = 5, note: str = "a", **extra):
        return BitXOR(n_bits)

    fpt.tasks.register_task("mine-test", mine)
    assert [o.name for o in task_options_schema("mine-test").options] == ["n_bits", "note"]
    with pytest.raises(FPTError, match="n_bits must be an integer"):
        get_task("mine-test", n_bits=1.5)


def test_sweep_grids_check_task_options():
    grid = {"tasks": ["bit-xor"], "settings": {"task_options": {"n_bits": 5, "bits_per_token": 2}}}
    with pytest.raises(FPTError, match="must be a multiple"):
        expand(grid)


def test_yaml_1_2_floats_for_every_numeric_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-3\nclip_norm: 5E-1\ndropout: 0\ntask_options: {mask_prob: 5e-1}\ntask: bit-memory\n")
    config = RunConfig.from_yaml(path)
    assert (config.lr, config.clip_norm, config.task_options["mask_prob"]) == (1e-3, 0.5, 0.5)
    assert load("a: 1e3x\nb: 10\nc: '1e-3'", "x") == {"a": "1e3x", "b": 10, "c": "1e-3"}
    with pytest.raises(FPTError, match="steps must be a positive integer"):
        RunConfig.from_dict({"steps": 1e29})
    with pytest.raises(FPTError, match="batch_size must be at most"):
        RunConfig.from_dict({"batch_size": 10**16})


def test_yaml_size_and_alias_bounds(tmp_path):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(levels) + "\n")
    assert path.stat().st_size < 600
    with pytest.raises(FPTError, match="expands to more than") as err:
        RunConfig.from_yaml(path)
    assert len(str(err.value)) < 500
    with pytest.raises(FPTError, match="refers to itself"):
        load("&a [*a]", "r")
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * MAX_BYTES + "\n")
    with pytest.raises(FPTError, match="limited to"):
        read_yaml_mapping(big, "Grid file", "keys")
    with pytest.raises(FPTError, match="nested too deeply"):
        load("[" * 50_000, "deep")


def test_a_key_given_twice_is_refused_not_last_wins(tmp_path, capsys):
    from fpt.cli import main

    path = tmp_path / "c.yaml"
    path.write_text("task: bit-xor\nlr: 1e-3\nsteps: 2\nlr: 0.5\n")
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "key 'lr' is given twice (lines 2 and 4)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    with pytest.raises(FPTError, match="key 'n_bits' is given twice .line 1."):
        load("task_options: {n_bits: 5, n_bits: 6}", "Grid file g.yaml")
    with pytest.raises(FPTError, match="key 1.0 is given twice"):  # 1 and 1.0 are one key once read
        load("1: a\n1.0: b\n", "r")
    assert load("base: &b {lr: 1}\nrun:\n  <<: *b\n  lr: 2\n", "r") == {"base": {"lr": 1}, "run": {"lr": 2}}


def test_error_messages_quote_bad_values_briefly():
    with pytest.raises(FPTError) as err:
        RunConfig.from_dict({"backbone": ["x" * 10_000]})
    assert len(str(err.value)) < 600

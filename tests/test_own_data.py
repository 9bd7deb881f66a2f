"""A user's own data from the Python API or a file is usable by every CLI command in a new process:
TensorTask runs save their arrays, `--task arrays` reads .npz/.safetensors, plugins register tasks
and backbones for every process, and `fpt list` shows what exists."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fpt import FPTError, RunConfig, TensorTask, train
from fpt.cli import main
from fpt.tasks import get_task, image_tokens, patchify
from fpt.tasks.arrays import DATA_FILE, from_arrays

QUIET = dict(progress=False, log=lambda *a: None)
ROOT = Path(__file__).resolve().parents[1]


def _data(n: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, 3, generator=g)
    return x, (x[:, :, 0].sum(1) > 0).long()


def _config(backbone: str, out: Path, **extra) -> RunConfig:
    return RunConfig(backbone=backbone, steps=4, eval_every=2, batch_size=4, out=str(out), device="cpu", **extra)


def _fresh_process(code: str, cwd: Path, extra_path: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), extra_path) if p), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # a new process: imports torch and transformers again
def test_tensor_task_run_is_evaluated_resumed_and_attention_mapped_from_the_cli_in_a_new_process(tiny_gpt2, tmp_path):
    x, y = _data()
    task = TensorTask((x[:32], y[:32]), (x[32:40], y[32:40]), (x[40:], y[40:]), name="mine")
    summary = train(_config(tiny_gpt2, tmp_path / "run"), task=task, **QUIET)
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["task"] == "arrays" and summary["task"] == "mine"
    assert config["task_options"]["path"] == str(tmp_path / "run" / DATA_FILE)
    assert len(config["task_options"]["sha256"]) == 64

    code = textwrap.dedent(
        """
        import json, sys
        from fpt.cli import main
        assert main(["eval", "run", "--device", "cpu"]) == 0
        assert main(["attention", "run", "--format", "json", "--out", "attention.json"]) == 0
        assert main(["train", "--resume", "run", "--steps", "6", "--quiet"]) == 0
        """
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "run").symlink_to(tmp_path / "run")
    done = _fresh_process(code, elsewhere)
    assert done.returncode == 0, done.stderr[-2000:]
    evaluated = json.JSONDecoder().raw_decode(done.stdout)[0]  # fpt eval's report; later commands print after it
    assert evaluated["examples"] == 8 and evaluated["accuracy"] == pytest.approx(summary["test_accuracy"])
    attention = json.loads((elsewhere / "attention.json").read_text())
    assert attention["task"] == "mine" and len(attention["attention"]) == 2
    resumed = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert resumed["steps"] == 6 and resumed["resumed_from_step"] == 4 and resumed["task"] == "mine"


def test_arrays_task_from_a_file(tiny_gpt2, tmp_path, capsys):
    x, y = _data(60)
    split = np.array(["train"] * 40 + ["val"] * 10 + ["test"] * 10)
    np.savez(tmp_path / "data.npz", inputs=x.numpy(), targets=y.numpy(), split=split)
    argv = ["train", "--task", "arrays", "--task-option", f"path={tmp_path / 'data.npz'}", "--backbone", tiny_gpt2]
    argv += ["--steps", "2", "--eval-every", "2", "--batch-size", "4", "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["task"] == "arrays" and summary["test_examples"] == 10
    options = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["task_options"]
    assert options["path"] == str(tmp_path / "data.npz") and options["num_classes"] == 2

    np.savez(tmp_path / "data.npz", inputs=x.numpy(), targets=1 - y.numpy(), split=split)  # the data changed
    assert main(["eval", str(tmp_path / "run")]) == 2
    assert "changed since the run recorded it" in capsys.readouterr().err


def test_arrays_without_split_are_carved_by_fraction_with_a_fixed_seed(tmp_path):
    x, y = _data(100)
    from safetensors.torch import save_file

    save_file({"inputs": x, "targets": y}, tmp_path / "data.safetensors")
    task = get_task("arrays", path=str(tmp_path / "data.safetensors"), val_fraction=0.2, test_fraction=0.1)
    assert [task.split_size(s) for s in ("train", "val", "test")] == [70, 20, 10]
    again = get_task("arrays", path=str(tmp_path / "data.safetensors"), val_fraction=0.2, test_fraction=0.1)
    assert torch.equal(task.data["test"][0], again.data["test"][0])


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"inputs": np.zeros((4, 2, 1))}, "needs inputs and targets"),
        ({"inputs": np.zeros((4, 2, 1)), "targets": np.zeros(4, dtype=int), "extra": np.zeros(1)}, "unknown: extra"),
        (
            {"inputs": np.zeros((4, 2, 1)), "targets": np.zeros(4, dtype=int), "split": np.array([0, 1, 2, 5])},
            "0 (train)",
        ),
        (
            {"inputs": np.zeros((4, 2, 1)), "targets": np.zeros(4, dtype=int), "split": np.zeros(3, dtype=int)},
            "3 entries",
        ),
        (
            {"inputs": np.zeros((3, 2, 1)), "targets": np.zeros(3, dtype=int), "split": np.array([0, 0, 1])},
            "test split",
        ),
        ({"inputs": np.array([None, 1], dtype=object), "targets": np.zeros(2, dtype=int)}, "pickled"),
    ],
)
def test_bad_array_files_give_one_clear_error(tmp_path, arrays, message):
    np.savez(tmp_path / "data.npz", **arrays)
    with pytest.raises(FPTError, match=re.escape(message)):
        get_task("arrays", path=str(tmp_path / "data.npz"))


def test_missing_or_foreign_array_files(tmp_path):
    with pytest.raises(FPTError, match="does not exist"):
        get_task("arrays", path=str(tmp_path / "nothing.npz"))
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(FPTError, match="expected a .npz"):
        get_task("arrays", path=str(tmp_path / "data.csv"))
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(FPTError, match="is not a .npz archive"):
        get_task("arrays", path=str(tmp_path / "broken.npz"))
    with pytest.raises(FPTError, match="path=FILE"):
        get_task("arrays", path="")


def test_from_hf_dataset_and_dataset_dict():
    datasets = pytest.importorskip("datasets")
    x, y = _data(50)
    dataset = datasets.Dataset.from_dict({"x": x.tolist(), "label": y.tolist()})
    task = TensorTask.from_hf(dataset, "x", "label", val_fraction=0.2, test_fraction=0.2)
    assert [task.split_size(s) for s in ("train", "val", "test")] == [30, 10, 10]
    assert task.spec.input_kind == "continuous" and task.spec.input_dim == 3 and task.spec.num_classes == 2
    parts = datasets.DatasetDict({"train": dataset.select(range(30)), "validation": dataset.select(range(30, 40))})
    parts["test"] = dataset.select(range(40, 50))
    task = TensorTask.from_hf(parts, "x", "label")
    assert torch.allclose(task.data["test"][0], x[40:])
    with pytest.raises(FPTError, match="no column 'pixels'"):
        TensorTask.from_hf(dataset, "pixels", "label")
    with pytest.raises(FPTError, match="expected train, validation"):
        TensorTask.from_hf(datasets.DatasetDict({"train": dataset}), "x", "label")


def test_from_hf_images_are_cut_into_patches():
    datasets = pytest.importorskip("datasets")
    images = np.random.default_rng(0).integers(0, 256, size=(20, 8, 8), dtype=np.uint8)
    dataset = datasets.Dataset.from_dict({"image": images.tolist(), "label": [i % 3 for i in range(20)]})
    task = TensorTask.from_hf(dataset, "image", "label", patch_size=4, val_fraction=0.25, test_fraction=0.25)
    assert (task.spec.max_length, task.spec.input_dim, task.spec.num_classes) == (4, 16, 3)


def test_image_tokens_and_patchify_are_public_and_agree():
    images = torch.arange(2 * 4 * 4 * 3, dtype=torch.float32).reshape(2, 4, 4, 3)  # channels last
    tokens = image_tokens(images.numpy(), 2)
    assert tokens.shape == (2, 4, 12)
    assert torch.equal(tokens, patchify(images.permute(0, 3, 1, 2), 2))
    assert torch.equal(tokens[0, 0, :3], images[0, 0, 0])  # first patch, first pixel, every channel
    with pytest.raises(FPTError, match="must divide"):
        image_tokens(images.numpy(), 3)


def test_from_arrays_refuses_fractions_that_leave_no_training_data():
    x, y = _data(10)
    with pytest.raises(FPTError, match="sum below 1"):
        from_arrays(x, y, val_fraction=0.5, test_fraction=0.5)


PLUGIN = """
from fpt import TensorTask, register_task
import torch

def make(n_tokens: int = 4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, n_tokens, 2, generator=g)
    y = (x[:, 0, 0] > 0).long()
    return TensorTask((x[:24], y[:24]), (x[24:32], y[24:32]), (x[32:], y[32:]), name="plugged")

register_task("plugged", make)
"""


@pytest.mark.slow  # a new process: imports torch and transformers again
def test_a_task_registered_in_a_module_is_usable_by_train_eval_and_list(tiny_gpt2, tmp_path, monkeypatch, capsys):
    (tmp_path / "my_tasks.py").write_text(PLUGIN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # import_modules adds the current folder
    assert main(["list", "tasks", "--import", "my_tasks"]) == 0
    assert "plugged\n    n_tokens (an integer; default 4)" in capsys.readouterr().out
    from fpt.experiments.sweep import expand

    grid = {"tasks": ["plugged"], "lrs": [1e-3], "settings": {"imports": ["my_tasks"], "backbone": tiny_gpt2}}
    assert [run.config["imports"] for run in expand(grid).runs] == [["my_tasks"]]  # each sweep run imports it
    argv = ["train", "--import", "my_tasks", "--task", "plugged", "--backbone", tiny_gpt2, "--steps", "2"]
    assert main([*argv, "--eval-every", "2", "--batch-size", "4", "--out", "run", "--quiet"]) == 0
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["task"] == "plugged" and config["imports"] == ["my_tasks"]
    # a new process knows nothing of my_tasks but what the run recorded
    done = _fresh_process("from fpt.cli import main; raise SystemExit(main(['eval', 'run']))", tmp_path, str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["examples"] == 8


def test_a_script_registered_task_names_the_way_out(capsys):
    assert main(["train", "--task", "only-in-a-script"]) == 2
    assert "--import MODULE" in capsys.readouterr().err
    assert main(["train", "--import", "no_such_module_here", "--task", "x"]) == 2
    assert "Cannot import module 'no_such_module_here'" in capsys.readouterr().err


@pytest.mark.slow  # a new process: imports torch and transformers again
def test_entry_points_register_tasks_and_backbones(tiny_gpt2, tmp_path):
    package = tmp_path / "fpt_plugin_demo"
    package.mkdir()
    (package / "__init__.py").write_text(PLUGIN.replace('register_task("plugged", make)', f"ENCODER = {tiny_gpt2!r}"))
    info = tmp_path / "fpt_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fpt-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[fpt.tasks]\nplugged-ep = fpt_plugin_demo:make\n\n[fpt.backbones]\ntiny-ep = fpt_plugin_demo:ENCODER\n"
    )
    code = "from fpt.cli import main; main(['list', 'tasks']); main(['list', 'backbones'])"
    done = _fresh_process(code, tmp_path, str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        "plugged-ep\n    n_tokens (an integer; default 4)" in done.stdout
        and f"tiny-ep         {tiny_gpt2}" in done.stdout
    )

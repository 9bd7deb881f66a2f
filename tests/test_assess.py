"""`fpt eval`: loss, per-class figures and the confusion matrix, on the run's split or a new labelled file."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from fpt.cli import main
from fpt.predict import predict_run

CLASSES = 3


def _labelled(path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n, 6, 4)).astype("float32")
    targets = (inputs[:, :, 0].sum(1) > 0).astype("int64") + (inputs[:, :, 1].sum(1) > 1)
    np.savez(path, inputs=inputs, targets=targets)
    return inputs, targets


@pytest.fixture(scope="module")
def run(tmp_path_factory, quiet_gpt2):
    """A 3-class run of `--task arrays` on the tiny GPT-2 (a few steps: the figures, not the skill, are tested)."""
    folder = tmp_path_factory.mktemp("assess")
    _labelled(folder / "train.npz", 120, 0)
    flags = [
        "--task",
        "arrays",
        "--task-option",
        f"path={folder / 'train.npz'}",
        "--task-option",
        f"num_classes={CLASSES}",
    ]
    common = ["--backbone", quiet_gpt2, "--steps", "6", "--eval-every", "3", "--batch-size", "8", "--quiet"]
    assert main(["train", *flags, *common, "--out", str(folder / "run")]) == 0
    return folder / "run"


def _eval(capsys, *argv) -> tuple[int, dict | None, str]:
    code = main(["eval", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else None, err


def test_eval_gives_loss_per_class_figures_and_the_confusion_matrix(run, capsys):
    summary = json.loads((run / "summary.json").read_text())
    code, result, _ = _eval(capsys, run)
    assert code == 0 and result["split"] == "test" and result["accuracy"] == summary["test_accuracy"]
    assert "exact_match" not in result  # one unit per example: it would repeat the accuracy
    assert np.isfinite(result["loss"]) and result["loss"] > 0
    matrix = np.array(result["confusion_matrix"])
    assert matrix.shape == (CLASSES, CLASSES) and matrix.sum() == result["examples"] == summary["test_examples"]
    assert np.trace(matrix) / matrix.sum() == result["accuracy"]
    per_class = result["per_class"]
    assert [c["class"] for c in per_class] == [0, 1, 2]
    assert [c["support"] for c in per_class] == matrix.sum(1).tolist()
    assert [c["predicted"] for c in per_class] == matrix.sum(0).tolist()
    for row in per_class:
        k = row["class"]
        assert row["recall"] == (round(matrix[k, k] / matrix[k].sum(), 4) if matrix[k].sum() else None)
        assert row["precision"] == (round(matrix[k, k] / matrix[:, k].sum(), 4) if matrix[:, k].sum() else None)


def test_eval_on_a_new_labelled_file(run, capsys, tmp_path):
    inputs, targets = _labelled(tmp_path / "new.npz", 37, seed=5)
    code, result, _ = _eval(capsys, run, "--data", tmp_path / "new.npz", "--plot", tmp_path / "confusion.png")
    assert code == 0 and result["data"] == str(tmp_path / "new.npz") and result["split"] is None
    assert result["examples"] == 37 and len(result["data_sha256"]) == 64
    np.save(tmp_path / "x.npy", inputs)
    predicted = predict_run(run, tmp_path / "x.npy", device="cpu")["classes"]
    assert predicted.shape == (37,)  # flat class ids: one unit per example
    assert result["accuracy"] == pytest.approx((predicted == targets).mean())
    assert np.array(result["confusion_matrix"]).sum() == 37
    assert (tmp_path / "confusion.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x, y: (x, y + 5), "class ids .* this model has 3 classes"),
        (lambda x, y: (x, y[:, None].repeat(2, 1)), r"targets must be \(37,\) integers"),
        (lambda x, y: (x[:, :, :3], y), r"expects \(n, tokens, 4\)"),
        (lambda x, y: (x, y.astype("float32")), "integers"),
    ],
)
def test_a_labelled_file_that_does_not_fit_the_model_is_refused(run, capsys, tmp_path, change, message):
    inputs, targets = _labelled(tmp_path / "ok.npz", 37, seed=5)
    inputs, targets = change(inputs, targets)
    np.savez(tmp_path / "bad.npz", inputs=inputs, targets=targets)
    code, _, err = _eval(capsys, run, "--data", tmp_path / "bad.npz")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


def test_eval_flags_that_contradict_each_other_are_refused(run, capsys, tmp_path):
    _labelled(tmp_path / "new.npz", 10, seed=1)
    assert _eval(capsys, run, "--data", tmp_path / "new.npz", "--split", "val")[2].count("pass one of them") == 1
    assert "--plot" in _eval(capsys, run, "--plot", tmp_path / "m.jpg")[2]
    assert "inside the run directory" in _eval(capsys, run, "--plot", run / "m.png")[2]
    assert "does not exist" in _eval(capsys, run, "--data", tmp_path / "absent.npz")[2]


def test_several_units_keep_exact_match(quiet_gpt2, tmp_path, capsys):
    flags = ["--task", "bit-xor", "--task-option", "val_size=16", "--task-option", "test_size=16"]
    out = tmp_path / "xor"
    assert main(["train", *flags, "--backbone", quiet_gpt2, "--steps", "2", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    code, result, _ = _eval(capsys, out, "--split", "val")
    assert code == 0 and "exact_match" in result and result["examples"] == 16
    assert np.array(result["confusion_matrix"]).sum() == 16 * 5  # every bit of every example

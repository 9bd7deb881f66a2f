"""Regression through every surface: `fpt train --task arrays` on float targets trains, evaluates,
predicts, resumes, compares and reports with MSE/MAE; bad float targets are refused clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fpt import RunConfig, train
from fpt.cli import main
from fpt.errors import FPTError
from fpt.model import load_run_model
from fpt.tasks import Regression, TensorTask, get_task
from fpt.tasks.arrays import from_arrays
from fpt.training import resume_config
from tests.test_resume import QUIET, _assert_same_run


def _series(path, n: int = 64, horizon: int = 1, seed: int = 0) -> dict:
    """Windows of a noisy sine; the targets are the next `horizon` values (float)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n + 8 + horizon) * 0.4
    wave = np.sin(t) + 0.05 * rng.standard_normal(len(t))
    inputs = np.stack([wave[i : i + 8] for i in range(n)])[:, :, None].astype(np.float32)
    targets = np.stack([wave[i + 8 : i + 8 + horizon] for i in range(n)]).astype(np.float32)
    arrays = dict(inputs=inputs, targets=targets[:, 0] if horizon == 1 else targets)
    np.savez(path, **arrays)
    return arrays


def test_float_targets_train_evaluate_predict_compare_and_report_from_the_cli(tiny_gpt2, tmp_path, capsys):
    data = _series(tmp_path / "series.npz")
    run = tmp_path / "run"
    argv = ["train", "--task", "arrays", "--task-option", f"path={tmp_path / 'series.npz'}", "--backbone", tiny_gpt2]
    argv += ["--steps", "6", "--eval-every", "2", "--batch-size", "8", "--lr", "3e-3", "--out", str(run), "--quiet"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["selection"] == {"metric": "mse", "mode": "min"} and summary["test_metric"] == summary["test_mse"]
    assert summary["test_mae"] > 0 and summary["best_val_mse"] is not None and "test_accuracy" not in summary
    assert summary["metric_names"] == {"mse": "MSE", "mae": "MAE"}

    assert main(["eval", str(run)]) == 0  # the run's own test split, in a new task object
    report = json.loads(capsys.readouterr().out)
    assert report["mse"] == pytest.approx(summary["test_mse"], rel=1e-6) and report["examples"] == 6
    assert "confusion_matrix" not in report and "accuracy" not in report
    np.savez(tmp_path / "labelled.npz", inputs=data["inputs"][:10], targets=data["targets"][:10])
    assert main(["eval", str(run), "--data", str(tmp_path / "labelled.npz")]) == 0
    assert json.loads(capsys.readouterr().out)["mse"] >= 0

    np.save(tmp_path / "x.npy", data["inputs"][:5])
    assert main(["predict", str(run), "--input", str(tmp_path / "x.npy")]) == 0
    values = json.loads(capsys.readouterr().out)["values"]
    model = load_run_model(run).eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(data["inputs"][:5]))[:, 0, 0]
    np.testing.assert_allclose(values, expected.numpy(), rtol=1e-5)
    assert main(["predict", str(run), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "p.npz")]) == 0
    assert list(np.load(tmp_path / "p.npz")) == ["values"]

    assert main(["compare", str(run), "--out", str(tmp_path / "curves.png")]) == 0
    table = capsys.readouterr().out
    assert "test mse" in table and "best val mse" in table and "test accuracy" not in table
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert main(["report", str(run), "--out", str(tmp_path / "report.html")]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "val_mse vs step" in html and "test_mse" in html


def test_a_stopped_regression_run_resumes_to_the_uninterrupted_one(tiny_gpt2, tmp_path):
    """Resume restores the best-so-far by the task's own metric (lowest val MSE), not an accuracy: the
    curve, both checkpoints and every recorded score equal the uninterrupted run's."""
    _series(tmp_path / "series.npz")

    def config(out, steps):
        return RunConfig(task="arrays", task_options={"path": str(tmp_path / "series.npz")}, backbone=tiny_gpt2,
                         steps=steps, eval_every=2, batch_size=8, lr=3e-3, device="cpu", precision="fp32", out=str(out))  # fmt: skip

    train(config(tmp_path / "reference", 8), **QUIET)
    train(config(tmp_path / "resumed", 4), **QUIET)
    train(resume_config(tmp_path / "resumed", steps=8), resume=True, **QUIET)
    _assert_same_run(tmp_path / "resumed", tmp_path / "reference")
    summary = json.loads((tmp_path / "resumed" / "summary.json").read_text())
    assert summary["resumed_from_step"] == 4 and summary["selection"] == {"metric": "mse", "mode": "min"}


def test_per_token_and_multi_value_targets_and_restore_arrays(tmp_path):
    x = torch.randn(30, 4, 2)
    task = TensorTask.from_arrays(x, torch.randn(30, 4), output_tokens=4)  # one value per output token
    assert task.spec.output_kind == Regression() and (task.spec.output_tokens, task.spec.outputs_per_token) == (4, 1)
    task = TensorTask.from_arrays(x, torch.randn(30, 3))  # three values per example
    assert task.spec.outputs_per_token == 3
    loc, scale = torch.randn(30, 1), torch.rand(30, 1) + 1
    np.savez(tmp_path / "d.npz", inputs=x.numpy(), targets=np.random.default_rng(0).random(30), output_loc=loc.numpy(),
             output_scale=scale.numpy())  # fmt: skip
    task = get_task("arrays", path=str(tmp_path / "d.npz"))
    batch = next(task.eval_batches("val", 2))
    assert batch.output_loc is not None and batch.output_loc.shape == (2, 1)
    assert task.options()["outputs"] == "regression"


@pytest.mark.parametrize(
    "targets, match",
    [
        (np.r_[np.full(29, 0.5), np.nan], "NaN or infinite"),
        (np.r_[np.full(29, 0.5), np.inf], "NaN or infinite"),
        (np.zeros((30, 0)), "no units"),
        (np.zeros(29) + 0.5, "give one target"),
    ],
)
def test_bad_float_targets_are_refused(targets, match):
    with pytest.raises(FPTError, match=match):
        from_arrays(np.random.default_rng(0).random((len(targets) if len(targets) != 29 else 30, 4, 2)), targets)


def test_mixed_target_kinds_and_classification_options_are_refused():
    x = torch.randn(8, 4, 2)
    with pytest.raises(FPTError, match="of one kind"):
        TensorTask((x, torch.zeros(8, dtype=torch.long)), (x, torch.rand(8)), (x, torch.rand(8)))
    with pytest.raises(FPTError, match="num_classes is for classification"):
        TensorTask((x, torch.rand(8)), (x, torch.rand(8)), (x, torch.rand(8)), num_classes=3, outputs="regression")
    with pytest.raises(FPTError, match="outputs='regression'"):
        TensorTask((x, torch.rand(8)), (x, torch.rand(8)), (x, torch.rand(8)), outputs="classification")
    whole = TensorTask((x, torch.ones(8)), (x, torch.zeros(8)), (x, torch.ones(8)), outputs="regression")
    assert whole.spec.output_kind == Regression() and whole.data["train"][1].dtype == torch.float32

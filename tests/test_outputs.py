"""A task's output kind: regression through training and evaluation, the per-example restore seam
(`Batch.output_loc/output_scale`), the flattened head, and the selection direction."""

from __future__ import annotations

import json

import pytest
import torch

from fpt.errors import FPTError
from fpt.model.heads import OutputHead
from fpt.tasks import Batch, Classification, Regression, Selection, TaskSpec, TensorTask
from fpt.training import RunConfig, train
from fpt.training.loop import build_model, evaluate

QUIET = dict(progress=False, log=lambda *a: None)


def _series(n: int, seed: int = 0, horizon: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, 2, generator=g)
    return x, torch.stack([x[:, -1, 0] + 0.5 * x[:, -2, 1] + 0.01 * k for k in range(horizon)], 1)


def test_regression_trains_selects_the_lowest_val_mse_and_writes_mse_mae(tmp_path, quiet_gpt2):
    x, y = _series(64)
    task = TensorTask((x[:40], y[:40]), (x[40:52], y[40:52]), (x[52:], y[52:]))
    assert task.spec.output_kind == Regression() and task.spec.units == 2 and task.spec.num_classes is None
    config = RunConfig(backbone=quiet_gpt2, steps=12, eval_every=3, batch_size=8, lr=3e-3, out=str(tmp_path / "r"))
    summary = train(config, task=task, **QUIET)
    metrics = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert {"val_mse", "val_mae"} <= set(metrics[0]) and "val_accuracy" not in metrics[0]
    best = min(metrics, key=lambda m: m["val_mse"])
    assert summary["best_step"] == best["step"] and summary["best_val_mse"] == best["val_mse"]
    assert summary["selection"] == {"metric": "mse", "mode": "min"} and summary["best_val_metric"] == best["val_mse"]
    assert summary["test_metric"] == summary["test_mse"] and summary["test_mae"] > 0 and "test_accuracy" not in summary
    assert metrics[-1]["val_mse"] < metrics[0]["val_mse"]  # it learns


def test_target_accuracy_is_refused_for_regression_before_anything_is_written(tmp_path, quiet_gpt2):
    x, y = _series(24)
    task = TensorTask((x[:16], y[:16]), (x[16:20], y[16:20]), (x[20:], y[20:]))
    config = RunConfig(backbone=quiet_gpt2, steps=2, target_accuracy=0.9, out=str(tmp_path / "r"))
    with pytest.raises(FPTError, match="patience"):
        train(config, task=task, **QUIET)
    assert not (tmp_path / "r").exists()


def test_the_restore_seam_measures_outputs_on_the_targets_scale(quiet_gpt2):
    """Metrics of restored outputs equal metrics computed by hand from outputs * scale + loc."""
    x, y = _series(12, horizon=3)
    loc, scale = torch.randn(12, 1) * 10, torch.rand(12, 1) + 0.5
    split = Batch(x, y, None, loc, scale)
    task = TensorTask(split, split, split)
    model = build_model(RunConfig(backbone=quiet_gpt2, init="random"), task).eval()
    result = evaluate(model, task, "test", batch_size=5)
    with torch.no_grad():
        restored = model(x)[..., 0].double() * scale.double() + loc.double()
    assert result["mse"] == pytest.approx(float((restored - y.double()).square().mean()), rel=1e-6)
    assert result["mae"] == pytest.approx(float((restored - y.double()).abs().mean()), rel=1e-6)
    assert torch.equal(task.examples("val", 4).__next__().output_scale, scale[:4])


def test_restore_tensors_are_checked():
    x, y = _series(8)
    with pytest.raises(FPTError, match="broadcastable"):
        TensorTask(Batch(x, y, None, torch.zeros(8, 3)), (x, y), (x, y))
    labels = torch.zeros(8, dtype=torch.long)
    scaled = Batch(x, labels, None, None, torch.ones(8, 1))
    with pytest.raises(FPTError, match="classifies"):
        TensorTask(scaled, scaled, scaled)
    with pytest.raises(FPTError, match="every split or for none"):
        TensorTask(Batch(x, y, None, None, torch.ones(8, 1)), (x, y), (x, y))


def test_the_flattened_head_reads_every_output_token_together():
    torch.manual_seed(0)
    head = OutputHead(hidden=4, output_tokens=3, outputs_per_token=2, num_classes=1, flatten=True)
    states = torch.randn(5, 7, 4)
    out = head(states)
    assert out.shape == (5, 6, 1) and head.proj.in_features == 12
    expected = states[:, -3:].flatten(1) @ head.proj.weight.T + head.proj.bias
    torch.testing.assert_close(out[..., 0], expected)
    lengths = torch.tensor([7, 5, 4, 3, 7])
    torch.testing.assert_close(head(states, lengths)[1, :, 0], head.proj(states[1, 2:5].flatten()))


def test_a_flattened_head_trains_the_same_on_cached_features(quiet_gpt2, tmp_path):
    """A task's `head="flatten"` builds a head over all its output tokens; output-only training on cached
    features (which caches what the head reads) gives what training through the backbone gives."""
    x, y = _series(24, horizon=4)
    task = TensorTask((x[:16], y[:16]), (x[16:20], y[16:20]), (x[20:], y[20:]), output_tokens=2, head="flatten")
    model = build_model(RunConfig(backbone=quiet_gpt2, init="random"), task)
    assert model.head.proj.in_features == 2 * model.head.hidden and model(x[:3]).shape == (3, 4, 1)
    summaries = [
        train(
            RunConfig(
                backbone=quiet_gpt2,
                init="random",
                train="output",
                dropout=0.0,
                precision="fp32",
                steps=4,
                eval_every=2,
                batch_size=4,
                feature_cache=cache,
                out=str(tmp_path / str(cache)),
            ),
            task=task,
            **QUIET,
        )
        for cache in (True, False)
    ]
    assert summaries[0]["test_mse"] == pytest.approx(summaries[1]["test_mse"], rel=1e-6)


def test_selection_direction_and_old_summaries():
    assert Selection("mse", "min").better(0.1, 0.2) and not Selection("mse", "min").better(0.2, 0.2)
    assert Selection("accuracy", "max").best_of({1e-3: 0.5, 3e-3: 0.9}) == 3e-3
    assert Selection("mse", "min").best_of({1e-3: 0.5, 3e-3: 0.9}) == 1e-3
    from fpt.tasks.outputs import selection_of, test_metric, val_metric

    old = {"best_val_accuracy": 0.75, "test_accuracy": 0.5}
    assert selection_of(old) == Selection("accuracy", "max") and test_metric(old) == 0.5 and val_metric(old) == 0.75


def test_specs_from_before_output_kinds_still_classify():
    spec = TaskSpec("continuous", 3, 8, 4)
    assert spec.output_kind == Classification(4) and spec.model_fields()["num_classes"] == 4
    assert TaskSpec("continuous", 3, 8, outputs=Regression(), output_tokens=2).model_fields()["num_classes"] == 1
    with pytest.raises(FPTError, match="output kind"):
        TaskSpec("continuous", 3, 8)


def test_checkpoints_from_before_output_kinds_resume_with_their_best_accuracy():
    from fpt.training.loop import Progress

    fresh = Progress.from_dict(
        {"step": 4, "best_step": 0, "best_accuracy": -1.0, "steps_to_100": None, "loss_steps": 0}
    )
    assert (
        fresh.best_metric is None
        and Progress.from_dict({"step": 8, "best_step": 4, "best_accuracy": 0.75}).best_metric == 0.75
    )

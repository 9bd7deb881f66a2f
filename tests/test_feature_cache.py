"""Output-only training on cached backbone features equals training the head through the backbone."""

from __future__ import annotations

import json

import pytest
import torch

from fpt.tasks import TensorTask, get_task
from fpt.training import RunConfig, train
from fpt.training.feature_cache import FeatureTask, cacheable, output_only
from fpt.training.loop import build_model

QUIET = dict(progress=False, log=lambda *a: None)


def _task() -> TensorTask:
    g = torch.Generator().manual_seed(0)
    split = lambda n: (torch.randn(n, 6, 3, generator=g), torch.randint(0, 3, (n,), generator=g))
    return TensorTask(split(24), split(8), split(8), name="random")


def test_cached_head_training_equals_training_through_the_backbone(tmp_path, quiet_gpt2):
    runs = {}
    for cache in (True, False):
        config = RunConfig(
            backbone=quiet_gpt2,
            init="random",
            train="output",
            dropout=0.0,
            precision="fp32",
            steps=12,
            eval_every=4,
            batch_size=4,
            feature_cache=cache,
            out=str(tmp_path / str(cache)),
        )
        summary = train(config, task=_task(), **QUIET)
        losses = [
            json.loads(line)["train_loss"]
            for line in (tmp_path / str(cache) / "metrics.jsonl").read_text().splitlines()
        ]
        runs[cache] = summary, losses
    (cached, cached_losses), (plain, plain_losses) = runs[True], runs[False]
    assert cached_losses == pytest.approx(plain_losses, rel=1e-5)  # 12 steps: the same batches, the same updates
    assert cached["test_accuracy"] == plain["test_accuracy"] and cached["best_step"] == plain["best_step"]


def test_features_are_what_the_head_reads(quiet_gpt2):
    task = _task()
    model = build_model(RunConfig(backbone=quiet_gpt2, init="random", train="output"), task).eval()
    features = FeatureTask(task, model, batch_size=5)
    assert features.data["train"][0].shape == (24, 1, 32) and features.spec.output_tokens == 1
    inputs, targets, _ = task.data["test"]
    with torch.no_grad():
        assert torch.allclose(model.head(features.data["test"][0]), model(inputs), atol=1e-6)
    assert torch.equal(features.data["test"][1], targets)


def test_only_output_only_runs_on_fixed_data_are_cached(quiet_gpt2):
    task = _task()
    assert output_only(build_model(RunConfig(backbone=quiet_gpt2, init="random", train="output"), task))
    assert not output_only(build_model(RunConfig(backbone=quiet_gpt2, init="random", train="fpt"), task))
    assert cacheable(task) and not cacheable(get_task("bit-xor"))  # a generated stream never repeats an example


def test_an_uncached_output_only_step_records_no_graph_below_the_head(quiet_gpt2):
    """On a stream (nothing to cache), output-only training still skips the backbone's backward work: no
    parameter below the head trains and the inputs need no gradient, so autograd records nothing there and
    the backbone's activations are freed as the forward goes (training mode, dropout on)."""
    task = get_task("bit-xor")
    model = build_model(RunConfig(backbone=quiet_gpt2, init="random", train="output"), task).train()
    batch = next(task.train_batches(4, seed=0))
    states = model.encode(batch.inputs).last_hidden_state
    assert states.grad_fn is None and not states.requires_grad
    assert model(batch.inputs).requires_grad  # the head's own product is recorded

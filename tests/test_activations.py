"""Fusing GPT-2's tanh-GELU changes no output and no gradient beyond rounding."""

from __future__ import annotations

import torch
from transformers.activations import GELUTanh, NewGELUActivation

from fpt.model import FPTConfig, FrozenPretrainedTransformer
from fpt.model.activations import fuse_activations
from fpt.tasks import get_task


def test_fused_gelu_matches_the_python_formula(quiet_gpt2):
    task = get_task("bit-memory", n_strings=3, n_bits=20, bits_per_token=5)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(
            FrozenPretrainedTransformer(
                FPTConfig(**task.spec.model_fields(), backbone=quiet_gpt2, init="random", dropout=0.0, fast_paths=False)
            )
        )
    python, fused = models
    layers = len([m for m in python.modules() if isinstance(m, NewGELUActivation)])
    assert layers > 0
    assert fuse_activations(fused) == layers and fuse_activations(fused) == 0  # idempotent
    assert not any(isinstance(m, NewGELUActivation) for m in fused.modules())
    assert sum(isinstance(m, GELUTanh) for m in fused.modules()) == layers
    batch = next(task.train_batches(6, 0))
    grads = []
    for model in models:
        task.loss(model(batch.inputs), batch.targets).backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)
    python.eval(), fused.eval()
    torch.testing.assert_close(fused(batch.inputs), python(batch.inputs), rtol=1e-5, atol=1e-6)

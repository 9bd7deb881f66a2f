"""CPU dropout: the same distribution as nn.Dropout, seeded by torch's generator, and attention with
dropout computed directly that equals PyTorch's attention when nothing is dropped."""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fpt.model.dropout as cpu_dropout
from fpt.model import FPTConfig, FrozenPretrainedTransformer
from fpt.model.compat import fast_path_off
from fpt.model.dropout import CPUDropout, attention, fast_dropout, use_cpu_dropout
from fpt.model.unread import wrap_last_block
from fpt.tasks import get_task


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mask_keeps_one_minus_p_scaled_and_is_seeded(dtype):
    x = torch.ones(1_000_001, dtype=dtype, requires_grad=True)
    torch.manual_seed(3)
    y = fast_dropout(x, 0.1)
    assert y.dtype == dtype and y.shape == x.shape
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.002
    torch.testing.assert_close(y[kept].float(), torch.full((int(kept.sum()),), 1 / 0.9), rtol=1e-2, atol=0)
    y.float().sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # gradient: the same mask and scale
    torch.manual_seed(3)
    assert torch.equal(fast_dropout(x.detach(), 0.1), y.detach())
    assert fast_dropout(x, 0.0) is x


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mask_and_gradient_are_the_first_formulas_bits(dtype):
    """The halves of each draw are read as int16 and the mask multiplied in: fewer passes, the same bits as
    the formula first written (and recorded runs trained with) for finite inputs."""

    def first(x, p):
        draws = torch.empty((x.numel() + 1) // 2, dtype=torch.int32).random_()
        halves = torch.stack([draws & (cpu_dropout.LEVELS - 1), draws >> 16], dim=-1).view(-1)
        return torch.where(halves[: x.numel()].view(x.shape) >= round(p * cpu_dropout.LEVELS), x * (1 / (1 - p)), 0.0)

    x = torch.randn(7, 5, 33, dtype=dtype, requires_grad=True)  # odd: the last draw's high half is unused
    grad = torch.randn_like(x)
    outputs, grads, next_draws = [], [], []
    for dropout in (first, fast_dropout):
        torch.manual_seed(11)
        y = dropout(x, 0.1)
        next_draws.append(torch.randint(2**30, (4,)))  # the generator left where it was: resume stays exact
        y.backward(grad)
        outputs.append(y.detach())
        grads.append(x.grad)
        x.grad = None
    assert torch.equal(outputs[1], outputs[0]) and torch.equal(grads[1], grads[0])
    assert torch.equal(next_draws[1], next_draws[0])


@pytest.mark.parametrize("width", [1, 3, 10, 15, 16, 40])
def test_softmax_equals_pytorchs_on_short_and_long_rows(monkeypatch, width):
    """Whichever way a row is computed (short rows by passes, long ones by PyTorch's kernel), the values and
    gradients are PyTorch's softmax to rounding, also for a row masked to the dtype's minimum."""
    torch.manual_seed(0)
    scores = torch.randn(2, 3, 5, width) * 4
    scores[0, 0, 0] = torch.finfo(torch.float32).min  # a fully masked row: uniform
    grad = torch.randn_like(scores)
    expected_input = scores.clone().requires_grad_()
    expected = torch.softmax(expected_input, dim=-1)
    expected.backward(grad)
    for lanes in (0, 16, 1 << 30):  # every row long / the AVX-512 threshold / every row short
        monkeypatch.setattr(cpu_dropout, "VECTOR_LANES", lanes)
        got_input = scores.clone().requires_grad_()
        got = cpu_dropout.softmax(got_input)
        got.backward(grad)
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(got_input.grad, expected_input.grad)
    torch.testing.assert_close(expected[0, 0, 0], torch.full((width,), 1 / width))


def test_softmax_of_empty_rows_is_empty():
    assert cpu_dropout.softmax(torch.randn(3, 0)).shape == (3, 0)


def test_short_row_softmax_is_taken_below_the_vector_width(monkeypatch):
    monkeypatch.setattr(cpu_dropout, "VECTOR_LANES", 16)
    short = cpu_dropout.softmax(torch.randn(4, 15, requires_grad=True))
    long = cpu_dropout.softmax(torch.randn(4, 16, requires_grad=True))
    assert type(short.grad_fn).__name__ == "_ShortRowSoftmaxBackward"
    assert type(long.grad_fn).__name__ == "SoftmaxBackward0"


def test_module_matches_nn_dropout_outside_cpu_training():
    module = CPUDropout(0.3)
    x = torch.randn(4, 8)
    module.eval()
    assert torch.equal(module(x), x)
    module.train()
    dropped = (module(torch.ones(10_000)) == 0).float().mean().item()
    assert abs(dropped - 0.3) < 0.03


@pytest.mark.parametrize("mask", ["causal", "bool", "float", None])
def test_direct_attention_equals_sdpa_when_nothing_is_dropped(monkeypatch, mask):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 8, requires_grad=True) for n in (5, 7, 7))
    attn_mask = {"bool": torch.rand(2, 1, 5, 7) > 0.3, "float": torch.randn(2, 1, 5, 7)}.get(mask)
    grad = torch.randn(2, 3, 5, 8)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=mask == "causal", scale=0.2)
    monkeypatch.setattr(cpu_dropout, "fast_dropout", lambda x, p: x)  # the direct path, keeping everything
    got = attention(q, k, v, attn_mask, dropout_p=0.5, is_causal=mask == "causal", scale=0.2)
    torch.testing.assert_close(got, expected)
    # gradients too: through the mask filled in place and the softmax (7 keys: the short-row one with AVX2/-512)
    ours, theirs = (torch.autograd.grad(out, (q, k, v), grad) for out in (got, expected))
    for mine, reference in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, reference)


def test_attention_interface_repeats_grouped_keys(monkeypatch):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 6, 8), torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8)
    module = types.SimpleNamespace(num_key_value_groups=2, is_causal=True)
    expected = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), is_causal=True)
    monkeypatch.setattr(cpu_dropout, "fast_dropout", lambda x, p: x)
    got, _ = cpu_dropout._fpt_sdpa(module, q, k, v, None, dropout=0.1)
    torch.testing.assert_close(got, expected.transpose(1, 2))


def _model(backbone: str, task, seed: int = 0, **options) -> FrozenPretrainedTransformer:
    torch.manual_seed(seed)
    return FrozenPretrainedTransformer(
        FPTConfig(**task.spec.model_fields(), backbone=backbone, init="random", fast_paths=False, **options)
    )


@pytest.mark.parametrize("backbone", ["tiny_gpt2", "tiny_bert"])
def test_models_train_with_it_and_evaluate_unchanged(request, backbone):
    path = request.getfixturevalue(backbone)
    task = get_task("bit-memory", n_strings=3, n_bits=20, bits_per_token=5)
    plain, swapped = _model(path, task), _model(path, task, attn_implementation=cpu_dropout.ATTENTION)
    assert swapped.backbone.config._attn_implementation == cpu_dropout.ATTENTION  # built with it
    changed = use_cpu_dropout(swapped)
    assert changed > 0 and use_cpu_dropout(swapped) == 0  # idempotent
    assert not any(type(m) is nn.Dropout for m in swapped.modules())
    # still exact with the new attention (GPT-2 and BERT), where this transformers is tested with it
    assert wrap_last_block(swapped.backbone) == (fast_path_off("last-block-read-positions-only") is None)
    batch = next(task.train_batches(8, 0))
    plain.eval(), swapped.eval()
    torch.testing.assert_close(swapped(batch.inputs), plain(batch.inputs))
    swapped.train()
    outputs = []
    for _ in range(2):
        torch.manual_seed(1)
        out = swapped(batch.inputs)
        task.loss(out, batch.targets).backward()
        outputs.append(out.detach())
    assert torch.equal(outputs[0], outputs[1])  # seeded like any torch dropout
    assert not torch.allclose(outputs[0], plain(batch.inputs))  # and it does drop
    assert all(torch.isfinite(p.grad).all() for p in swapped.parameters() if p.grad is not None)
    mask = torch.ones(8, batch.inputs.shape[1], dtype=torch.bool)
    mask[0, 5:] = False  # padding: the attention mask path, in training mode
    assert torch.isfinite(swapped(batch.inputs, mask)).all()

"""fpt.model.native: the compiled kernels equal the eager formulas they replace (dropout bit for bit, with the
same random stream; attention and BERT's dropout-add-norm to rounding), built for every instruction set
this CPU runs; where no kernels are built, everything runs the eager way."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import torch
from torch import nn

import fpt.model.dropout as cpu_dropout
from fpt.model import FPTConfig, FrozenPretrainedTransformer, native
from fpt.model.dropout import CPUDropout, attention, fast_dropout
from fpt.model.fast_paths import NATIVE_KERNELS, drop_cpu_fast_paths
from fpt.model.residual_norm import NativeBertOutput, NativeBertSelfOutput, residual_norm
from fpt.tasks import get_task

HAS_COMPILER = shutil.which(os.environ.get("CC") or "cc") is not None
needs_compiler = pytest.mark.skipif(not HAS_COMPILER, reason="no C compiler here: the kernels cannot be built")
# each instruction set PyTorch's CPU capability allows on this machine, widest first
CAPABILITIES = {"AVX512": ["AVX512", "AVX2", "DEFAULT"], "AVX2": ["AVX2", "DEFAULT"]}.get(
    native.cpu_capability(), ["DEFAULT"]
)


@pytest.fixture(scope="session")
def kernel_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("kernel-cache"))


@pytest.fixture(params=CAPABILITIES)
def built(request, monkeypatch, kernel_cache):
    """The kernels built for one instruction set (into the session's own cache) stand in for the process's."""
    if not HAS_COMPILER:
        pytest.skip("no C compiler here: the kernels cannot be built")
    monkeypatch.setenv("FPT_CACHE", kernel_cache)
    loaded = native.load_for(request.param)
    assert loaded[1] == "built", loaded[1]
    monkeypatch.setattr(native, "_load", lambda: loaded)
    return loaded[0]


def _eager(monkeypatch) -> None:
    monkeypatch.setattr(native, "_load", lambda: (None, "off in this test"))


def _run(function, inputs, grad, seed=5):
    """function(*inputs) at `seed`: the output, the inputs' gradients, the generator's next draws, the node."""
    inputs = [t.detach().clone().requires_grad_(t.dtype.is_floating_point) for t in inputs]
    torch.manual_seed(seed)
    out = function(*inputs)
    after = torch.randint(2**30, (4,))
    out.backward(grad)
    return out.detach(), [t.grad for t in inputs if t.requires_grad], after, type(out.grad_fn).__name__


def _heads(batch, length, heads, size):
    """Queries, keys or values laid out as attention receives them: (B, L, H, D) products, transposed."""
    return torch.randn(batch, length, heads * size).view(batch, length, heads, size).transpose(1, 2)


MASKS = {
    "bool": lambda b, q, k: torch.rand(b, 1, q, k) > 0.3,
    "float": lambda b, q, k: torch.randn(b, 1, q, k),
    "fully masked row": lambda b, q, k: torch.ones(b, 1, q, k, dtype=torch.bool).index_fill_(
        2, torch.tensor([1]), False
    ),
    "tail": lambda b, q, k: torch.ones(q, k, dtype=torch.bool).tril(k - q),
}


@pytest.mark.parametrize(
    "shape, mask",
    [
        ((2, 3, 5, 7, 16), None),
        ((2, 3, 7, 7, 32), "bool"),
        ((2, 3, 5, 7, 64), "float"),
        ((2, 2, 16, 16, 32), "causal"),
        ((1, 2, 10, 10, 32), "fully masked row"),
        ((3, 4, 1, 16, 48), None),
        ((2, 3, 49, 49, 32), None),  # Fashion-MNIST's 49 patches: rows of several registers
        ((2, 2, 40, 40, 64), "causal"),  # the keys past each block's last query are skipped
        ((2, 2, 9, 40, 16), "causal"),
        ((2, 2, 40, 9, 16), "causal"),
        ((2, 2, 9, 40, 64), "tail"),  # GPT-2's last block: the last queries, each seeing keys up to itself
        ((2, 3, 33, 21, 16), "float"),
    ],
)
def test_attention_equals_the_eager_formulas(built, monkeypatch, shape, mask):
    torch.manual_seed(0)
    b, h, lq, lk, d = shape
    q, k, v = _heads(b, lq, h, d), _heads(b, lk, h, d), _heads(b, lk, h, d)
    attn_mask = MASKS[mask](b, lq, lk) if mask in MASKS else None
    grad = torch.randn(b, h, lq, d)
    function = lambda q, k, v: attention(q, k, v, attn_mask, dropout_p=0.3, is_causal=mask == "causal", scale=0.3)
    out, grads, after, node = _run(function, [q, k, v], grad)
    assert node == "_NativeAttentionBackward"
    _eager(monkeypatch)
    expected_out, expected_grads, expected_after, expected_node = _run(function, [q, k, v], grad)
    assert expected_node != node
    torch.testing.assert_close(out, expected_out)
    for got, expected in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, expected)
    assert torch.equal(after, expected_after)  # the same draws, so the same masks and stream


def test_attention_keeps_nans_where_the_eager_formulas_do(built, monkeypatch):
    q, k, v = _heads(2, 6, 2, 16), _heads(2, 6, 2, 16), _heads(2, 6, 2, 16)
    q[0, 1, 2, 3] = float("nan")
    function = lambda q, k, v: attention(q, k, v, None, dropout_p=0.1)
    out = _run(function, [q, k, v], torch.ones(2, 2, 6, 16))[0]
    _eager(monkeypatch)
    torch.testing.assert_close(out, _run(function, [q, k, v], torch.ones(2, 2, 6, 16))[0], equal_nan=True)
    assert out[0, 1, 2].isnan().all() and not out[1].isnan().any()


def test_attention_takes_the_kernel_only_where_it_fits(built, monkeypatch):
    """Any lengths; head sizes in whole registers; with several threads only what PyTorch would run on one."""
    fits = lambda lq, lk, d, mask=None: cpu_dropout._native_fits(
        torch.empty(2, 2, lq, d), torch.empty(2, 2, lk, d), torch.empty(2, 2, lk, d), mask
    )
    assert fits(16, 16, 32) and fits(1, 10, 256) and fits(120, 120, 64)
    assert not fits(10, 10, 24) and not fits(10, 10, 8) and not fits(10, 10, 0)  # head sizes: multiples of 16
    q, k = torch.empty(2, 2, 5, 16), torch.empty(2, 2, 16)
    assert not cpu_dropout._native_fits(q, k, k, None)  # 3-D keys and values broadcast: the eager products
    assert not fits(10, 10, 32, torch.zeros(10, 10, requires_grad=True))  # a learned mask needs its gradient
    assert not fits(10, 10, 32, torch.zeros(10, 10, dtype=torch.float64))  # it would promote the scores to fp64
    assert fits(10, 10, 32, torch.zeros(10, 10)) and fits(10, 10, 32, torch.ones(10, 10, dtype=torch.bool))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)  # several threads: only what PyTorch runs on one
    assert native.takes(native.SERIAL_ELEMENTS) and not native.takes(native.SERIAL_ELEMENTS + 1)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert native.takes(native.SERIAL_ELEMENTS + 1)


def test_dropout_is_the_eager_formulas_bits(built, monkeypatch):
    x, grad = torch.randn(7, 5, 33), torch.randn(7, 5, 33)  # odd: the last draw's high half unused
    function = lambda x: fast_dropout(x, 0.1)
    out, grads, after, node = _run(function, [x], grad)
    assert node == "_NativeDropoutBackward"
    _eager(monkeypatch)
    expected_out, expected_grads, expected_after, _ = _run(function, [x], grad)
    assert torch.equal(out, expected_out) and torch.equal(grads[0], expected_grads[0])
    assert torch.equal(after, expected_after)
    assert _run(function, [x.bfloat16()], grad.bfloat16())[3] != node  # bf16: the eager formula


@pytest.mark.parametrize("p", [0.1, 0.0])
def test_residual_norm_equals_the_eager_formulas(built, monkeypatch, p):
    torch.manual_seed(0)
    norm, dropout = nn.LayerNorm(48, eps=1e-12), CPUDropout(p)
    nn.init.normal_(norm.weight), nn.init.normal_(norm.bias)
    x, residual, grad = torch.randn(3, 7, 48), torch.randn(3, 7, 48), torch.randn(3, 7, 48)

    def function(x, residual):
        norm.zero_grad()
        return residual_norm(x, residual, dropout, norm)

    results = []
    for native_on in (True, False):
        if not native_on:
            _eager(monkeypatch)
        out, grads, after, node = _run(function, [x, residual], grad)
        results.append((out, [*grads, norm.weight.grad, norm.bias.grad], after, node))
    (out, grads, after, node), (expected_out, expected_grads, expected_after, expected_node) = results
    assert node == "_ResidualNormBackward" and expected_node != node
    torch.testing.assert_close(out, expected_out)
    for got, expected in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, expected)
    assert torch.equal(after, expected_after)  # p = 0 draws nothing, as the eager dropout


def test_residual_norm_computes_the_eager_way_where_the_kernel_does_not_fit(built):
    x, residual = torch.randn(2, 3, 32, requires_grad=True), torch.randn(2, 3, 32)
    norm, dropout = nn.LayerNorm(32), CPUDropout(0.1)
    assert type(residual_norm(x, residual, dropout, norm).grad_fn).__name__ == "_ResidualNormBackward"
    dropout.eval()  # evaluation
    assert type(residual_norm(x, residual, dropout, norm).grad_fn).__name__ != "_ResidualNormBackward"
    dropout.train()
    wrapped = type("WrappedNorm", (nn.LayerNorm,), {})(32)  # a norm something else wraps (a PEFT layer, say)
    assert type(residual_norm(x, residual, dropout, wrapped).grad_fn).__name__ != "_ResidualNormBackward"
    narrow = torch.randn(2, 3, 24, requires_grad=True)  # width not a multiple of 16
    assert type(residual_norm(narrow, narrow, dropout, nn.LayerNorm(24)).grad_fn).__name__ != "_ResidualNormBackward"


def _bert(path: str, task, **options) -> FrozenPretrainedTransformer:
    torch.manual_seed(0)
    return FrozenPretrainedTransformer(FPTConfig(**task.spec.model_fields(), backbone=path, init="random", **options))


def test_a_bert_trains_with_them_like_without(built, monkeypatch, tiny_bert):
    task = get_task("bit-xor", n_bits=5)
    batch = next(task.train_batches(8, 0))
    model = _bert(tiny_bert, task)
    assert NATIVE_KERNELS in model.fast_paths
    outputs = {type(m) for m in model.modules()}
    assert NativeBertSelfOutput in outputs and NativeBertOutput in outputs

    def step():
        torch.manual_seed(1)
        loss = task.loss(model(batch.inputs), batch.targets)
        model.zero_grad()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss, grads = step()
    _eager(monkeypatch)
    expected_loss, expected_grads = step()
    torch.testing.assert_close(loss, expected_loss)
    assert grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    drop_cpu_fast_paths(model)  # a GPU or torch.compile: the plain modules again
    assert NATIVE_KERNELS not in model.fast_paths
    assert not {NativeBertSelfOutput, NativeBertOutput} & {type(m) for m in model.modules()}


def test_without_kernels_the_model_is_built_the_eager_way(monkeypatch, tiny_bert):
    monkeypatch.setattr(native, "_load", lambda: (None, "no C compiler (`cc`, or $CC) on PATH: the eager formulas"))
    task = get_task("bit-xor", n_bits=5)
    model = _bert(tiny_bert, task)
    assert NATIVE_KERNELS not in model.fast_paths and "cpu-dropout" in model.fast_paths
    assert not {NativeBertSelfOutput, NativeBertOutput} & {type(m) for m in model.modules()}
    batch = next(task.train_batches(4, 0))
    task.loss(model(batch.inputs), batch.targets).backward()


@needs_compiler
def test_the_build_is_cached_and_its_failures_are_said(monkeypatch, tmp_path):
    monkeypatch.setenv("FPT_CACHE", str(tmp_path))
    compiles, run = [], subprocess.run

    def counting_run(args, **kwargs):
        compiles.extend([args] if "-o" in args else [])
        return run(args, **kwargs)

    monkeypatch.setattr(native.subprocess, "run", counting_run)
    assert native.load_for("DEFAULT")[1] == "built"
    assert native.load_for("DEFAULT")[1] == "built"  # from the cache
    assert len(compiles) == 1 and len(list((tmp_path / "kernels").iterdir())) == 1
    monkeypatch.setenv("CC", "false")  # a compiler that fails
    lib, why = native.load_for("AVX2")
    assert lib is None and "exited with 1" in why and why.endswith("the eager formulas")
    assert not list((tmp_path / "kernels").glob(".*.tmp"))  # nothing half-built left behind
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    assert native.load_for("AVX2") == (None, "no C compiler (`cc`, or $CC) on PATH: the eager formulas")
    monkeypatch.setenv(native.DISABLE, "0")
    assert native._load.__wrapped__() == (None, f"off ({native.DISABLE}=0)")


def test_a_second_derivative_through_a_kernel_fails_loudly(built):
    """The kernels' gradients carry no graph: differentiating them again raises, never gives zero silently."""
    weight = torch.randn(8, 32, requires_grad=True)
    out = fast_dropout(torch.randn(4, 8) @ weight, 0.1)
    (grad,) = torch.autograd.grad(out.pow(2).sum(), weight, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.pow(2).sum().backward()

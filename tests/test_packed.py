"""Frozen matrices packed for oneDNN: the same products in bf16 (bit for bit) and fp32 (to rounding), forward
and input gradient; packs follow the weight (reload, cast, move) and never reach state dicts or copies."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

import fpt.model.packed as packed
from fpt.model import FPTConfig, FrozenPretrainedTransformer
from fpt.model.packed import PACKED_MATRICES, PackedProduct, pack_frozen_matrices, unpack_frozen_matrices
from fpt.tasks import get_task
from fpt.training.precision import Precision

TASK = get_task("bit-memory", n_strings=3, n_bits=20, bits_per_token=5)
NATIVE_BF16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _packs(model: nn.Module) -> int:
    return sum(len(m.__dict__["_fpt_packs"].made) for m in model.modules() if "_fpt_packs" in m.__dict__)


def _step(model, precision: Precision, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(1)  # the same dropout masks for both models
    with precision.autocast():
        logits = model(batch.inputs)
    TASK.loss(logits.float(), batch.targets).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return logits, grads


@pytest.mark.parametrize("backbone", ["tiny_bert", "tiny_gpt2"])
@pytest.mark.parametrize("name", ["bf16", "fp32"])
def test_a_training_step_computes_what_the_plain_layers_do(request, backbone, name):
    torch.manual_seed(0)
    fast = FrozenPretrainedTransformer(
        FPTConfig(**TASK.spec.model_fields(), backbone=request.getfixturevalue(backbone), init="random")
    )
    assert PACKED_MATRICES in fast.fast_paths
    plain = copy.deepcopy(fast)
    assert unpack_frozen_matrices(plain) and not any(isinstance(m, PackedProduct) for m in plain.modules())
    precision = Precision(name, "cpu")
    for model in (fast, plain):
        precision.store_frozen_matrices(model)
    batch = next(TASK.train_batches(6, 0))
    (fast_logits, fast_grads), (logits, grads) = _step(fast, precision, batch), _step(plain, precision, batch)
    assert fast_grads.keys() == grads.keys() and "embedder.proj.weight" in grads  # through every frozen layer
    used = name == "fp32" or NATIVE_BF16  # emulated bf16: the plain forward, on purpose
    assert (_packs(fast) > 0) == used and _packs(plain) == 0
    if name == "bf16":  # PyTorch's own bf16 product is oneDNN's, on the unpacked weight: the same bits
        assert torch.equal(fast_logits, logits)
        assert all(torch.equal(fast_grads[n], grads[n]) for n in grads)
    else:  # MKL's fp32 product sums in another order
        torch.testing.assert_close(fast_logits, logits, rtol=1e-5, atol=1e-6)
        for n in grads:
            torch.testing.assert_close(fast_grads[n], grads[n], rtol=1e-4, atol=1e-6, msg=n)
    assert list(fast.state_dict()) == list(plain.state_dict())


@pytest.mark.parametrize(
    "make", [lambda: nn.Linear(24, 40), lambda: nn.Linear(24, 40, bias=False), lambda: Conv1D(40, 24)]
)
def test_packs_follow_the_weight_and_stay_out_of_copies(make):
    torch.manual_seed(0)
    holder = nn.Sequential(make().requires_grad_(False))
    plain = copy.deepcopy(holder)
    assert pack_frozen_matrices(holder)
    layer = holder[0]
    x = torch.randn(3, 5, 24)
    torch.testing.assert_close(layer(x), plain(x))
    assert _packs(holder) == 1  # the forward's; the transposed one waits for a backward
    new = {k: torch.randn_like(v) for k, v in plain.state_dict().items()}
    holder.load_state_dict(new), plain.load_state_dict(new)  # in place: the version moves on
    torch.testing.assert_close(layer(x), plain(x))
    layer.to(torch.float64)  # moved or cast: the packs of the old weight go
    assert _packs(holder) == 0 and torch.equal(layer(x.double()), plain.double()(x.double()))
    layer.float()
    clone = copy.deepcopy(holder)
    restored = pickle.loads(pickle.dumps(holder))
    for other in (clone, restored):
        assert isinstance(other[0], PackedProduct) and _packs(other) == 0
        torch.testing.assert_close(other(x), holder(x))
    assert list(holder.state_dict()) == list(plain.state_dict())


def test_trained_layers_fp16_and_a_lack_of_memory_take_the_plain_forward(monkeypatch):
    torch.manual_seed(0)
    holder = nn.Sequential(nn.Linear(8, 8).requires_grad_(False))
    assert pack_frozen_matrices(holder)
    layer = holder[0]
    x = torch.randn(4, 8)
    with torch.autocast("cpu", dtype=torch.float16):
        assert layer(x).dtype == torch.float16
    layer.weight.requires_grad_(True)  # trains now: the layer's own forward and weight gradient
    layer(x).sum().backward()
    assert layer.weight.grad is not None and _packs(holder) == 0
    assert unpack_frozen_matrices(holder) and type(layer) is nn.Linear and not unpack_frozen_matrices(holder)
    layer.weight.requires_grad_(False)
    monkeypatch.setattr(packed, "available_bytes", lambda: 1024)  # two copies of 8 x 8 floats: 512 bytes
    assert not pack_frozen_matrices(holder) and type(layer) is nn.Linear

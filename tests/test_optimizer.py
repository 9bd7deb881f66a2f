"""Fused Adam and multi-tensor clipping: the same arithmetic as PyTorch's per-tensor defaults."""

from __future__ import annotations

import torch

from fpt.training.optimizer import clip_gradients, make_optimizer


def _params(seed: int, scale: float) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in ((8,), (4, 8), (3,), (2, 8))]
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator) * scale
    return params


def test_clipping_matches_pytorch_exactly_above_and_below_the_limit():
    for scale in (10.0, 0.01):  # clipped, and left alone
        ours, theirs = _params(0, scale), _params(0, scale)
        norm = clip_gradients(ours, 1.0)
        expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
        assert torch.equal(norm, expected)
        for a, b in zip(ours, theirs, strict=True):
            assert torch.equal(a.grad, b.grad)
    assert clip_gradients([torch.nn.Parameter(torch.ones(2))], 1.0).item() == 0  # no gradients yet


def test_fused_adam_on_cpu_agrees_with_the_per_tensor_loop():
    ours, theirs = _params(1, 1.0), _params(1, 1.0)
    fused = make_optimizer(ours, 1e-3, torch.device("cpu"))
    loop = torch.optim.Adam(theirs, lr=1e-3, foreach=False)
    assert fused.defaults["fused"]
    for _ in range(3):
        fused.step(), loop.step()
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    state = fused.state_dict()  # the checkpoint format is Adam's own: a loop optimizer reads it
    torch.optim.Adam(theirs, lr=1e-3).load_state_dict(state)

"""Fusing GPT-2's tanh-GELU, chosen in the config the backbone is built from, changes no output and no
gradient beyond rounding."""

from __future__ import annotations

import torch
from transformers.activations import GELUTanh, NewGELUActivation

from fpt.backbones import load_backbone, load_config
from fpt.model.activations import fused_activation_settings


def test_fused_gelu_matches_the_python_formula(quiet_gpt2):
    settings = fused_activation_settings(load_config(quiet_gpt2))
    assert settings == {"activation_function": "gelu_pytorch_tanh"}  # GPT-2's gelu_new, by its fused name
    python, fused = (load_backbone(quiet_gpt2, "random", seed=0, settings=s).model for s in ({}, settings))
    assert python.config.activation_function == "gelu_new" and fused.config.activation_function == "gelu_pytorch_tanh"
    layers = len([m for m in python.modules() if isinstance(m, NewGELUActivation)])
    assert layers > 0
    assert not any(isinstance(m, NewGELUActivation) for m in fused.modules())
    assert sum(isinstance(m, GELUTanh) for m in fused.modules()) == layers
    assert fused_activation_settings(fused.config) == {}  # already fused: nothing to choose
    torch.manual_seed(0)
    inputs = torch.randn(6, 16, python.config.n_embd)
    outputs, grads = [], []
    for model in (python, fused):
        out = model(inputs_embeds=inputs).last_hidden_state
        out.square().mean().backward()
        outputs.append(out.detach())
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)

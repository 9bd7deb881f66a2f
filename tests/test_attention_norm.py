"""QK-norms (Gemma 3, Qwen3) are their own group, `attention-norm`, frozen by the paper's `fpt` preset."""

from __future__ import annotations

import pytest
import torch

from fpt import FPTConfig, FPTError, FrozenPretrainedTransformer
from fpt.cli import main
from fpt.model.freeze import FreezePolicy
from fpt.model.methods.peft_adapters import wrapped_modules


def save_tiny_gemma3(path, **overrides) -> str:
    """A small Gemma 3 text model (sliding + global attention, QK-norms), random weights, saved to `path`."""
    from transformers import Gemma3TextConfig, Gemma3TextModel

    torch.manual_seed(0)
    sizes = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    config = Gemma3TextConfig(**sizes, vocab_size=100, max_position_embeddings=128, sliding_window=4, **overrides)
    Gemma3TextModel(config).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_gemma3(tmp_path_factory) -> str:
    """2 layers: one sliding-window, one global."""
    layers = dict(num_hidden_layers=2, layer_types=["sliding_attention", "full_attention"])
    return save_tiny_gemma3(tmp_path_factory.mktemp("tiny-gemma3"), **layers)


@pytest.fixture(scope="module")
def tiny_qwen3(tmp_path_factory) -> str:
    from transformers import Qwen3Config, Qwen3Model

    path = tmp_path_factory.mktemp("tiny-qwen3")
    torch.manual_seed(0)
    config = Qwen3Config(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        vocab_size=100,
        max_position_embeddings=128,
    )
    Qwen3Model(config).save_pretrained(path)
    return str(path)


def build(backbone: str, train: str = "fpt") -> FrozenPretrainedTransformer:
    return FrozenPretrainedTransformer(
        FPTConfig(input_dim=3, max_length=8, num_classes=2, backbone=backbone, train=train)
    )


def trained_groups(model: FrozenPretrainedTransformer) -> set[str]:
    return {model.groups[n] for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("which", ["tiny_gemma3", "tiny_qwen3"])
def test_qk_norms_are_attention_norm_and_frozen_by_fpt(which, request):
    model = build(request.getfixturevalue(which))
    groups = model.groups
    block = "backbone.layers.0."
    assert groups[f"{block}self_attn.q_norm.weight"] == "attention-norm"
    assert groups[f"{block}self_attn.k_norm.weight"] == "attention-norm"
    assert groups[f"{block}self_attn.q_proj.weight"] == "attention"
    assert groups[f"{block}input_layernorm.weight"] == "norm" and groups["backbone.norm.weight"] == "norm"
    assert trained_groups(model) == {"input", "output", "position", "norm"}
    report = model.freeze_report()
    assert any(line.split()[:1] == ["attention-norm"] and line.endswith("frozen") for line in report.splitlines())


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("fpt,attention-norm", {"input", "output", "position", "norm", "attention-norm"}),
        ("fpt+attention-norm", {"input", "output", "position", "norm", "attention-norm"}),
        ("fpt+attention", {"input", "output", "position", "norm", "attention-norm", "attention"}),
        ("output,attention-norm", {"output", "attention-norm"}),
    ],
)
def test_attention_norm_trains_when_named(tiny_gemma3, spec, expected):
    model = build(tiny_gemma3, train=spec)
    assert trained_groups(model) == expected
    assert model.groups["backbone.layers.1.self_attn.k_norm.weight"] in expected


def test_naming_attention_norm_on_a_backbone_without_it_is_an_error(tiny_gpt2, tiny_llama):
    for backbone in (tiny_gpt2, tiny_llama):
        with pytest.raises(FPTError, match="no parameters in that group"):
            build(backbone, train="fpt,attention-norm")
    # A preset inside a mixed spec still applies only to the groups a backbone has.
    assert trained_groups(build(tiny_gpt2, train="fpt,feed-forward")) == {
        "input",
        "output",
        "position",
        "norm",
        "feed-forward",
    }


def test_mixed_spec_parsing():
    policy = FreezePolicy.parse("output+norm,attention-norm")
    assert policy.trained == {"output", "norm", "attention-norm"} and policy.named == {"attention-norm"}
    assert FreezePolicy.parse("fpt").named == frozenset()
    with pytest.raises(FPTError, match="qk-norm is not a group"):
        FreezePolicy.parse("fpt,qk-norm")


def test_describe_shows_attention_norm_frozen(tiny_gemma3, capsys):
    assert main(["describe", "--backbone", tiny_gemma3]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.strip().startswith("attention-norm"))
    assert line.split()[-1] == "frozen" and int(line.split()[1].replace(",", "")) == 2 * 2 * 16
    assert "--train fpt,attention-norm" in out


def test_zero_inputs_give_finite_gradients_through_a_bias_free_post_norm_stack(tmp_path):
    """Bit XOR's 0 bits embed to exactly zero (zero-bias input layer, as the paper's). In a bias-free
    backbone with norms after each sub-layer (Gemma 3), a token whose hidden state is zero at the first
    layer stays zero through every layer, and each norm multiplies its gradient by 1/sqrt(eps): the
    real 18-layer gemma3-270m overflowed to NaN on its first step. The added position table must
    therefore not start at exactly zero."""
    # Pretrained-like weight scales (initializer_range 0.2): enough for the growth to overflow in 12 layers.
    model = build(save_tiny_gemma3(tmp_path, num_hidden_layers=12, initializer_range=0.2))
    inputs = torch.zeros(2, 8, 3)
    inputs[1, 3:] = 1.0  # one all-zero sequence, one that starts with zero tokens
    model(inputs).sum().backward()
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert bad == []


def test_ln_tuning_without_a_peft_table_tunes_the_norm_group_not_the_qk_norms(monkeypatch, tiny_gemma3):
    """Where the installed peft has no LN-tuning table (the declared minimum has none for Gemma 3), the
    fallback targets our `norm` group, as the `fpt` policy does, whichever peft is installed."""
    from peft.utils import constants

    monkeypatch.delitem(constants.TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING, "gemma3_text", raising=False)
    targets = {name.rsplit(".", 1)[-1] for name in wrapped_modules(build(tiny_gemma3, "ln-tuning").backbone)}
    assert "input_layernorm" in targets and not targets & {"q_norm", "k_norm"}

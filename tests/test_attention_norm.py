"""QK-norms (Gemma 3, Qwen3) are their own group, `attention-norm`, frozen by the paper's `fpt` preset."""

from __future__ import annotations

import pytest
import torch

from fpt import FPTConfig, FPTError, FrozenPretrainedTransformer
from fpt.cli import main
from fpt.model.freeze import FreezePolicy


@pytest.fixture(scope="module")
def tiny_gemma3(tmp_path_factory) -> str:
    """A 2-layer Gemma 3 text model (sliding + global attention, QK-norms), random weights."""
    from transformers import Gemma3TextConfig, Gemma3TextModel

    path = tmp_path_factory.mktemp("tiny-gemma3")
    torch.manual_seed(0)
    config = Gemma3TextConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        vocab_size=100,
        max_position_embeddings=128,
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
    )
    Gemma3TextModel(config).save_pretrained(path)
    return str(path)


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

"""The FPT model on more decoder families, padded inputs, and the output head."""

from __future__ import annotations

import pytest
import torch

from fpt import FPTConfig, FrozenPretrainedTransformer
from tests.test_groups import step_changes


@pytest.fixture(scope="module", params=["qwen2", "gemma"])
def tiny_decoder(request, tmp_path_factory) -> str:
    from transformers import GemmaConfig, GemmaModel, Qwen2Config, Qwen2Model

    sizes = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        vocab_size=100,
    )
    path = tmp_path_factory.mktemp(request.param)
    torch.manual_seed(0)
    if request.param == "qwen2":
        Qwen2Model(Qwen2Config(**sizes)).save_pretrained(path)
    else:
        GemmaModel(GemmaConfig(**sizes, head_dim=8)).save_pretrained(path)
    return str(path)


def test_rotary_rmsnorm_families_group_and_freeze(tiny_decoder):
    model = FrozenPretrainedTransformer(FPTConfig(input_dim=3, max_length=12, num_classes=4, backbone=tiny_decoder))
    assert {"input", "output", "position", "norm", "attention", "feed-forward"} <= set(model.groups.values())
    assert model.learned_positions is not None
    frozen_changed, trained_same = step_changes(model)
    assert frozen_changed == [] and trained_same == []


@pytest.mark.parametrize("which", ["tiny_gpt2", "minilm"])
def test_padding_does_not_change_predictions(which, request):
    backbone = "minilm" if which == "minilm" else request.getfixturevalue(which)
    model = FrozenPretrainedTransformer(
        FPTConfig(input_dim=4, max_length=8, num_classes=3, output_tokens=2, input_kind="discrete", backbone=backbone)
    ).eval()
    ids = torch.randint(0, 4, (1, 5))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.tensor([[True] * 5 + [False] * 3])
    with torch.no_grad():
        torch.testing.assert_close(model(padded, mask), model(ids), rtol=1e-4, atol=1e-5)


def test_head_reads_the_last_k_real_positions():
    from fpt.model.heads import OutputHead

    head = OutputHead(hidden=2, output_tokens=2, outputs_per_token=1, num_classes=2)
    with torch.no_grad():
        head.proj.weight.copy_(torch.eye(2))
        head.proj.bias.zero_()
    states = torch.arange(12.0).reshape(1, 6, 2)
    assert head(states).flatten().tolist() == [8.0, 9.0, 10.0, 11.0]
    assert head(states, torch.tensor([4])).flatten().tolist() == [4.0, 5.0, 6.0, 7.0]


def test_fingerprint_does_not_depend_on_where_the_backbone_was_loaded_from(tiny_decoder, tmp_path):
    """A copy of the same backbone in another folder (another venv, machine or cache) fingerprints the same,
    so its checkpoints reload there; a changed architecture still does not."""
    import shutil

    from transformers import AutoConfig

    copy = tmp_path / "elsewhere"
    shutil.copytree(tiny_decoder, copy)
    shapes = dict(input_dim=3, max_length=12, num_classes=4)
    here = FrozenPretrainedTransformer(FPTConfig(**shapes, backbone=tiny_decoder)).fingerprint
    there = FrozenPretrainedTransformer(FPTConfig(**shapes, backbone=str(copy))).fingerprint
    assert AutoConfig.from_pretrained(copy)._name_or_path != AutoConfig.from_pretrained(tiny_decoder)._name_or_path
    assert (here["config_hash"], here["weights_hash"]) == (there["config_hash"], there["weights_hash"])
    shallower = FrozenPretrainedTransformer(FPTConfig(**shapes, backbone=str(copy), layers=1)).fingerprint
    assert shallower["config_hash"] != here["config_hash"]

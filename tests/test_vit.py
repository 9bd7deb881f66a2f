"""An image-pretrained backbone through the adapter protocol: a tiny random ViT written here, fed FPT's
tokens in place of its patch embeddings (fpt.backbones.vit)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fpt import FPTConfig, FPTError, FrozenPretrainedTransformer
from fpt.backbones import adapter_for, load_backbone
from fpt.backbones.vit import ViTBackbone, resample_positions
from fpt.cli import main

pytestmark = pytest.mark.vit


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> str:
    """A 2-layer, 32-wide ViT on 16x16 images of 4x4 patches (a 4x4 grid: 16 positions + [CLS])."""
    from transformers import ViTConfig, ViTModel

    path = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(0)
    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=16,
        patch_size=4,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    ViTModel(config).save_pretrained(path)
    return str(path)


def build(backbone: str, max_length: int = 16, train: str = "fpt", **kwargs) -> FrozenPretrainedTransformer:
    config = FPTConfig(
        input_dim=3, max_length=max_length, num_classes=4, output_tokens=2, backbone=backbone, train=train
    )
    for key, value in kwargs.items():
        setattr(config, key, value)
    return FrozenPretrainedTransformer(config).eval()


def test_from_embedded_patches_the_adapter_computes_what_vit_computes_from_pixels(tiny_vit):
    vit = load_backbone(tiny_vit).model.eval()
    pixels = torch.randn(2, 3, 16, 16)
    adapter = adapter_for(vit)
    assert isinstance(adapter, ViTBackbone) and adapter.width == 32 and not adapter.causal
    ours = adapter.forward(vit.embeddings.patch_embeddings(pixels)).last_hidden_state
    theirs = vit(pixel_values=pixels).last_hidden_state
    assert torch.equal(ours, theirs[:, 1:])  # the same computation; [CLS]'s row left out


def test_groups_find_the_bare_position_parameter_and_the_bypassed_patch_projection(tiny_vit):
    model = build(tiny_vit)
    groups = model.groups
    assert groups["backbone.embeddings.position_embeddings"] == "position"
    assert groups["backbone.embeddings.cls_token"] == "other"
    assert groups["backbone.embeddings.patch_embeddings.projection.weight"] == "unused"
    assert groups["backbone.layers.0.layernorm_before.weight"] == "norm"
    assert groups["backbone.layers.0.attention.q_proj.weight"] == "attention"
    assert groups["backbone.layers.0.mlp.fc1.weight"] == "feed-forward"
    assert model.backbone.embeddings.position_embeddings.requires_grad  # fpt trains positions
    assert not model.backbone.embeddings.cls_token.requires_grad
    assert model.position_table is None  # 16 tokens: the pretraining grid, used as it is
    report = model.freeze_report()
    assert "patch-embed." in report and "special token(s) ([CLS]) go first" in report


def test_a_square_number_of_tokens_resamples_the_table_as_a_grid():
    columns = torch.arange(4.0).repeat(4)  # a 4x4 grid whose rows vary only across columns
    table = torch.stack([columns, -columns], dim=1)
    square = resample_positions(table, 9).reshape(3, 3, 2)
    assert torch.allclose(square[0], square[1]) and torch.allclose(square[1], square[2])  # 2-d: still by column
    raster = resample_positions(table, 10)  # not a square: along the raster order, ends kept
    assert raster.shape == (10, 2) and torch.equal(raster[0], table[0]) and torch.allclose(raster[-1], table[-1])


def test_other_lengths_resample_the_patch_rows_and_keep_cls(tiny_vit):
    pretrained = load_backbone(tiny_vit).model.embeddings.position_embeddings
    model = build(tiny_vit, max_length=9)
    table = model.backbone.embeddings.position_embeddings
    assert table.shape == (1, 10, 32) and torch.equal(table[0, 0], pretrained[0, 0])
    assert model.position_table == {"interpolated_from": 16, "to": 9}
    assert "interpolated from 16 to 9" in model.freeze_report()
    assert model(torch.randn(2, 9, 3)).shape == (2, 2, 4)


def test_padding_is_masked_out(tiny_vit):
    model = build(tiny_vit, max_length=8)
    inputs = torch.randn(2, 8, 3)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0
    padded = model(inputs, mask)
    alone = model(inputs[1:, :5], mask[1:, :5])
    assert torch.allclose(padded[1], alone[0], atol=1e-5)


def test_attention_maps_cover_the_input_tokens(tiny_vit):
    model = build(tiny_vit, max_length=6, attn_implementation="eager")
    out = model.encode(torch.randn(2, 6, 3), output_attentions=True, output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 6, 32)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 2, 6, 6)
    assert len(out.hidden_states) == 3 and out.hidden_states[0].shape == (2, 6, 32)


def test_align_says_an_image_backbone_has_no_text_to_align_to(tiny_vit):
    from fpt.tasks import get_task
    from fpt.training.align import align

    model = build(tiny_vit, max_length=10)
    with pytest.raises(FPTError, match="has none: it was pretrained on another modality"):
        align(model, get_task("bit-xor"), "mmd", 1, 1e-3, 0)


def test_fpt_train_trains_a_vit_end_to_end_and_reloads(tiny_vit, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--backbone", tiny_vit, "--task", "bit-xor", "--steps", "4", "--eval-every", "2"]
    assert main([*argv, "--task-option", "val_size=16", "--task-option", "test_size=16", "--out", str(run)]) == 0
    report = (run / "freeze_report.txt").read_text()
    assert "ViTModel" in report and any(
        line.split()[0] == "position" and line.endswith("trained") for line in report.splitlines()[2:]
    )
    summary = json.loads((run / "summary.json").read_text())
    assert summary["position_table"] == {"interpolated_from": 16, "to": 10}
    trained = load_file(str(run / "checkpoints" / "best" / "model.safetensors"))
    assert "backbone.embeddings.position_embeddings" in trained
    model = FrozenPretrainedTransformer.from_run(run).eval()
    assert torch.equal(
        model.backbone.embeddings.position_embeddings, trained["backbone.embeddings.position_embeddings"]
    )
    capsys.readouterr()
    assert main(["eval", str(run), "--split", "test"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == summary["test_accuracy"]
    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 2, (3, 10, 1)).astype(np.float32))
    assert main(["predict", str(run), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "p.npy")]) == 0
    assert np.load(tmp_path / "p.npy").shape[0] == 3


def test_describe_says_how_the_backbone_is_driven(tiny_vit, capsys):
    assert main(["describe", "--backbone", tiny_vit]) == 0
    assert (
        "Backbone: 2 blocks, width 32, encoder (every position sees all); driven by ViTBackbone"
        in capsys.readouterr().out
    )


def test_vit_base_without_weights_says_how_to_get_them(capsys):
    assert main(["describe", "--backbone", "vit-base"]) == 2
    err = capsys.readouterr().err
    assert "google/vit-base-patch16-224-in21k" in err and "huggingface-cli download" in err


def test_vit_base_ships_its_config_for_offline_random_init():
    from fpt.backbones import load_config

    config = load_config("vit-base")
    assert (
        config.model_type == "vit"
        and config.hidden_size == 768
        and (config.image_size // config.patch_size) ** 2 == 196
    )


def test_the_paper_vit_row_is_one_shipped_grid():
    from fpt.experiments.sweep import expand, load_grid

    grid = expand(load_grid("vit-cifar10"))
    assert grid.conditions == ["language (GPT-2)", "ViT (images)", "random (GPT-2)"]
    vit = [r for r in grid.runs if r.condition == "ViT (images)"]
    assert {r.config["backbone"] for r in vit} == {"vit-base"} and len(vit) == 9


def test_memory_floors_count_the_cls_position(tiny_vit):
    from fpt.memory import pass_bytes

    model = build(tiny_vit)  # 2 layers, 32 wide, no dropout: no score matrices are kept
    # inputs (16 tokens of 3 values) + 17 positions ([CLS] and the tokens) x 32 units x (2 layers + 1)
    assert pass_bytes(model, 2, 16, 3, True) == 4.0 * 2 * (16 * 3 + 17 * 32 * 3)


def test_a_trained_vit_run_is_a_from_init(tiny_vit, tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--backbone", tiny_vit, "--task", "bit-xor", "--steps", "2", "--eval-every", "2"]
    assert main([*argv, "--task-option", "val_size=8", "--task-option", "test_size=8", "--out", str(run)]) == 0
    source = FrozenPretrainedTransformer.from_run(run)
    model = build(tiny_vit, max_length=10, init=f"from:{run}")
    assert torch.equal(model.backbone.embeddings.position_embeddings, source.backbone.embeddings.position_embeddings)

"""Transformer baselines: `layers` keeps the first N blocks; `from:RUN_DIR` loads a fully trained backbone."""

from __future__ import annotations

import pytest
import torch

from fpt import FPTError, RunConfig, train
from fpt.backbones.groups import block_list
from fpt.model import FPTConfig, FrozenPretrainedTransformer

QUIET = dict(progress=False, log=lambda *a: None)
MEMORY = {"n_strings": 2, "n_bits": 8, "bits_per_token": 4, "val_size": 16, "test_size": 16}


def test_layers_keeps_the_first_blocks(tiny_gpt2):
    full = FrozenPretrainedTransformer(FPTConfig(input_dim=1, max_length=10, num_classes=2, backbone=tiny_gpt2))
    cut = FrozenPretrainedTransformer(
        FPTConfig(input_dim=1, max_length=10, num_classes=2, backbone=tiny_gpt2, layers=1)
    )
    assert len(block_list(cut.backbone)) == 1 and cut.backbone.config.num_hidden_layers == 1
    first = dict(full.backbone.named_parameters())
    for name, param in cut.backbone.named_parameters():
        assert torch.equal(param, first[name]), name
    assert cut.fingerprint["config_hash"] != full.fingerprint["config_hash"]
    assert cut(torch.randn(2, 10, 1)).shape == (2, 1, 2)
    with pytest.raises(FPTError, match="from 1 to 2"):
        FrozenPretrainedTransformer(FPTConfig(input_dim=1, max_length=10, num_classes=2, backbone=tiny_gpt2, layers=3))


def test_bit_memory_pretrained_backbone_loads_with_from_run_dir(tiny_gpt2, tmp_path):
    source = tmp_path / "memory"
    train(
        RunConfig(
            task="bit-memory",
            task_options=MEMORY,
            backbone=tiny_gpt2,
            init="random",
            train="all",
            layers=1,
            steps=3,
            eval_every=3,
            batch_size=4,
            lr=1e-2,
            out=str(source),
        ),
        **QUIET,
    )
    trained = FrozenPretrainedTransformer.from_run(source).backbone.state_dict()
    untouched = FrozenPretrainedTransformer(
        FPTConfig(input_dim=4, max_length=12, num_classes=2, backbone=tiny_gpt2, init="random", layers=1)
    ).backbone.state_dict()
    summary = train(
        RunConfig(
            task="bit-xor",
            task_options={"n_bits": 2, "val_size": 16, "test_size": 16},
            backbone=tiny_gpt2,
            init=f"from:{source}",
            steps=2,
            eval_every=2,
            batch_size=4,
            out=str(tmp_path / "xor"),
        ),
        **QUIET,
    )
    assert summary["test_accuracy"] is not None
    loaded = FrozenPretrainedTransformer.from_run(tmp_path / "xor")
    assert len(block_list(loaded.backbone)) == 1
    state = loaded.backbone.state_dict()
    attention = [k for k in trained if ".attn." in k]
    assert attention and all(torch.equal(state[k], trained[k]) for k in attention)  # frozen at the trained weights
    assert not all(torch.equal(state[k], untouched[k]) for k in attention)  # which differ from the random init

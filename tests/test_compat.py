"""A fast path outside the transformers versions it is tested with is off, says why once, and is not recorded."""

from __future__ import annotations

import logging

import pytest

import fpt.model.compat as compat
from fpt.model import FPTConfig, FrozenPretrainedTransformer
from fpt.model.fast_paths import CPU_DROPOUT, FUSED_GELU, NATIVE_KERNELS, READ_POSITIONS_ONLY
from fpt.model.packed import PACKED_MATRICES
from fpt.tasks import get_task
from tests.fast_path_names import gpt2_cpu_fast_paths


@pytest.fixture
def transformers_version(monkeypatch):
    """Pretend another transformers is installed (for the guard only)."""
    monkeypatch.setattr(compat, "_said", set())
    return lambda installed: monkeypatch.setattr(compat, "version", lambda package: installed)


def test_every_fast_path_has_a_tested_range():
    assert set(compat.TESTED) == {FUSED_GELU, CPU_DROPOUT, READ_POSITIONS_ONLY, PACKED_MATRICES, NATIVE_KERNELS}


@pytest.mark.parametrize(
    ("installed", "off"),
    [
        ("5.24.0", set()),
        ("5.30.1", set()),
        ("5.23.0", {READ_POSITIONS_ONLY}),
        ("5.0.0", {READ_POSITIONS_ONLY}),
        ("4.57.6", {FUSED_GELU, CPU_DROPOUT, READ_POSITIONS_ONLY, PACKED_MATRICES, NATIVE_KERNELS}),
        ("6.0.0", {FUSED_GELU, CPU_DROPOUT, READ_POSITIONS_ONLY, PACKED_MATRICES, NATIVE_KERNELS}),
    ],
)
def test_fast_paths_are_off_outside_their_tested_range(transformers_version, installed, off):
    transformers_version(installed)
    assert {name for name in compat.TESTED if compat.fast_path_off(name)} == off
    for name in off:
        assert compat.fast_path_off(name) == (
            f"fast path {name} is off: tested with transformers {compat.TESTED[name]}, installed {installed}"
        )


def test_a_model_built_outside_the_range_leaves_the_fast_path_out_and_says_so_once(
    transformers_version, quiet_gpt2, caplog
):
    transformers_version("5.10.0")
    shape = get_task("bit-xor").spec.model_fields()
    with caplog.at_level(logging.WARNING, logger="fpt"):
        models = [FrozenPretrainedTransformer(FPTConfig(**shape, backbone=quiet_gpt2, init="random")) for _ in range(2)]
    applied = gpt2_cpu_fast_paths()  # all but the last-block shortcut, which 5.10 is outside
    assert READ_POSITIONS_ONLY not in applied and FUSED_GELU in applied
    assert all(model.fast_paths == applied for model in models)
    said = [r.getMessage() for r in caplog.records if "is off: tested with transformers" in r.getMessage()]
    assert said == [f"fast path {READ_POSITIONS_ONLY} is off: tested with transformers >=5.24,<6, installed 5.10.0"]
    assert f"fast paths: {', '.join(applied)} " in models[0].freeze_report()


@pytest.mark.parametrize(
    ("installed", "refused"), [("5.8.0", True), ("5.0.0", True), ("5.9.0", False), ("6.0.0", True)]
)
def test_a_vit_backbone_is_refused_where_transformers_lays_vit_out_otherwise(transformers_version, installed, refused):
    from transformers import ViTConfig, ViTModel

    from fpt import FPTError
    from fpt.backbones.vit import ViTBackbone

    vit = ViTModel(ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                             image_size=4, patch_size=2))  # fmt: skip
    transformers_version(installed)
    if not refused:
        assert ViTBackbone(vit).prefix_tokens == 1
        return
    with pytest.raises(
        FPTError, match=rf"ViTModel cannot be used .* installed {installed}\. .*'transformers>=5\.9,<6'"
    ):
        ViTBackbone(vit)

"""Backbones: loading any Hugging Face transformer, how FPT drives it (fpt.backbones.adapter), its
parameter groups, and position handling. Each non-text family is one module that registers its adapter."""

from fpt.backbones import vit  # noqa: F401  (registers the ViT adapter and `vit-base`)
from fpt.backbones.adapter import BackboneAdapter, adapter_for, register_backbone_adapter
from fpt.backbones.groups import BACKBONE_GROUPS, classify_backbone, position_table
from fpt.backbones.loading import (
    INITS,
    Backbone,
    NamedBackbone,
    load_backbone,
    load_config,
    named_backbones,
    register_backbone,
)
from fpt.backbones.positions import extend_positions

__all__ = [
    "BACKBONE_GROUPS",
    "BackboneAdapter",
    "adapter_for",
    "register_backbone_adapter",
    "INITS",
    "Backbone",
    "classify_backbone",
    "extend_positions",
    "load_backbone",
    "load_config",
    "NamedBackbone",
    "named_backbones",
    "register_backbone",
    "position_table",
]

"""Backbones: loading any Hugging Face transformer, its parameter groups, and position handling."""

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

"""Training methods, one registry: a name -> which parameter groups train, what the method adds to the
frozen model, and how that is exported. PEFT's `register_peft_method` is the model, timm's registries
the manner.

A `Method` is its name (`--train NAME`), the groups it trains (fpt.model.freeze.GROUPS; the group
`adapter` is whatever its tuner adds), one line for `fpt list methods`, its row label in `fpt reproduce
methods` (None: not compared there), and optionally a `Tuner`: what it adds to the model (PEFT's LoRA,
a soft prompt), with typed options (`--method-option KEY=VALUE`) and a format of its own to export to.

Built in: the group presets (fpt.model.methods.groups), PEFT's adapters (.peft_adapters) and prompt
tuning (.prompt). A new method is one file like .prompt that calls `register_method`, plus its import
at the end of this file (or, from another package, an `fpt.methods` entry point or `--import MODULE`;
fpt.plugins). CONTRIBUTING.md has the recipe. ORCA's alignment (`--align`) is not a method: it is a
stage before training that goes with any of them (fpt.training.align).
"""

from __future__ import annotations

import logging
import math
import types
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from fpt.errors import FPTError, unknown_name
from fpt.yamlsafe import short


@dataclass(frozen=True)
class NoOptions:
    """The options of a tuner that takes none."""


@dataclass(frozen=True)
class Tuner:
    """What a method adds to the frozen model; its parameters are the `adapter` group.

    `add(model, options)` runs once the backbone and the new input and output layers exist and adds
    modules (to the backbone, as PEFT does, or beside it, as a soft prompt is `model.soft_prompt`):
    every parameter it creates is the `adapter` group. `describe(model, options)` is its line in the
    freeze report; `export(model, directory)` writes it in a format of its own (a PEFT adapter), besides
    `save_pretrained`, which stores every trained parameter for any method; `precheck(backbone, options)`
    refuses options that cannot fit a backbone known by name only (a grid's, before its first run).
    `options` is a dataclass whose fields all have defaults (PEFT's `LoraConfig`, small); a
    `prefix_tokens` attribute on it says how many positions the tuner puts before each input, so that
    position tables are sized for them."""

    name: str
    add: Callable[[Any, Any], None]
    describe: Callable[[Any, Any], str]
    options: type = NoOptions
    export: Callable[[Any, Path], Path] | None = None
    precheck: Callable[[str, Any], None] | None = None  # (backbone name, options): checked before any run

    def parse_options(self, values: dict) -> Any:
        """`values` (from --method-option) as this tuner's options, each checked against its field's type."""
        return parse_options(self.options, values, f"method {self.name!r}")


@dataclass(frozen=True)
class Method:
    """A training method: the groups it trains and, optionally, the tuner it adds."""

    name: str
    trains: tuple[str, ...]
    about: str
    compared: str | None = None  # the row label in `fpt reproduce methods`; None: not in that comparison
    tuner: Tuner | None = None

    @property
    def trains_everything(self) -> bool:
        """Whether the pretrained blocks themselves train (full fine-tuning: its own, lower lr grid)."""
        return "attention" in self.trains and "feed-forward" in self.trains


_METHODS: dict[str, Method] = {}


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Make `--train method.name` train `method`; returns it. A name that is taken is refused unless
    `replace=True`: it would silently change what `--train NAME` trains."""
    from fpt.model.freeze import GROUPS

    if _METHODS.get(method.name, method) != method and not replace:
        raise FPTError(
            f"Method name {method.name!r} is already taken; register it under a new name, or pass replace=True "
            "to register_method to replace it deliberately."
        )
    unknown = [g for g in method.trains if g not in GROUPS]
    if unknown:
        raise FPTError(f"Method {method.name!r} trains {', '.join(unknown)}, not groups; groups: {', '.join(GROUPS)}.")
    _METHODS[method.name] = method
    return method


def method_names() -> list[str]:
    """Registered methods in registration order (fpt's own, then plugins')."""
    from fpt.plugins import METHODS, load_entry_points

    load_entry_points(METHODS, _register_plugin)  # installed plugins' methods, once
    return list(_METHODS)


def _register_plugin(name: str, value: object) -> None:
    """An `fpt.methods` entry point: a Method (else a warning)."""
    if isinstance(value, Method):
        register_method(value)
    else:
        logging.getLogger("fpt").warning(f"method plugin {name!r} is a {type(value).__name__}; expected a Method")


def registering_module(train: str) -> str | None:
    """The module whose import registers the tuner of policy `train` (None: no tuner)."""
    from fpt.model.freeze import FreezePolicy

    tuner = FreezePolicy.parse(train).tuner
    return getattr(tuner and tuner.add, "__module__", None)


def get_method(name: str) -> Method:
    if name not in method_names():
        raise unknown_name(
            "method", name, method_names(), "Or give trained groups joined by commas (fpt list methods)."
        )
    return _METHODS[name]


def find_method(name: str) -> Method | None:
    """The method named `name`, or None (a group name, say)."""
    return _METHODS.get(name) if name in method_names() else None


def tuner_options(policy: Any, values: dict) -> Any:
    """A policy's method options (`--method-option`) as its tuner's typed options; a policy without a
    tuner takes none."""
    if policy.tuner is not None:
        return policy.tuner.parse_options(values)
    if values:
        raise FPTError(
            f"Policy {policy.spec!r} adds nothing to the model, so it takes no method options (got "
            f"{short(', '.join(map(str, values)), 100)}). Methods with options: `fpt list methods`."
        )
    return NoOptions()


def check_method_options(train: str, values: dict, backbone: str | None = None) -> Any:
    """The typed options that policy `train` takes from `values`, checked against `backbone` too where
    the tuner can (its `precheck`); an FPTError says what is wrong."""
    from fpt.model.freeze import FreezePolicy

    policy = FreezePolicy.parse(train)
    options = tuner_options(policy, values)
    if backbone is not None and policy.tuner is not None and policy.tuner.precheck is not None:
        policy.tuner.precheck(backbone, options)
    return options


# Before method options, run configs named LoRA's and the adapters' options as fields of their own.
LEGACY_OPTIONS = {"lora_rank": "rank", "lora_alpha": "alpha", "adapter_targets": "targets"}


def upgrade_legacy_options(values: dict) -> dict:
    """A run or model config's values with the old fields (lora_rank, lora_alpha, adapter_targets) moved
    into `method_options` as its tuner names them, where they differ from the default; for a policy
    without such a tuner they had no effect and are dropped. Runs recorded before stay loadable."""
    from fpt.model.freeze import FreezePolicy

    old = {LEGACY_OPTIONS[k]: values[k] for k in LEGACY_OPTIONS if k in values}
    if not old:
        return values
    upgraded = {k: v for k, v in values.items() if k not in LEGACY_OPTIONS}
    try:
        tuner = FreezePolicy.parse(values.get("train") or "fpt").tuner
    except FPTError:  # the policy's own error is raised where the config is used
        return upgraded
    defaults = {f.name: f.default for f in fields(tuner.options)} if tuner else {}
    kept = {k: v for k, v in old.items() if k in defaults and v != defaults[k]}
    if kept:
        upgraded["method_options"] = {**kept, **(values.get("method_options") or {})}
    return upgraded


def parse_options(options: type, values: dict, what: str) -> Any:
    """`options(**values)` for an options dataclass, naming unknown keys and values of the wrong type."""
    if not isinstance(values, dict):
        raise FPTError(f"The options of {what} must be a mapping of names to values, got {short(repr(values))}.")
    assert is_dataclass(options)
    hints = get_type_hints(options)
    known = {f.name: hints[f.name] for f in fields(options)}
    unknown = sorted(map(str, set(values) - set(known)))
    if unknown:
        have = ", ".join(known) or "none"
        raise FPTError(f"Unknown option(s) {', '.join(unknown)} for {what}; its options: {have} (fpt list methods).")
    wrong = [
        f"{k} must be {_kind(known[k])} (got {short(repr(v), 60)})" for k, v in values.items() if not _fits(v, known[k])
    ]
    if wrong:
        raise FPTError(f"Invalid option(s) for {what}: {'; '.join(wrong)}.")
    return options(**values)


def _allowed(hint: Any) -> tuple:
    if get_origin(hint) is Literal:
        return get_args(hint)
    if get_origin(hint) in (Union, types.UnionType):
        return tuple(v for arg in get_args(hint) for v in _allowed(arg))
    return (hint,)


def _fits(value: Any, hint: Any) -> bool:
    for allowed in _allowed(hint):
        if not isinstance(allowed, type):
            if value == allowed and not isinstance(value, bool):
                return True
        elif allowed is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                return True
        elif isinstance(value, allowed) and (allowed is bool or not isinstance(value, bool)):
            return True
    return False


def _kind(hint: Any) -> str:
    return " or ".join(
        "null" if a is type(None) else a.__name__ if isinstance(a, type) else repr(a) for a in _allowed(hint)
    )


from fpt.model.methods import groups, peft_adapters, prompt  # noqa: E402,F401  (fpt's own methods, in this order)

"""Typed config fields: each field's help, bounds and choices declared once, on the field.

A config dataclass (fpt.model.config.ModelConfig, fpt.training.config.RunConfig) declares each field
with `option(default, help, min=..., max=...)` and its choices as a `Literal` type; `problems(config)`
checks every value against its type hint and bounds, and `flat_fields` lists the fields of nested
configs in place of the config holding them, as flags and YAML keys name them (`--backbone`, not
`--model.backbone`). A new field needs no code elsewhere.
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterator
from dataclasses import MISSING, Field, field, fields
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from fpt.yamlsafe import short


def option(default: Any, help: str, *, min: float | None = None, max: float | None = None, **bounds: float) -> Any:
    """A config field: its default, one line of help, and inclusive bounds `min`/`max` (or
    exclusive ones: `above`, `below`)."""
    metadata = {"help": help, "min": min, "max": max, **bounds}
    if isinstance(default, (dict, list)):
        return field(default_factory=type(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def required(help: str, **bounds: float) -> Any:
    """A config field without a default (a keyword-only dataclass's), with `option`'s help and bounds."""
    return field(metadata={"help": help, **bounds})


def nested(config_class: type, help: str) -> Any:
    """A field holding a whole config (its fields are flat keys and flags of the outer one)."""
    return field(default_factory=config_class, metadata={"help": help, "nested": True})


def flat_fields(config_class: type) -> Iterator[tuple[Field, Any]]:
    """(field, type hint) of every field, a nested config's fields in its place."""
    hints = hints_of(config_class)
    for f in fields(config_class):
        if f.metadata.get("nested"):
            yield from flat_fields(hints[f.name])
        else:
            yield f, hints[f.name]


def allowed_values(hint: Any) -> tuple:
    """The types a hint admits, with a Literal's values in their place: `Literal["a"] | None` -> ("a", NoneType)."""
    if get_origin(hint) is Literal:
        return get_args(hint)
    if get_origin(hint) in (Union, types.UnionType):
        return tuple(v for arg in get_args(hint) for v in allowed_values(arg))
    return (get_origin(hint) or hint,)


def field_default(f: Field) -> Any:
    return f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default


_HINTS: dict[type, dict[str, Any]] = {}


def hints_of(config_class: type) -> dict[str, Any]:
    """The type hints of a config class, resolved once: resolving them took milliseconds a config,
    minutes for a grid of 20,000 runs."""
    if config_class not in _HINTS:
        _HINTS[config_class] = get_type_hints(config_class)
    return _HINTS[config_class]


def problems(config: Any) -> list[str]:
    """What is wrong with `config`'s values: types first (the bounds checks assume them), then bounds.
    Nested configs check themselves when built."""
    hints = hints_of(type(config))
    own = [f for f in fields(config) if not f.metadata.get("nested")]
    found = [p for f in own if (p := _type_problem(f, hints[f.name], getattr(config, f.name)))]
    return found or [p for f in own if (p := _bounds_problem(f, getattr(config, f.name)))]


def _type_problem(f: Field, hint: Any, value: Any) -> str | None:
    allowed = allowed_values(hint)
    types_ = tuple(t for t in allowed if isinstance(t, type))
    choices = [c for c in allowed if not isinstance(c, type)]
    ok = value in choices if choices and not isinstance(value, bool) else False
    ok = ok or (isinstance(value, types_) and not (isinstance(value, bool) and bool not in types_))
    ok = ok or (float in types_ and isinstance(value, int) and not isinstance(value, bool))
    if ok:
        return None
    kinds = [_kind(t, f.metadata) for t in types_ if t is not type(None)]
    null = type(None) in types_
    if choices:  # "fp32, bf16, fp16 or auto", "(or null)" where None is allowed too
        others = " or ".join(kinds + ["null"] * null)
        names = ", ".join(map(str, choices[:-1])) + f" or {choices[-1]}" + (f" (or {others})" if others else "")
    else:
        names = " or ".join(kinds + ["null"] * null)
    return f"{f.name} must be {names} (got {short(repr(value))})"


def _kind(kind: type, bounds: Any) -> str:
    """What a value of type `kind` within `bounds` is called: "a positive integer", "a number", "a string"."""
    if kind is int:
        return {1: "a positive integer", 0: "a non-negative integer"}.get(bounds.get("min"), "an integer")
    if kind is float:
        return "a positive number" if bounds.get("above") == 0 and bounds.get("below") is None else "a number"
    names = {str: "a string", bool: "true or false", dict: "a mapping", list: "a list"}
    return names.get(kind, kind.__name__)


def _bounds_problem(f: Field, value: Any) -> str | None:
    """The message for a number outside the field's metadata bounds (None and non-numbers pass)."""
    low, high, above, below = (f.metadata.get(k) for k in ("min", "max", "above", "below"))
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{f.name} must be a finite number (got {short(repr(value))})"
    if low == 1 and value < 1:
        return f"{f.name} must be a positive integer (got {short(repr(value))})"
    if above == 0 and below is None and high is None and value <= 0:
        return f"{f.name} must be a positive number (got {short(repr(value))})"
    if high is not None and value > high and low is not None:
        return f"{f.name} must be at most {high:,} (got {short(repr(value))})"
    too_low = (low is not None and value < low) or (above is not None and value <= above)
    too_high = (high is not None and value > high) or (below is not None and value >= below)
    if too_low or too_high:
        opening = f"[{low}" if low is not None else f"({above}"
        closing = f"{below})" if below is not None else f"{high}]"
        return f"{f.name} must be a number in {opening}, {closing} (got {short(repr(value))})"
    return None

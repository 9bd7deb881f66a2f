"""Typed task-option schemas: every `--task-option` is checked (type, range, choices, cross-field
rules) before a task is built, listed by `fpt train --task T --help-task`, and used by sweep grids.

A schema is derived from the task factory's signature (names and defaults; the type is the
default's) and refined by the task's registration with help text, ranges, choices and rules, so an
option added to a factory is known at once and an unknown one is refused by name.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fpt.errors import FPTError, with_guesses
from fpt.memory import memory_problem
from fpt.yamlsafe import short

Rule = Callable[[dict], "str | None"]  # all options (defaults filled in) -> a problem, or None
NOT_SET = inspect.Parameter.empty


@dataclass(frozen=True)
class Option:
    """One task option: its default, type (None: any), bounds and allowed values."""

    name: str
    default: Any = NOT_SET  # NOT_SET: the option must be given
    type: type | None = None
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    nullable: bool = False  # None is allowed (e.g. max_length None: the longest example)

    @property
    def required(self) -> bool:
        return self.default is NOT_SET

    def problem(self, value: Any) -> str | None:
        """Why `value` is not acceptable, or None."""
        if value is None:
            return None if self.nullable else f"{self.name} must be {self._kind()}, not null"
        kind = self.type
        if kind is bool and not isinstance(value, bool):
            return f"{self.name} must be true or false (got {short(value, 60)})"
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{self.name} must be an integer (got {short(value, 60)})"
        if kind is float and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            return f"{self.name} must be a finite number (got {short(value, 60)})"
        if kind is str and not isinstance(value, str):
            return f"{self.name} must be a string (got {short(value, 60)})"
        if self.choices is not None and value not in self.choices:
            return f"{self.name} must be one of {', '.join(map(str, self.choices))} (got {short(value, 60)})"
        if self.min is not None and value < self.min or self.max is not None and value > self.max:
            return f"{self.name} must be {self._range()} (got {short(value, 60)})"
        return None

    def _kind(self) -> str:
        kinds: dict[type | None, str] = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
        return kinds.get(self.type, "a value")

    def _range(self) -> str:
        if self.min is not None and self.max is not None:
            return f"from {self.min:g} to {self.max:g}"
        return f"at least {self.min:g}" if self.min is not None else f"at most {self.max:g}"

    def describe(self) -> str:
        kind = self._kind() + (" or null" if self.nullable else "")
        limits = f", {self._range()}" if self.min is not None or self.max is not None else ""
        limits += f", one of {', '.join(map(str, self.choices))}" if self.choices else ""
        default = "required" if self.required else f"default {self.default!r}"
        return f"{self.name} ({kind}{limits}; {default}){': ' + self.help if self.help else ''}"


@dataclass(frozen=True)
class TaskOptions:
    """The options of one task and the rules that relate them."""

    task: str
    options: tuple[Option, ...]
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    open_ended: bool = False  # the factory takes **kwargs: options beyond these are passed on unchecked

    def get(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    def check(self, values: dict) -> dict:
        """`values` checked against the schema (all problems at once, as an FPTError); ints given for
        float options become floats."""
        if not isinstance(values, dict):
            raise FPTError(f"task_options must be a mapping of option names to values (got {short(values, 80)}).")
        problems = []
        known = {o.name for o in self.options}
        unknown = sorted(str(k) for k in values if k not in known)
        if unknown and not self.open_ended:
            problems.append(
                f"unknown option(s) {with_guesses(unknown, known)} (it accepts: {', '.join(sorted(known)) or 'none'})"
            )
        checked = {k: v for k, v in values.items() if k not in known and self.open_ended}
        for option in self.options:
            if option.name not in values:
                if option.required:
                    problems.append(f"{option.name} is required")
                continue
            value = values[option.name]
            problem = option.problem(value)
            if problem:
                problems.append(problem)
            elif option.type is float and isinstance(value, int):
                value = float(value)
            checked[option.name] = value
        if not problems:
            complete = {o.name: o.default for o in self.options if not o.required} | checked
            problems += [p for p in (rule(complete) for rule in self.rules) if p]
        if problems:
            raise FPTError(
                f"Invalid option(s) for task {self.task!r}: {'; '.join(problems)}. "
                f"See `fpt train --task {self.task} --help-task`."
            )
        return checked

    def describe(self) -> str:
        lines = [f"Options of task {self.task} (--task-option KEY=VALUE):"]
        lines += [f"  {o.describe()}" for o in self.options] or ["  (none)"]
        return "\n".join(lines)


def derive(
    task: str, factory: Callable, refine: dict[str, dict] | None = None, rules: tuple[Rule, ...] = ()
) -> TaskOptions:
    """The schema of `factory(**options)`: its keyword parameters (but `data_dir`, which the data root
    fills), typed by their defaults, with `refine[name]` (help, min, max, choices, type, nullable) applied."""
    refine = refine or {}
    options = []
    parameters = inspect.signature(factory).parameters
    open_ended = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
    for name, parameter in parameters.items():
        if name == "data_dir" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        default = parameter.default
        kind = type(default) if isinstance(default, (bool, int, float, str)) else None
        extra = dict(refine.get(name, {}))
        options.append(
            Option(name, default, extra.pop("type", kind), nullable=extra.pop("nullable", default is None), **extra)
        )
    missing = sorted(set(refine) - {o.name for o in options})
    if missing:
        raise ValueError(f"task {task}: refinements for options its factory lacks: {missing}")
    return TaskOptions(task, tuple(options), tuple(rules), open_ended)


def divisible(numerator: str, denominator: str) -> Rule:
    """Rule: option `numerator` is a multiple of option `denominator`."""

    def rule(values: dict) -> str | None:
        if values[numerator] % values[denominator]:
            return f"{numerator} ({values[numerator]}) must be a multiple of {denominator} ({values[denominator]})"
        return None

    return rule


def fits_in_memory(what: str, nbytes: Callable[[dict], float]) -> Rule:
    """Rule: the data `what` the options ask for (at least nbytes(values) bytes) fits in the available memory."""

    def rule(values: dict) -> str | None:
        return memory_problem(what, nbytes(values))

    return rule

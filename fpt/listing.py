"""`fpt list tasks|backbones|methods`: what exists in this process (fpt's own, entry-point plugins and
modules named with `--import`), as plain text a person reads."""

from __future__ import annotations


def list_tasks() -> str:
    from fpt.tasks import run_defaults, task_names, task_options_schema

    lines = ["tasks (--task) and their options (--task-option KEY=VALUE)"]
    for name in task_names():
        defaults = run_defaults(name)
        preset = f"  [run presets: {', '.join(f'{k}={v}' for k, v in defaults.items())}]" if defaults else ""
        lines.append(f"{name}{preset}")
        options = task_options_schema(name).options
        lines += [f"    {option.describe()}" for option in options] or ["    (no options)"]
    return "\n".join(lines)


def list_backbones() -> str:
    from fpt.backbones import named_backbones

    lines = ["backbones (--backbone; also any hub id org/model or a local directory with config.json)"]
    for name, entry in named_backbones().items():
        lines.append(f"  {name:<16}{entry.weights}  {entry.note}")
    return "\n".join(lines)


def list_methods() -> str:
    from dataclasses import fields

    from fpt.model.freeze import NAMED_GROUPS
    from fpt.model.methods import get_method, method_names

    lines = [f"methods (--train; or trained groups joined by commas, from: {', '.join(NAMED_GROUPS)})"]
    for name in method_names():
        method = get_method(name)
        lines.append(f"  {name:<20}{method.about}" + ("  (default)" if name == "fpt" else ""))
        lines.append(f"  {'':<20}trains {', '.join(method.trains)}")
        options = [f for f in fields(method.tuner.options)] if method.tuner else []
        if options:
            shown = ", ".join(f"{f.name}={f.default!r}" for f in options)
            lines.append(f"  {'':<20}options (--method-option KEY=VALUE): {shown}")
    return "\n".join(lines)


LISTS = {"tasks": list_tasks, "backbones": list_backbones, "methods": list_methods}

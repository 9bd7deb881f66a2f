"""Plugins: tasks and backbones from other packages (entry points) and from modules named with `--import`.

Why: `fpt train`, `fpt eval` and every run of `fpt sweep` start a new process, so a task a script
registered is unknown there. A package makes its tasks and backbones known to every process by
declaring entry points in its pyproject.toml:

    [project.entry-points."fpt.tasks"]
    my-task = "my_package.tasks:make_task"      # a factory: registered as `--task my-task`
    [project.entry-points."fpt.backbones"]
    my-encoder = "my_package:ENCODER"           # a hub id or local directory (str), or a NamedBackbone
    [project.entry-points."fpt.methods"]
    my-method = "my_package:METHOD"             # a fpt.model.methods.Method

A module that calls `register_task` / `register_backbone` when imported is named with `--import
MODULE` (`imports:` in a run config; fpt.importing); runs record it, so `fpt eval`, `fpt attention` and `--resume`
import it again.

This module knows no registry: each registry (fpt.tasks, fpt.backbones, fpt.model.methods) loads its own group with the
function that registers an entry, so plugins sit below both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from fpt.errors import FPTError

TASKS, BACKBONES, METHODS = "fpt.tasks", "fpt.backbones", "fpt.methods"  # the entry-point groups
_loaded: set[str] = set()


def load_entry_points(group: str, register: Callable[[str, Any], None]) -> None:
    """`register(name, value)` for every installed entry point of `group`, once per process.

    A plugin that fails to load, or whose name is taken (fpt's own names stay), is reported as a warning
    and skipped, so one broken package does not stop runs that do not use it."""
    if group in _loaded:
        return
    _loaded.add(group)
    for point in entry_points(group=group):
        try:
            value = point.load()
        except Exception as err:  # any import-time failure of a third-party package
            logging.getLogger("fpt").warning(f"plugin {point.name!r} ({point.value}) failed to load: {err}")
            continue
        try:
            register(point.name, value)
        except FPTError as err:
            logging.getLogger("fpt").warning(f"plugin {point.name!r} ({point.value}) not registered: {err}")


def recorded_imports(imports: list[str], modules: list[str | None]) -> list[str]:
    """`imports` plus the `modules` whose import registers what a run uses (its task, its method's tuner),
    so a new process can rebuild it; nothing is added for fpt's own or a script's (`__main__` cannot be
    imported again)."""
    recorded = list(imports)
    for module in modules:
        if not (module is None or module == "__main__" or module.split(".")[0] == "fpt" or module in recorded):
            recorded.append(module)
    return recorded

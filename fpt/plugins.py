"""Plugins: tasks, backbones and methods from other packages (entry points) and from modules named with `--import`.

Why: `fpt train`, `fpt eval` and every run of `fpt sweep` start a new process, so a task a script
registered is unknown there. A package makes its tasks and backbones known to every process by
declaring entry points in its pyproject.toml:

    [project.entry-points."fpt.tasks"]
    my-task = "my_package.tasks:make_task"      # a factory: registered as `--task my-task`
    [project.entry-points."fpt.backbones"]
    my-encoder = "my_package:ENCODER"           # a hub id or local directory (str), or a NamedBackbone
    [project.entry-points."fpt.methods"]
    my-method = "my_package.method:METHOD"      # a fpt.model.methods.Method: `--train my-method`

A module that calls `register_task` / `register_backbone` / `register_method` when imported is named with `--import
MODULE` (`imports:` in a run config; fpt.importing); runs record it, so `fpt eval`, `fpt attention` and `--resume`
import it again.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from fpt.errors import FPTError

GROUPS = ("fpt.tasks", "fpt.backbones", "fpt.methods")
_loaded = False


def load_entry_points() -> None:
    """Register every installed `fpt.tasks` / `fpt.backbones` / `fpt.methods` entry point (once per process).

    A plugin that fails to load is reported as a warning and skipped, so one broken package does not
    stop runs that do not use it."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from fpt.backbones.loading import NamedBackbone, register_backbone
    from fpt.model.methods import Method, register_method
    from fpt.tasks import register_task

    for group in GROUPS:
        for point in entry_points(group=group):
            try:
                value = point.load()
            except Exception as err:  # any import-time failure of a third-party package
                logging.getLogger("fpt").warning(f"plugin {point.name!r} ({point.value}) failed to load: {err}")
                continue
            try:
                if group == "fpt.tasks":
                    register_task(point.name, value)
                elif group == "fpt.methods" and isinstance(value, Method):
                    register_method(value)
                elif isinstance(value, (str, NamedBackbone)):
                    register_backbone(point.name, value)
            except FPTError as err:  # a name that is taken: the plugin is skipped, fpt's own stays
                logging.getLogger("fpt").warning(f"plugin {point.name!r} ({point.value}) not registered: {err}")
                continue
            if group == "fpt.methods" and not isinstance(value, Method):
                logging.getLogger("fpt").warning(
                    f"method plugin {point.name!r} ({point.value}) is a {type(value).__name__}; expected a Method"
                )
            elif group == "fpt.backbones" and not isinstance(value, (str, NamedBackbone)):
                logging.getLogger("fpt").warning(
                    f"backbone plugin {point.name!r} ({point.value}) is a {type(value).__name__}; expected a hub id, "
                    "a local directory or a NamedBackbone"
                )


def recorded_imports(imports: list[str], task_name: str, train: str = "fpt") -> list[str]:
    """`imports` plus the modules whose import registers task `task_name` and the tuner of policy `train`,
    so a new process can rebuild them; nothing is added for fpt's own or for a script's (`__main__`
    cannot be imported again)."""
    from fpt.model.freeze import FreezePolicy
    from fpt.tasks import _REGISTRY

    tuner = FreezePolicy.parse(train).tuner
    found = [getattr(_REGISTRY.get(task_name), "__module__", None), getattr(tuner and tuner.add, "__module__", None)]
    recorded = list(imports)
    for module in found:
        if not (module is None or module == "__main__" or module.split(".")[0] == "fpt" or module in recorded):
            recorded.append(module)
    return recorded

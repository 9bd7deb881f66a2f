"""Tasks and their registry: `get_task(name, **options)`, in the manner of timm's model registry."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from fpt.errors import FPTError, unknown_name
from fpt.tasks import homology, images, listops
from fpt.tasks.base import Batch, Scores, Task, TaskSpec
from fpt.tasks.bits import BitMemory, BitXOR
from fpt.tasks.tensors import TensorTask

_REGISTRY: dict[str, Callable[..., Task]] = {}
_RUN_DEFAULTS: dict[str, dict] = {}


def register_task(name: str, factory: Callable[..., Task], run_defaults: dict | None = None) -> None:
    """Make `factory(**options)` available as `--task name`, with recommended run settings if any."""
    _REGISTRY[name] = factory
    _RUN_DEFAULTS[name] = dict(run_defaults or {})


def task_names() -> list[str]:
    return sorted(_REGISTRY)


def get_task(name: str, data_dir: str | None = None, **options) -> Task:
    """Build task `name`; `data_dir` (the data root, see fpt.data) goes to tasks that read files."""
    if name not in _REGISTRY:
        raise unknown_name("task", name, task_names())
    factory = _REGISTRY[name]
    accepted = inspect.signature(factory).parameters
    if data_dir is not None and "data_dir" in accepted:
        options["data_dir"] = data_dir
    unknown = sorted(k for k in options if k not in accepted)
    if unknown:
        raise FPTError(
            f"Unknown option(s) {', '.join(unknown)} for task {name!r}; it accepts: {', '.join(accepted) or 'none'}."
        )
    return factory(**options)


def run_defaults(name: str) -> dict:
    """Run-config values a task recommends (e.g. remote homology's lr 1e-4), used unless the user sets them."""
    return dict(_RUN_DEFAULTS.get(name, {}))


register_task("bit-memory", BitMemory)
register_task("bit-xor", BitXOR)
register_task("mnist", images.mnist, images.RUN_DEFAULTS)
register_task("fashion-mnist", images.fashion_mnist, images.RUN_DEFAULTS)
register_task("cifar10", images.cifar10, images.RUN_DEFAULTS)
register_task("cifar10-lra", images.cifar10_lra, images.RUN_DEFAULTS)
register_task("listops", listops.listops)
register_task("remote-homology", homology.remote_homology, homology.RUN_DEFAULTS)

__all__ = [
    "Batch",
    "Scores",
    "Task",
    "TaskSpec",
    "TensorTask",
    "get_task",
    "register_task",
    "run_defaults",
    "task_names",
]

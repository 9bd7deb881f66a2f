"""Tasks and their registry: `get_task(name, **options)`, in the manner of timm's model registry."""
from __future__ import annotations

import inspect
from collections.abc import Callable

from fpt.errors import FPTError, unknown_name
from fpt.tasks.base import Batch, Scores, Task, TaskSpec
from fpt.tasks.bits import BitMemory, BitXOR
from fpt.tasks.tensors import TensorTask

_REGISTRY: dict[str, Callable[..., Task]] = {}


def register_task(name: str, factory: Callable[..., Task]) -> None:
    """Make `factory(**options)` available as `--task name`."""
    _REGISTRY[name] = factory


def task_names() -> list[str]:
    return sorted(_REGISTRY)


def get_task(name: str, **options) -> Task:
    if name not in _REGISTRY:
        raise unknown_name("task", name, task_names())
    factory = _REGISTRY[name]
    accepted = inspect.signature(factory).parameters
    unknown = sorted(k for k in options if k not in accepted)
    if unknown:
        raise FPTError(
            f"Unknown option(s) {', '.join(unknown)} for task {name!r}; it accepts: {', '.join(accepted) or 'none'}."
        )
    return factory(**options)


register_task("bit-memory", BitMemory)
register_task("bit-xor", BitXOR)

__all__ = ["Batch", "Scores", "Task", "TaskSpec", "TensorTask", "get_task", "register_task", "task_names"]

"""Tasks and their registry: `get_task(name, **options)`, in the manner of timm's model registry."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from fpt.errors import FPTError, describe_callable, failure, is_out_of_memory, unknown_name
from fpt.plugins import TASKS, load_entry_points
from fpt.tasks import arrays, forecast, homology, images, listops
from fpt.tasks.base import Batch, Scores, Task, TaskSpec
from fpt.tasks.bits import BIT_MEMORY_OPTIONS, BIT_XOR_OPTIONS, BitMemory, BitXOR
from fpt.tasks.images import image_tokens, patchify
from fpt.tasks.options import Option, Rule, TaskOptions, derive
from fpt.tasks.outputs import Classification, OutputKind, Regression, Selection
from fpt.tasks.tensors import TensorTask
from fpt.yamlsafe import short

_REGISTRY: dict[str, Callable[..., Task]] = {}
_RUN_DEFAULTS: dict[str, dict] = {}
_SCHEMAS: dict[str, TaskOptions] = {}
UNKNOWN_TASK_HINT = (
    "A task registered by a script exists only in that process: call register_task in a module and pass "
    "--import MODULE (or install it as an `fpt.tasks` entry point, see fpt.plugins)."
)


def register_task(
    name: str,
    factory: Callable[..., Task],
    run_defaults: dict | None = None,
    options: dict[str, Any] | None = None,
    rules: tuple[Rule, ...] = (),
    *,
    replace: bool = False,
) -> None:
    """Make `factory(**options)` available as `--task name`, with recommended run settings if any.

    The task's option schema comes from the factory's keyword parameters (typed by their defaults);
    `options` refines them ({name: {help, min, max, choices, type, nullable}}) and `rules` relate them.
    A name already registered to another factory (fpt's own tasks included) is refused unless
    `replace=True`: replacing it changes what `--task name` trains everywhere the module is imported."""
    existing = _REGISTRY.get(name)
    if existing is not None and not replace and not _same_factory(existing, factory):
        raise FPTError(
            f"Task {name!r} is already registered ({describe_callable(existing)}); registering "
            f"{describe_callable(factory)} under the same name would silently change what `--task {name}` trains. "
            f"Register it under a new name (e.g. 'my-{name}'), or pass replace=True to register_task to replace "
            "it deliberately."
        )
    _SCHEMAS[name] = derive(name, factory, options, rules)
    _REGISTRY[name] = factory
    _RUN_DEFAULTS[name] = dict(run_defaults or {})


def _same_factory(a: Callable, b: Callable) -> bool:
    """The same function, or the same named one again (its module imported twice, or reloaded)."""
    return a is b or ("<" not in describe_callable(a) and describe_callable(a) == describe_callable(b))


def task_options_schema(name: str) -> TaskOptions:
    """The typed options of task `name` (`.options`: each `Option`; `.check(values)`; `.describe()`)."""
    if name not in task_names():  # task_names loads the entry-point plugins first
        raise unknown_name("task", str(name), task_names(), UNKNOWN_TASK_HINT)
    return _SCHEMAS[name]


def check_task_options(name: str, options: dict) -> dict:
    """`options` checked against task `name`'s schema (an FPTError listing every problem)."""
    return task_options_schema(name).check(options)


def task_names() -> list[str]:
    load_entry_points(TASKS, register_task)  # installed plugins' tasks, once
    return sorted(_REGISTRY)


def get_task(name: str, data_dir: str | None = None, **options) -> Task:
    """Build task `name`; `data_dir` (the data root, see fpt.data) goes to tasks that read files.

    A plugin's factory that raises, or returns something other than a Task, is an FPTError naming it."""
    options = check_task_options(name, options)
    factory = _REGISTRY[name]
    if data_dir is not None and "data_dir" in inspect.signature(factory).parameters:
        options["data_dir"] = data_dir
    if describe_callable(factory).startswith("fpt."):  # fpt's own: anything but an FPTError is a bug
        return factory(**options)
    try:
        task = factory(**options)
    except (FPTError, MemoryError):
        raise
    except Exception as err:
        if is_out_of_memory(err):
            raise
        raise FPTError(
            f"Task {name!r}: its factory {describe_callable(factory)} raised {failure(err)}. Fix the plugin; calling "
            "the factory in Python shows the whole traceback."
        ) from err
    if not isinstance(task, Task) or not isinstance(getattr(task, "spec", None), TaskSpec):
        what = (
            f"{short(repr(task), 80)} (type {type(task).__name__})"
            if not isinstance(task, Task)
            else "a Task with no spec"
        )
        raise FPTError(
            f"Task {name!r}: its factory {describe_callable(factory)} returned {what}; a task factory returns a "
            "fpt.TensorTask (your arrays) or an instance of a fpt.tasks.Task subclass that sets `name` and `spec`."
        )
    return task


def registering_module(task_name: str) -> str | None:
    """The module whose import registers task `task_name` (its factory's)."""
    return getattr(_REGISTRY.get(task_name), "__module__", None)


def run_defaults(name: str) -> dict:
    """Run-config values a task recommends (e.g. remote homology's lr 1e-4), used unless the user sets them."""
    return dict(_RUN_DEFAULTS.get(name, {}))


register_task("bit-memory", BitMemory, None, *BIT_MEMORY_OPTIONS)
register_task("bit-xor", BitXOR, None, *BIT_XOR_OPTIONS)
register_task("mnist", images.mnist, images.RUN_DEFAULTS, *images.options(28, 60_000))
register_task("fashion-mnist", images.fashion_mnist, images.RUN_DEFAULTS, *images.options(28, 60_000))
register_task("cifar10", images.cifar10, images.RUN_DEFAULTS, *images.options(32, 50_000))
register_task("cifar10-lra", images.cifar10_lra, images.RUN_DEFAULTS, *images.options(32, 50_000))
register_task("listops", listops.listops, None, listops.OPTIONS)
register_task("remote-homology", homology.remote_homology, homology.RUN_DEFAULTS, homology.OPTIONS)
register_task("arrays", arrays.arrays, None, arrays.OPTIONS)
register_task("forecast", forecast.forecast, None, forecast.OPTIONS, forecast.RULES)

__all__ = [
    "Batch",
    "Classification",
    "Option",
    "OutputKind",
    "Regression",
    "Selection",
    "Scores",
    "Task",
    "TaskOptions",
    "TaskSpec",
    "TensorTask",
    "check_task_options",
    "get_task",
    "registering_module",
    "image_tokens",
    "patchify",
    "register_task",
    "run_defaults",
    "task_names",
    "task_options_schema",
]

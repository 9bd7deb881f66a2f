"""Public names imported on first use (PEP 562), so `import fpt` and the commands that need no model
start without loading torch and transformers. One helper for every package that re-exports lazily."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_attributes(package: str, names: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The module-level `__getattr__` and `__dir__` for `package`: each of `names` (public name -> module
    that defines it) is imported on first use and then kept in the package, so later look-ups are plain."""
    module = sys.modules[package]

    def __getattr__(name: str) -> object:
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
            setattr(module, name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted([*vars(module), *names])

    return __getattr__, __dir__

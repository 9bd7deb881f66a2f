"""Importing the modules a user names (`--import MODULE`, a run's recorded `imports`): they register
tasks and backbones (see fpt.plugins). A bottom-layer helper, so reading a run directory can import
what the run needs before anything rebuilds it."""

from __future__ import annotations

import importlib
import os
import sys

from fpt.errors import FPTError, failure


def import_modules(names: list[str] | tuple[str, ...], search_cwd: bool = True) -> None:
    """Import each module (it registers its tasks or backbones); an FPTError names one that cannot be.

    With `search_cwd` the current folder is searched first, as `python -m` does (the `fpt` script alone
    would not); modules a run directory records are imported without it, so a run directory from
    elsewhere can only name code that is installed."""
    if not isinstance(names, (list, tuple)):
        raise FPTError(f"imports must be a list of module names, got {names!r:.80}.")
    if search_cwd and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        if not isinstance(name, str) or not name:
            raise FPTError(f"--import expects module names such as my_package.tasks, got {name!r}.")
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is not None and not (name == err.name or name.startswith(err.name + ".")):  # one it imports
                raise FPTError(f"Module {name!r} failed to import: {failure(err)}. Install what it needs.") from err
            raise FPTError(
                f"Cannot import module {name!r} ({err}). It must be importable from this folder or the installed "
                "packages (a file my_tasks.py here is module my_tasks; set PYTHONPATH for other folders)."
            ) from err
        except FPTError as err:  # e.g. it registers a task under a name already taken
            raise FPTError(f"Module {name!r} failed to import: {err}") from err
        except Exception as err:  # the plugin's own code raised while it was imported
            raise FPTError(
                f"Module {name!r} failed to import: {failure(err)}. Fix the module; `python -c 'import {name}'` "
                "shows the whole traceback."
            ) from err

"""User-facing errors: one paragraph that says what was expected and what to do.

The CLI prints `FPTError` messages without a traceback and exits non-zero; anything else is a bug.
"""

from __future__ import annotations

import difflib


class FPTError(Exception):
    """An error caused by the user's input or environment, with a message meant to be read."""


def unknown_name(kind: str, name: str, choices: list[str], hint: str = "") -> FPTError:
    """An `FPTError` for a name not in `choices`, suggesting the closest ones."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    suggestion = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return FPTError(
        f"Unknown {kind} {name!r}.{suggestion} Known {kind}s: {', '.join(sorted(choices))}.{(' ' + hint) if hint else ''}"
    )


def with_guesses(unknown, known) -> str:
    """`unknown` names listed, each with the closest of `known` where one is close: "'batchsize' (did you
    mean 'batch_size'?)"."""
    guesses = []
    for name in map(str, unknown):
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        guesses.append(f"{name[:60]!r} (did you mean {close[0]!r}?)" if close else repr(name[:60]))
    return ", ".join(guesses[:10]) + (", ..." if len(guesses) > 10 else "")


def unknown_keys(where: str, unknown: list[str], known: list[str]) -> FPTError:
    """An `FPTError` for config keys that are not `known`, each with the closest known key if one is close."""
    return FPTError(
        f"Unknown key(s) in {where}: {with_guesses(unknown, known)}. Known keys: {', '.join(sorted(known))}."
    )


def install_hint(extra: str, packages: str) -> str:
    """How to add one of fpt's extras. fpt installs from its source (it has no PyPI release, and PyPI's
    `fpt` is an unrelated project), so the extra is named on the source folder, with the packages beside it."""
    return f"`pip install -e '.[{extra}]'` in fpt's source folder (or `pip install {packages}`)"


OUT_OF_MEMORY = (
    "Out of memory: the batch, evaluation batch or task sizes asked for more memory than this machine has. "
    "Lower --batch-size or --eval-batch-size, or pass --micro-batch-size to split each batch, or shrink the "
    "task's sizes; a run that had written a checkpoint continues with `fpt train --resume RUN_DIR`."
)


def is_out_of_memory(err: BaseException) -> bool:
    """Whether `err` is an allocation failure (torch raises RuntimeError subclasses; numpy MemoryError)."""
    text = str(err)
    return isinstance(err, MemoryError) or any(
        marker in text for marker in ("can't allocate memory", "out of memory", "Out of memory", "not enough memory")
    )


def describe_callable(function: object) -> str:
    """`module.qualname` of a function or class, for naming a plugin's code in an error."""
    module, name = getattr(function, "__module__", None), getattr(function, "__qualname__", None)
    return f"{module}.{name}" if module and name else repr(function)[:80]


def failure(err: BaseException) -> str:
    """`Type: message (file, line N)` of an exception raised in a user's code: its last frame, where it was raised."""
    import traceback

    frames = traceback.extract_tb(err.__traceback__)
    where = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return f"{type(err).__name__}: {str(err)[:300]}{where}"

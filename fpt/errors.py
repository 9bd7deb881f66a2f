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

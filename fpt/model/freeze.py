"""Freeze policies: which parameter groups train. The default is the paper's FPT recipe."""

from __future__ import annotations

from dataclasses import dataclass

from fpt.errors import FPTError

GROUPS = ("input", "output", "position", "norm", "attention", "feed-forward", "other")

_FPT = ("input", "output", "position", "norm")
PRESETS: dict[str, tuple[str, ...]] = {
    "output": ("output",),
    "output+norm": ("output", "norm"),
    "output+norm+input": ("output", "norm", "input"),
    "fpt": _FPT,
    "fpt+ff": (*_FPT, "feed-forward"),
    "fpt+attention": (*_FPT, "attention"),
    "all": GROUPS,
}


@dataclass(frozen=True)
class FreezePolicy:
    """The set of trained groups; every other group is frozen.

    `spec` is a preset name (see `PRESETS`) or groups joined by `,` or `+`, e.g. `input,output,norm`.
    Presets apply to the groups a backbone has; a group named explicitly must exist.
    """

    spec: str
    trained: frozenset[str]
    explicit: bool

    @classmethod
    def parse(cls, spec: str) -> FreezePolicy:
        if spec in PRESETS:
            return cls(spec, frozenset(PRESETS[spec]), explicit=False)
        names = [n.strip() for n in spec.replace("+", ",").split(",") if n.strip()]
        unknown = [n for n in names if n not in GROUPS]
        if not names or unknown:
            raise FPTError(
                f"Unknown freeze policy {spec!r}: {', '.join(unknown) or 'no group named'} is not a group. "
                f"Give a preset ({', '.join(PRESETS)}) or trained groups joined by commas from: {', '.join(GROUPS)}."
            )
        return cls(spec, frozenset(names), explicit=True)

    def trains(self, group: str) -> bool:
        return group in self.trained

    def check_against(self, present: set[str], backbone: str) -> None:
        missing = sorted(g for g in self.trained if g not in present)
        if self.explicit and missing:
            raise FPTError(
                f"Freeze policy {self.spec!r} trains {', '.join(missing)}, but backbone {backbone!r} has no "
                f"parameters in {'that group' if len(missing) == 1 else 'those groups'}. Its groups: "
                f"{', '.join(sorted(present))}."
            )

"""Freeze policies: which parameter groups train. The default is the paper's FPT recipe.

A policy may also add a PEFT adapter to the frozen backbone (`lora`, `ia3`, `ln-tuning`, see
fpt.model.adapters); its tensors are the `adapter` group. The adapter presets also train the new
input and output layers (nothing else reads or writes the new modality), and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fpt.errors import FPTError
from fpt.model.adapters import ADAPTER_GROUP, ADAPTERS

GROUPS = ("input", "output", "position", "norm", "attention-norm", "attention", "feed-forward", "other", ADAPTER_GROUP)
_NAMED = GROUPS[:-1]  # groups a spec names; the adapter group comes with an adapter's name

# `norm` is the block layer norms the paper trains; `attention-norm` (QK-norms inside attention,
# Gemma 3 / Qwen3) is part of attention, so it trains with `fpt+attention` and `all` only.
_FPT = ("input", "output", "position", "norm")
PRESETS: dict[str, tuple[str, ...]] = {
    "output": ("output",),
    "output+norm": ("output", "norm"),
    "output+norm+input": ("output", "norm", "input"),
    "fpt": _FPT,
    "fpt+ff": (*_FPT, "feed-forward"),
    "fpt+attention": (*_FPT, "attention-norm", "attention"),
    "all": _NAMED,
    "lora": ("input", "output", "lora"),
    "fpt+lora": (*_FPT, "lora"),
    "ia3": ("input", "output", "ia3"),
    "ln-tuning": ("input", "output", "ln-tuning"),
}


@dataclass(frozen=True)
class FreezePolicy:
    """The set of trained groups; every other group is frozen.

    `spec` is a preset name (see `PRESETS`), groups joined by `,` or `+` (`input,output,norm`), or
    both (`fpt,attention-norm`); one adapter name (`lora`, `ia3`, `ln-tuning`) among them adds that
    adapter and trains it. Presets apply to the groups a backbone has; a group named explicitly
    (`named`) must exist.
    """

    spec: str
    trained: frozenset[str]
    named: frozenset[str] = frozenset()
    adapter: str | None = None

    @classmethod
    def parse(cls, spec: str) -> FreezePolicy:
        names: list[str] = []
        named: list[str] = []
        for item in [spec] if spec in PRESETS else [i.strip() for i in spec.split(",")]:
            for part in [item] if item in PRESETS else [p.strip() for p in item.split("+")]:
                if part in PRESETS:
                    names.extend(PRESETS[part])
                elif part:
                    names.append(part)
                    named.append(part)
        names = list(dict.fromkeys(names))
        adapters = [n for n in names if n in ADAPTERS]
        unknown = [n for n in names if n not in _NAMED and n not in ADAPTERS]
        if not names or unknown or len(adapters) > 1:
            problem = (
                f"{', '.join(unknown)} is not a group"
                if unknown
                else ("more than one adapter is named" if names else "no group is named")
            )
            raise FPTError(
                f"Unknown freeze policy {spec!r}: {problem}. Give a preset ({', '.join(PRESETS)}), trained groups "
                f"joined by commas from: {', '.join(_NAMED)}, or both (e.g. `fpt,attention-norm`), plus at most one "
                f"adapter ({', '.join(ADAPTERS)})."
            )
        trained = frozenset(ADAPTER_GROUP if n in ADAPTERS else n for n in names)
        explicit = frozenset(n for n in named if n not in ADAPTERS)
        return cls(spec, trained, explicit, adapters[0] if adapters else None)

    def trains(self, group: str) -> bool:
        return group in self.trained

    def check_against(self, present: set[str], backbone: str) -> None:
        missing = sorted(g for g in self.named if g not in present)
        if missing:
            raise FPTError(
                f"Freeze policy {self.spec!r} trains {', '.join(missing)}, but backbone {backbone!r} has no "
                f"parameters in {'that group' if len(missing) == 1 else 'those groups'}. Its groups: "
                f"{', '.join(sorted(present))}."
            )


class GroupedParameters(nn.Module):
    """A model whose parameters are named into freeze groups (`self.groups`): the bookkeeping the
    training loop and checkpoints read (fpt.runs.checkpoint.TrainedModel), shared by the FPT and the LSTMs."""

    groups: dict[str, str]

    def trained_state(self) -> dict[str, torch.Tensor]:
        """Only the trained parameters."""
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}

    def saved_state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: the trained parameters and every frozen one that rebuilding the model
        from its config would not give back (an FPT's new input layer when `--train output` freezes it)."""
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad or not self.rebuildable(n)}

    def rebuildable(self, name: str) -> bool:
        """Whether frozen parameter `name` comes back when the model is rebuilt from its config (pretrained
        and fingerprinted, or drawn from the config's seed as the LSTM's frozen weights are)."""
        return True

    def group_counts(self) -> dict[str, tuple[int, bool]]:
        """Per group: parameter count and whether it trains."""
        counts: dict[str, list] = {}
        for name, param in self.named_parameters():
            entry = counts.setdefault(self.groups[name], [0, False])
            entry[0] += param.numel()
            entry[1] = entry[1] or param.requires_grad
        return {g: (c, t) for g, (c, t) in counts.items()}

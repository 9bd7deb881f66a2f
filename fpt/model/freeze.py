"""Freeze policies: which parameter groups train. The default is the paper's FPT recipe.

A policy is a method's name (fpt.model.methods: `fpt`, `output`, `lora`, `prompt-tuning`, ...),
trained groups, or both, joined by commas (`fpt,attention-norm`). A method with a tuner adds it to the
model (a PEFT adapter, a soft prompt); its tensors are the `adapter` group, which no spec names directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from fpt.errors import FPTError

if TYPE_CHECKING:
    from fpt.model.methods import Tuner

ADAPTER_GROUP = "adapter"  # what a method's tuner adds (fpt.model.methods)
GROUPS = ("input", "output", "position", "norm", "attention-norm", "attention", "feed-forward", "other", ADAPTER_GROUP)
NAMED_GROUPS = GROUPS[:-1]  # groups a spec names; the adapter group comes with a method's tuner


@dataclass(frozen=True)
class FreezePolicy:
    """The set of trained groups; every other group is frozen.

    `spec` is a method name (`fpt list methods`), groups joined by `,` or `+` (`input,output,norm`), or
    both (`fpt,attention-norm`); at most one tuner (`lora`, `prompt-tuning`, ...) among them. Methods
    apply to the groups a backbone has; a group named explicitly (`named`) must exist.
    """

    spec: str
    trained: frozenset[str]
    named: frozenset[str] = frozenset()
    tuner: Tuner | None = None

    @property
    def adapter(self) -> str | None:
        """The name of the tuner the policy adds (None: it only chooses groups)."""
        return self.tuner.name if self.tuner else None

    @classmethod
    def parse(cls, spec: str) -> FreezePolicy:
        from fpt.model.methods import find_method, method_names

        names: list[str] = []
        named: list[str] = []
        tuners: list[Tuner] = []
        for item in [spec] if find_method(spec) else [i.strip() for i in spec.split(",")]:
            for part in [item] if find_method(item) else [p.strip() for p in item.split("+")]:
                method = find_method(part)
                if method is not None:
                    names.extend(method.trains)
                    tuners += [method.tuner] if method.tuner and method.tuner not in tuners else []
                elif part:
                    names.append(part)
                    named.append(part)
        names = list(dict.fromkeys(names))
        unknown = [n for n in names if n not in GROUPS or n in named and n == ADAPTER_GROUP]
        if not names or unknown or len(tuners) > 1:
            problem = (
                f"{', '.join(unknown)} is not a group"
                if unknown
                else ("more than one method adds a tuner" if names else "no group is named")
            )
            raise FPTError(
                f"Unknown freeze policy {spec!r}: {problem}. Give a method ({', '.join(method_names())}), trained "
                f"groups joined by commas from: {', '.join(NAMED_GROUPS)}, or both (e.g. `fpt,attention-norm`), "
                "with at most one method that adds a tuner (`fpt list methods`)."
            )
        return cls(spec, frozenset(names), frozenset(named), tuners[0] if tuners else None)

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

"""Where a training stream stands, so that a resumed run continues it without drawing what came before.

A task's training stream is endless and seeded: batch k depends on every random draw before it, and
replaying k batches to resume at step k costs as much as drawing them (400,000 steps at the paper's
budget, image augmentation included). Instead a stream keeps a `StreamCursor` up to date: the
states of its random generators and its place in the current epoch after the batches drawn so far.
A checkpoint saves it; a stream started from a saved cursor draws exactly the batches an
uninterrupted run would draw next, at once. A task whose `train_batches` takes no `cursor` (a
user's own) is still resumed by replaying its stream.
"""

from __future__ import annotations

import inspect

import torch


class StreamCursor:
    """The generators a stream draws from and its `position` (e.g. the epoch's start and offset), as saved
    by `state_dict` after the batches drawn so far; `saved` is such a state to continue from."""

    def __init__(self, saved: dict | None = None):
        self.saved = saved or {}
        self.generators: dict[str, torch.Generator] = {}
        self.position: dict[str, torch.Tensor | int] = dict(self.saved.get("position", {}))

    @property
    def restored(self) -> bool:
        """Whether the stream continues from a saved state (else it starts at its first batch)."""
        return bool(self.saved)

    def generator(self, name: str, seed: int) -> torch.Generator:
        """A CPU generator seeded with `seed`, or in the state it had when the cursor was saved."""
        generator = torch.Generator().manual_seed(seed)
        state = self.saved.get("generators", {}).get(name)
        if state is not None:
            generator.set_state(state)
        self.generators[name] = generator
        return generator

    def state_dict(self) -> dict:
        """Tensors and integers only (a checkpoint loads them with weights_only)."""
        return {
            "generators": {name: g.get_state() for name, g in self.generators.items()},
            "position": dict(self.position),
        }


def takes_cursor(task: object) -> bool:
    """Whether the task's `train_batches` keeps a `StreamCursor` (the built-in tasks do)."""
    train_batches = getattr(task, "train_batches", None)
    return callable(train_batches) and "cursor" in inspect.signature(train_batches).parameters

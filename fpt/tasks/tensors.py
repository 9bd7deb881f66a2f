"""A task over in-memory tensors: the user's own data, and the base for file-backed datasets."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from fpt.errors import FPTError
from fpt.tasks.base import Batch, Task, TaskSpec


def rows(tensor: torch.Tensor, index: torch.Tensor | slice) -> torch.Tensor:
    """tensor[index] along the first axis; index_select for index tensors, which on CPU is ~1000x faster
    than advanced indexing of a large uint8 tensor (torch 2.13: 11 ms vs 0.003 ms for 16 MNIST rows)."""
    return tensor.index_select(0, index) if isinstance(index, torch.Tensor) else tensor[index]


Split = tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class TensorTask(Task):
    """Train/val/test splits given as `(inputs, targets[, mask])` tensors.

    inputs: (n, tokens, width) float for continuous tokens, or (n, tokens) integer ids.
    targets: (n,) class ids for classification, or (n, units) for several outputs per example.
    mask: optional (n, tokens) bool, True on real tokens (for padded variable-length inputs).
    Training samples without replacement, reshuffled every epoch by a seeded generator.
    """

    def __init__(
        self,
        train: Split,
        val: Split,
        test: Split,
        num_classes: int | None = None,
        output_tokens: int = 1,
        name: str = "tensors",
    ):
        self.name = name
        self.data = {
            split: self._check(split, *parts) for split, parts in (("train", train), ("val", val), ("test", test))
        }
        inputs, targets, _ = self.data["train"]
        discrete = not inputs.is_floating_point()
        if num_classes is None:
            num_classes = int(max(t.max() for _, t, _ in self.data.values())) + 1
        units = targets.shape[1]
        if units % output_tokens:
            raise FPTError(f"{units} target units per example cannot be split over {output_tokens} output tokens.")
        width = int(max(x.max() for x, _, _ in self.data.values())) + 1 if discrete else inputs.shape[-1]
        self.spec = TaskSpec(
            "discrete" if discrete else "continuous",
            width,
            inputs.shape[1],
            num_classes,
            output_tokens,
            units // output_tokens,
        )
        for split, (_, t, _) in self.data.items():
            if t.min() < 0 or t.max() >= num_classes:
                raise FPTError(
                    f"{split} targets must be class ids in [0, {num_classes}); found {int(t.min())}..{int(t.max())}."
                )

    @staticmethod
    def _check(split: str, inputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None):
        inputs, targets = torch.as_tensor(inputs), torch.as_tensor(targets)
        if inputs.dim() not in (2, 3) or (inputs.dim() == 3) != inputs.is_floating_point():
            raise FPTError(
                f"{split} inputs must be (n, tokens, width) floats or (n, tokens) integer ids; got "
                f"{tuple(inputs.shape)} {inputs.dtype}."
            )
        if inputs.is_floating_point() and not torch.isfinite(inputs).all():
            raise FPTError(f"{split} inputs contain NaN or infinite values; clean or impute them first.")
        targets = targets.long().reshape(len(targets), -1)
        if len(targets) != len(inputs) or (mask is not None and tuple(mask.shape) != tuple(inputs.shape[:2])):
            raise FPTError(
                f"{split}: {len(inputs)} inputs but {len(targets)} targets"
                + ("" if mask is None else f" and a mask of shape {tuple(mask.shape)}")
                + "; they must match."
            )
        return inputs, targets, None if mask is None else torch.as_tensor(mask).bool()

    def split_size(self, split: str) -> int:
        return len(self.data[split][0])

    def _take(self, split: str, index: torch.Tensor | slice) -> Batch:
        inputs, targets, mask = self.data[split]
        return Batch(rows(inputs, index), rows(targets, index), None if mask is None else rows(mask, index))

    def train_batches(self, batch_size: int, seed: int) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(seed)
        n = self.split_size("train")
        while True:
            order = torch.randperm(n, generator=generator)
            for start in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
                yield self._take("train", order[start : start + batch_size])

    def eval_batches(self, split: str, batch_size: int) -> Iterator[Batch]:
        for start in range(0, self.split_size(split), batch_size):
            yield self._take(split, slice(start, start + batch_size))

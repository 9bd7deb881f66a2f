"""Variable-length token sequences in memory, padded per batch: the base of ListOps and homology.

Examples are kept as one uint8 matrix padded to the longest example plus their lengths; a batch is
cut to its own longest example and carries a mask (True on real tokens), so short batches cost
little and the output head reads each example's last real token.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from fpt.errors import FPTError
from fpt.memory import require
from fpt.tasks.base import Batch, TaskSpec, rows
from fpt.tasks.tensors import TensorTask

log = logging.getLogger(__name__)


def fit_lengths(
    name: str, splits: dict[str, list[np.ndarray]], max_length: int | None, overlong: str
) -> tuple[dict, int]:
    """Apply `max_length` (None: the longest example) to every split, reporting what was cut.

    overlong: "clip" keeps the first max_length tokens, "skip" drops the example (training and
    validation only: the test split is always evaluated in full, clipped).
    """
    if overlong not in ("clip", "skip"):
        raise FPTError(f"{name}: overlong must be 'clip' or 'skip', got {overlong!r}.")
    longest = max(len(t) for tokens in splits.values() for t in tokens)
    limit = longest if max_length is None else max_length
    if limit < 1:
        raise FPTError(f"{name}: max_length must be a positive number of tokens, got {max_length}.")
    kept = {}
    for split, tokens in splits.items():
        long = [i for i, t in enumerate(tokens) if len(t) > limit]
        if long:
            action = "skipped" if overlong == "skip" and split != "test" else "clipped"
            log.warning(
                "%s: %d of %d %s examples are longer than max_length %d tokens (longest %d); %s.",
                name,
                len(long),
                len(tokens),
                split,
                limit,
                max(len(tokens[i]) for i in long),
                action,
            )
        keep = np.ones(len(tokens), dtype=bool)
        if overlong == "skip" and split != "test":
            keep[long] = False
        kept[split] = keep
    return kept, limit


def pack(tokens: list[np.ndarray], limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, longest) uint8 ids, zero-padded and clipped to `limit`, and (n,) lengths."""
    lengths = np.array([min(len(t), limit) for t in tokens], dtype=np.int64)
    ids = np.zeros((len(tokens), int(lengths.max())), dtype=np.uint8)
    for row, (t, n) in enumerate(zip(tokens, lengths, strict=False)):
        ids[row, :n] = t[:n]
    return torch.from_numpy(ids), torch.from_numpy(lengths)


class SequenceTask(TensorTask):
    """Classify id sequences of varying length; splits are (list of uint8 id arrays, (n,) labels)."""

    def __init__(
        self,
        name: str,
        splits: dict[str, tuple[list[np.ndarray], np.ndarray]],
        vocab_size: int,
        num_classes: int,
        max_length: int | None,
        overlong: str,
        options: dict,
        split_sources: dict[str, str],
        fixed_length: bool = False,
    ):
        self.name, self._options, self.split_sources = name, options, split_sources
        kept, limit = fit_lengths(name, {s: tokens for s, (tokens, _) in splits.items()}, max_length, overlong)
        if fixed_length:  # the packed ids and their padded copy, one byte a token
            examples = sum(len(tokens) for tokens, _ in splits.values())
            require(
                f"{name}: {examples:,} examples padded to {limit:,} tokens",
                2.0 * examples * limit,
                "Use a smaller max_length.",
            )
        self.data, self.lengths = {}, {}
        for split, (tokens, labels) in splits.items():
            keep = kept[split]
            ids, lengths = pack([t for t, k in zip(tokens, keep, strict=False) if k], limit)
            if fixed_length:  # every example padded to `limit`, the padding read as tokens (the paper's ListOps)
                ids = torch.nn.functional.pad(ids, (0, limit - ids.shape[1]))
                lengths = torch.full_like(lengths, limit)
            self.data[split] = (ids, torch.as_tensor(labels[keep]).long().reshape(-1, 1), None)
            self.lengths[split] = lengths
        self.spec = TaskSpec("discrete", vocab_size, limit, num_classes)

    def options(self) -> dict:
        return dict(self._options)

    def _take(self, split: str, index: torch.Tensor | slice) -> Batch:
        batch, lengths = Batch(*self.data[split]).rows(index), rows(self.lengths[split], index)
        longest = int(lengths.max())
        mask = torch.arange(longest) < lengths[:, None]
        return Batch(batch.inputs[:, :longest].long(), batch.targets, mask)

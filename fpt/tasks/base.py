"""What a task gives the trainer: shapes, an endless seeded training stream, and fixed eval splits.

Data flows one way: task -> `Batch` -> model -> logits -> `task.loss` / `Scores` -> run directory.
Every task predicts `units` categorical outputs per example (one class label, or one per bit), so
one loss and one pair of metrics serve all: unit accuracy and whole-example exact match.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
import torch.nn.functional as F

from fpt.errors import FPTError
from fpt.tasks.stream import StreamCursor


def rows(tensor: torch.Tensor, index: torch.Tensor | slice) -> torch.Tensor:
    """tensor[index] along the first axis; `index_select` for index tensors: advanced indexing of a
    large tensor is slow on a multithreaded CPU (benchmarks/results/design_figures.md)."""
    return tensor.index_select(0, index) if isinstance(index, torch.Tensor) else tensor[index]


@dataclass
class Batch:
    inputs: torch.Tensor  # (batch, tokens, width) float, or (batch, tokens) ids
    targets: torch.Tensor  # (batch, units) class ids
    mask: torch.Tensor | None = None  # (batch, tokens) bool, True on real tokens; None if unpadded

    def to(self, device: torch.device | str) -> Batch:
        mask = None if self.mask is None else self.mask.to(device, non_blocking=True)
        return Batch(self.inputs.to(device, non_blocking=True), self.targets.to(device, non_blocking=True), mask)

    def rows(self, index: torch.Tensor | slice) -> Batch:
        """The examples at `index` (a slice, or a tensor of example indices), inputs, targets and mask alike:
        the one way a batch is cut (task splits, micro-batches, evaluation and prediction chunks)."""
        return Batch(
            rows(self.inputs, index), rows(self.targets, index), None if self.mask is None else rows(self.mask, index)
        )

    def chunks(self, size: int) -> Iterator[Batch]:
        """Consecutive batches of `size` examples in order (the last may be smaller)."""
        for start in range(0, len(self), size):
            yield self.rows(slice(start, start + size))

    def __len__(self) -> int:
        return self.inputs.shape[0]


def mask_problem(mask: torch.Tensor, shape: tuple[int, int], output_tokens: int) -> str | None:
    """What is wrong with a padding mask, or None: it must be (n, tokens) booleans (or 0/1), right padding
    only, with at least `output_tokens` real tokens per row, since the head reads the last real tokens."""
    if tuple(mask.shape) != shape or mask.is_complex() or not ((mask == 0) | (mask == 1)).all():
        return f"must be {shape} of booleans or 0/1 marking real tokens; got {tuple(mask.shape)} {mask.dtype}."
    mask = mask.bool()
    if (mask[:, 1:] & ~mask[:, :-1]).any() or (mask.sum(1) < output_tokens).any():
        return (
            f"rows must each mark at least {output_tokens} real token(s), all before the padding (right padding: "
            "ones, then zeros); left-padded or all-padding rows would make the head read padding."
        )
    return None


@dataclass(frozen=True)
class TaskSpec:
    """Shapes the model is built from (see `FPTConfig`)."""

    input_kind: str  # "continuous" or "discrete"
    input_dim: int  # values per token, or vocabulary size
    max_length: int  # tokens per example (upper bound when padded)
    num_classes: int
    output_tokens: int = 1
    outputs_per_token: int = 1

    def model_fields(self) -> dict:
        return dict(
            input_kind=self.input_kind,
            input_dim=self.input_dim,
            max_length=self.max_length,
            num_classes=self.num_classes,
            output_tokens=self.output_tokens,
            outputs_per_token=self.outputs_per_token,
        )


class Task:
    """Base class. Subclasses set `name` and `spec` and implement `train_batches`, `eval_batches` and
    `split_size`; the attributes below have defaults that fit a task without them."""

    name: str = "task"
    spec: TaskSpec
    metric_names = {"accuracy": "accuracy", "exact_match": "exact match"}
    splits: tuple[str, ...] = ("val", "test")
    # Whether training examples change at random each time they are drawn (image augmentation): then
    # no two epochs show the model the same inputs, and backbone features cannot be cached.
    augment: bool = False
    # Where each split's examples come from, by split name ("2000 of train, seed 1000003"), recorded
    # in summary.json; a split not listed is named by its split name.
    split_sources: Mapping[str, str] = MappingProxyType({})
    # The dataset files the examples were read from, fingerprinted (fpt.data.fingerprint): recorded in
    # config.yaml and summary.json, and checked by `--resume` and `fpt eval`. None: no files (a generated
    # stream, in-memory arrays, or a file whose options record its own SHA-256).
    data_fingerprint: Mapping | None = None

    def options(self) -> dict:
        """The task's resolved options, recorded in config.yaml."""
        return {}

    def train_batches(self, batch_size: int, seed: int, cursor: StreamCursor | None = None) -> Iterator[Batch]:
        """An endless stream of training batches, deterministic given `seed`.

        `cursor` (optional for a task of your own): draw from its generators and keep its position up to
        date, so that a resumed run continues the stream from a checkpoint at once (fpt.tasks.stream);
        a task without the parameter is resumed by drawing its stream up to the checkpoint's step."""
        raise NotImplementedError

    def require_full_batches(self, batch_size: int) -> None:
        """Refuse a batch size that a fixed training split cannot fill (a generated stream never runs short)."""

    def eval_batches(self, split: str, batch_size: int) -> Iterator[Batch]:
        """One full pass over `split`, every example exactly once, in a fixed order."""
        raise NotImplementedError

    def split_size(self, split: str) -> int:
        raise NotImplementedError

    def examples(self, split: str, batch_size: int) -> Iterator[Batch]:
        """Every example of `split` once, in a fixed order, as the model reads it (never augmented).

        The evaluation splits by default; a task whose training split is a fixed set of examples
        (`TensorTask`) lists "train" too. A generated training stream has no such list."""
        if split == "train":
            raise FPTError(
                f"{self.name}: the training examples are a generated stream, not a fixed set, so they cannot be "
                f"listed; examples() gives the {' and '.join(self.splits)} splits."
            )
        return self.eval_batches(split, batch_size)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


def check_model_fits(task: Task, model_config: object, splits: tuple[str, ...]) -> None:
    """Refuse a model built for other data than `task` before it meets a batch (torch's IndexError deep in
    the embedding lookup otherwise): token ids beyond its embedding table, or class ids beyond its head.
    `model_config` is the model's FPTConfig/LSTMConfig (None: nothing to check)."""
    spec, vocab = task.spec, getattr(model_config, "input_dim", None)
    if spec.input_kind == "discrete" and getattr(model_config, "input_kind", None) == "discrete":
        if isinstance(vocab, int) and spec.input_dim > vocab:
            split, largest = max(((s, _largest_id(task, s, spec.input_dim - 1)) for s in splits), key=lambda p: p[1])
            raise FPTError(
                f"{task.name}: the {split} split holds token ids up to {largest:,}, and the model's input embedding "
                f"has {vocab:,} (ids 0 to {vocab - 1:,}): it was built for data with fewer distinct tokens. Build the "
                "model from a task that holds every split (its vocabulary counts the ids of all of them), or map "
                f"unseen ids to one id below {vocab:,}."
            )
    classes = getattr(model_config, "num_classes", None)
    if isinstance(classes, int) and spec.num_classes > classes:
        raise FPTError(
            f"{task.name} has {spec.num_classes} classes and the model's head {classes}: it was built for another "
            "task. Build the model from this task's spec (FPTConfig(**task.spec.model_fields(), ...))."
        )


def _largest_id(task: Task, split: str, otherwise: int) -> int:
    """The largest token id of `split`; `otherwise` where its examples cannot be listed (a generated stream)."""
    try:
        return max(int(batch.inputs.max()) for batch in task.examples(split, 4096))
    except (FPTError, ValueError):
        return otherwise


@dataclass
class Scores:
    """Running counts for unit accuracy and whole-example exact match, and how often each class was
    predicted and was the answer (a run that predicts one class everywhere learned nothing); on the device."""

    correct_units: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.long))
    units: int = 0
    correct_examples: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.long))
    examples: int = 0
    predicted: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))  # per class
    answers: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))  # per class

    def add(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        predictions = logits.argmax(dim=-1)
        hits = predictions == targets
        self.correct_units = self.correct_units.to(hits.device) + hits.sum()
        self.correct_examples = self.correct_examples.to(hits.device) + hits.all(dim=1).sum()
        self.units += hits.numel()
        self.examples += hits.shape[0]
        classes = logits.shape[-1]
        self.predicted = padded_counts(self.predicted, classes).to(hits.device) + torch.bincount(
            predictions.reshape(-1), minlength=classes
        )
        self.answers = padded_counts(self.answers, classes).to(hits.device) + torch.bincount(
            targets.reshape(-1), minlength=classes
        )

    def result(self) -> dict[str, float]:
        units = max(self.units, 1)
        return {
            "accuracy": self.correct_units.item() / units,
            "exact_match": self.correct_examples.item() / max(self.examples, 1),
            "examples": self.examples,
            # the largest share of one class among the predictions, and among the answers (the majority class)
            "prediction_share": self.predicted.max().item() / units if self.predicted.numel() else 0.0,
            "majority_share": self.answers.max().item() / units if self.answers.numel() else 0.0,
        }


def padded_counts(counts: torch.Tensor, classes: int) -> torch.Tensor:
    """`counts` (one per class) with zeros appended up to `classes` entries."""
    return torch.cat([counts, counts.new_zeros(max(classes - counts.numel(), 0))])

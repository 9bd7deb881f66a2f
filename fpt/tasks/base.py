"""What a task gives the trainer: shapes, an endless seeded training stream, and fixed eval splits.

Data flows one way: task -> `Batch` -> model -> outputs -> restored (`Batch.restore`) -> `task.loss`
and the output kind's scores -> run directory. Every task predicts `units` outputs per example (one
class label, one per bit, one value per forecast step); what they are, their loss, metrics and the
metric that selects the best checkpoint belong to the task's output kind (fpt.tasks.outputs).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch

from fpt.errors import FPTError
from fpt.tasks.outputs import Classification, ClassScores, OutputKind, output_kind
from fpt.tasks.stream import StreamCursor

Scores = ClassScores  # the name from before output kinds (fpt.tasks.outputs)
HEADS = ("last", "flatten")


def rows(tensor: torch.Tensor, index: torch.Tensor | slice) -> torch.Tensor:
    """tensor[index] along the first axis; `index_select` for index tensors: advanced indexing of a
    large tensor is slow on a multithreaded CPU (benchmarks/results/design_figures.md)."""
    return tensor.index_select(0, index) if isinstance(index, torch.Tensor) else tensor[index]


@dataclass
class Batch:
    """Examples as the model reads them, with their targets.

    `output_loc` and `output_scale` (optional, regression only) restore each example's outputs to the
    targets' scale: the model predicts normalised values (RevIN-style instance normalisation of a
    forecasting task), and loss, metrics and predictions are all measured on `outputs * output_scale
    + output_loc`. Each is a tensor broadcastable to the targets (batch, units), e.g. (batch, 1) per
    example, with its first axis the batch's; None: 0 and 1."""

    inputs: torch.Tensor  # (batch, tokens, width) float, or (batch, tokens) ids
    targets: torch.Tensor  # (batch, units) class ids, or float values
    mask: torch.Tensor | None = None  # (batch, tokens) bool, True on real tokens; None if unpadded
    output_loc: torch.Tensor | None = None  # (batch, ...) added to the outputs (see above)
    output_scale: torch.Tensor | None = None  # (batch, ...) multiplying the outputs (see above)

    def _map(self, fn) -> Batch:
        """A batch of `fn(tensor)` for each tensor this one holds (None stays None)."""
        return Batch(
            fn(self.inputs),
            fn(self.targets),
            *(None if t is None else fn(t) for t in (self.mask, self.output_loc, self.output_scale)),
        )

    def to(self, device: torch.device | str) -> Batch:
        return self._map(lambda t: t.to(device, non_blocking=True))

    def rows(self, index: torch.Tensor | slice) -> Batch:
        """The examples at `index` (a slice, or a tensor of example indices), every tensor alike: the
        one way a batch is cut (task splits, micro-batches, evaluation and prediction chunks)."""
        return self._map(lambda t: rows(t, index))

    def chunks(self, size: int) -> Iterator[Batch]:
        """Consecutive batches of `size` examples in order (the last may be smaller)."""
        for start in range(0, len(self), size):
            yield self.rows(slice(start, start + size))

    def restore(self, outputs: torch.Tensor) -> torch.Tensor:
        """The model's (batch, units, width) outputs on the targets' scale (see the class docstring)."""
        if self.output_scale is not None:
            outputs = outputs * self.output_scale.reshape(*self.output_scale.shape, 1)
        if self.output_loc is not None:
            outputs = outputs + self.output_loc.reshape(*self.output_loc.shape, 1)
        return outputs

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
    """Shapes the model is built from (see `FPTConfig`), and what the task predicts.

    `outputs`: the output kind (fpt.tasks.outputs), e.g. `Classification(10)` or `Regression()`; a
    spec given only `num_classes` (as tasks written before output kinds) classifies. `head`: "last"
    (each of the last `output_tokens` positions predicts its `outputs_per_token` units) or "flatten"
    (one linear layer over the features of all `output_tokens` positions together predicts every
    unit: One-Fits-All forecasting's head over the patch features)."""

    input_kind: str  # "continuous" or "discrete"
    input_dim: int  # values per token, or vocabulary size
    max_length: int  # tokens per example (upper bound when padded)
    num_classes: int | None = None  # classification: classes per unit (None for other kinds)
    output_tokens: int = 1
    outputs_per_token: int = 1
    outputs: OutputKind | None = None  # None: Classification(num_classes)
    head: str = "last"

    def __post_init__(self) -> None:
        if self.outputs is None:
            if self.num_classes is None:
                raise FPTError("A TaskSpec needs its output kind: outputs=Classification(n) or Regression().")
            object.__setattr__(self, "outputs", Classification(self.num_classes))
        elif not isinstance(self.outputs, OutputKind):
            raise FPTError(f"TaskSpec outputs must be an output kind (fpt.tasks.outputs), got {self.outputs!r:.80}.")
        elif isinstance(self.outputs, Classification) and self.num_classes != self.outputs.num_classes:
            if self.num_classes is not None:
                raise FPTError(f"TaskSpec num_classes {self.num_classes} differs from its outputs {self.outputs}.")
            object.__setattr__(self, "num_classes", self.outputs.num_classes)
        elif not isinstance(self.outputs, Classification) and self.num_classes is not None:
            raise FPTError(f"TaskSpec num_classes is for classification; its outputs are {self.outputs}.")
        if self.head not in HEADS:
            raise FPTError(f"TaskSpec head must be one of {', '.join(HEADS)}, got {self.head!r:.40}.")

    @property
    def output_kind(self) -> OutputKind:
        """`outputs`, never None."""
        assert self.outputs is not None  # set by __post_init__
        return self.outputs

    @property
    def units(self) -> int:
        """Outputs predicted per example."""
        return self.output_tokens * self.outputs_per_token

    def model_fields(self) -> dict:
        return dict(
            input_kind=self.input_kind,
            input_dim=self.input_dim,
            max_length=self.max_length,
            num_classes=self.output_kind.width,  # the head's outputs per unit (1 for regression)
            output_tokens=self.output_tokens,
            outputs_per_token=self.outputs_per_token,
            outputs=self.output_kind.name,
            head=self.head,
        )


class Task:
    """Base class. Subclasses set `name` and `spec` and implement `train_batches`, `eval_batches` and
    `split_size`; the attributes below have defaults that fit a task without them."""

    name: str = "task"
    spec: TaskSpec
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

    @property
    def metric_names(self) -> dict[str, str]:
        """How the output kind's metrics are named to a reader; a task may set its own (bit accuracy)."""
        return dict(self.spec.output_kind.metric_names)

    def baselines(self, split: str) -> dict[str, dict[str, float]]:
        """Reference predictions a trained model must beat, scored on `split` with the task's own metrics
        ({name: {metric: value}}, e.g. a forecast's last value), recorded in summary.json and set beside the
        trained runs in sweep tables; none by default."""
        return {}

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss of restored outputs (`Batch.restore`): the output kind's, unless overridden."""
        return self.spec.output_kind.loss(outputs, targets)


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
    if not isinstance(classes, int):
        return
    theirs, ours = output_kind(model_config), spec.output_kind
    if theirs.name != ours.name or (spec.num_classes is not None and spec.num_classes > classes):
        model = f"{classes} classes" if theirs.name == "classification" else theirs.name
        task_has = f"{spec.num_classes} classes" if spec.num_classes is not None else ours.name
        raise FPTError(
            f"{task.name} has {task_has} and the model's head {model}: it was built for another "
            "task. Build the model from this task's spec (FPTConfig(**task.spec.model_fields(), ...))."
        )


def _largest_id(task: Task, split: str, otherwise: int) -> int:
    """The largest token id of `split`; `otherwise` where its examples cannot be listed (a generated stream)."""
    try:
        return max(int(batch.inputs.max()) for batch in task.examples(split, 4096))
    except (FPTError, ValueError):
        return otherwise

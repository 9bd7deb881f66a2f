"""A task over in-memory tensors: the user's own data, and the base for file-backed datasets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import torch

from fpt.errors import FPTError
from fpt.tasks.base import Batch, Task, TaskSpec, mask_problem
from fpt.tasks.outputs import Classification, OutputKind, Regression
from fpt.tasks.stream import StreamCursor

INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
RESTORE = ("output_loc", "output_scale")


def _restore_part(split: str, name: str, tensor: torch.Tensor | None, targets: torch.Tensor) -> torch.Tensor | None:
    """A split's `output_loc` or `output_scale` as float32, checked to broadcast to its (n, units) targets."""
    if tensor is None:
        return None
    tensor = torch.as_tensor(tensor)
    try:
        ok = tensor.is_floating_point() and len(tensor) == len(targets)
        ok = ok and torch.broadcast_shapes(tensor.shape, targets.shape) == targets.shape
    except (RuntimeError, TypeError):
        ok = False
    if not ok:
        raise FPTError(
            f"The {split} {name} is {tuple(tensor.shape)} {tensor.dtype}; it must be floats with one row per "
            f"example, broadcastable to the targets {tuple(targets.shape)} (e.g. ({len(targets)}, 1))."
        )
    if not torch.isfinite(tensor).all():
        raise FPTError(f"The {split} {name} holds NaN or infinite values.")
    return tensor.float()


OUTPUTS = ("auto", "classification", "regression")


def _class_ids(split: str, targets: torch.Tensor) -> torch.Tensor:
    """Targets as int64 class ids; fractional or negative values (soft labels, regression) are refused."""
    if targets.dtype == torch.bool:
        return targets.long()
    if targets.is_floating_point() and not (torch.isfinite(targets).all() and (targets == targets.round()).all()):
        raise FPTError(
            f"{split} targets hold fractional or non-finite values, and this task classifies: targets must be "
            "integer class ids 0..num_classes-1 (round or bin them first), or pass outputs='regression' to "
            "predict the values."
        )
    if not (targets.is_floating_point() or targets.dtype in INTEGER_DTYPES):
        raise FPTError(f"{split} targets must be integer class ids; got dtype {targets.dtype}.")
    if int(targets.min()) < 0:
        raise FPTError(f"{split} targets must be class ids from 0; found {int(targets.min())}.")
    return targets.long()


def _values(split: str, targets: torch.Tensor) -> torch.Tensor:
    """Regression targets as float32 (float64 kept: its metrics stay exact), all finite."""
    if not (targets.is_floating_point() or targets.dtype in INTEGER_DTYPES or targets.dtype == torch.bool):
        raise FPTError(f"{split} targets must be real numbers to regress on; got dtype {targets.dtype}.")
    values = targets if targets.dtype == torch.float64 else targets.float()
    if not torch.isfinite(values).all():
        bad = int((~torch.isfinite(values)).flatten(1).any(1).sum())
        raise FPTError(
            f"{split} targets hold NaN or infinite values ({bad} of {len(values)} examples); drop or impute "
            "those examples first: one non-finite target makes the loss and every metric NaN."
        )
    return values


def _resolve_kind(outputs, targets: dict[str, torch.Tensor], num_classes: int | None) -> str:
    """ "classification" or "regression": as asked, or (auto) from the targets: integer or boolean targets
    are class ids, floats with a fractional value anywhere are values, whole floats stay class ids (as
    labels saved as floats always were); a mix of integer splits and fractional ones is refused."""
    if outputs not in OUTPUTS:
        raise FPTError(f"outputs must be one of {', '.join(OUTPUTS)} (or an output kind); got {outputs!r:.60}.")
    if outputs == "regression" and num_classes is not None:
        raise FPTError("num_classes is for classification; a regression task (outputs='regression') has none.")
    if outputs != "auto":
        return outputs
    fractional = [
        split
        for split, t in targets.items()
        if t.is_floating_point() and not (torch.isfinite(t).all() and (t == t.round()).all())
    ]
    integer = [split for split, t in targets.items() if not t.is_floating_point()]
    if fractional and integer:
        raise FPTError(
            f"The {', '.join(integer)} targets are integers (class ids) and the {', '.join(fractional)} targets "
            "fractional values: every split's targets must be of one kind. Give floats everywhere to regress "
            "(or pass outputs='regression'), integer class ids everywhere to classify."
        )
    return "regression" if fractional and num_classes is None else "classification"


Split = tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor] | Batch


class TensorTask(Task):
    """Train/val/test splits given as `(inputs, targets[, mask])` tensors, or as `Batch`es.

    inputs: (n, tokens, width) float for continuous tokens, or (n, tokens) integer ids.
    targets: (n,) or (n, units): integer class ids to classify; float values to regress (MSE), e.g. one
      value per example (n,), d per example (n, d), or one per output token (n, output_tokens).
    mask: optional (n, tokens) bool, True on real tokens (for padded variable-length inputs).
    A `Batch` may also carry `output_loc`/`output_scale` (regression): outputs are restored with them
      before loss, metrics and predictions (fpt.tasks.base.Batch).
    outputs: "auto" (integer targets classify, fractional floats regress), "classification",
      "regression", or an output kind (fpt.tasks.outputs). head: "last" or "flatten" (TaskSpec).
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
        outputs: str | OutputKind = "auto",
        head: str = "last",
    ):
        self.name = name
        if isinstance(output_tokens, bool) or not isinstance(output_tokens, int) or output_tokens < 1:
            raise FPTError(f"output_tokens must be a positive integer, got {output_tokens!r:.60}.")
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
        ):
            raise FPTError(
                f"num_classes must be a positive integer (or None: from the targets), got {num_classes!r:.60}."
            )
        checked = {
            split: self._check(split, parts, output_tokens)
            for split, parts in (("train", train), ("val", val), ("test", test))
        }
        if isinstance(outputs, OutputKind):
            num_classes = outputs.num_classes if isinstance(outputs, Classification) else num_classes
            outputs = outputs.name
        kind = _resolve_kind(outputs, {split: batch.targets for split, batch in checked.items()}, num_classes)
        convert = _values if kind == "regression" else _class_ids
        self.data = {split: (b.inputs, convert(split, b.targets), b.mask) for split, b in checked.items()}
        self.restore = {
            split: (b.output_loc, b.output_scale)
            for split, b in checked.items()
            if b.output_loc is not None or b.output_scale is not None
        }
        if len({(b.output_loc is None, b.output_scale is None) for b in checked.values()}) > 1:
            raise FPTError(
                "Give output_loc/output_scale for every split or for none (the model is measured the same way on each)."
            )
        if self.restore and kind != "regression":
            raise FPTError(
                "output_loc/output_scale restore predicted values to their scale; this task classifies, and logits "
                "are not rescaled. Drop them, or give float targets (outputs='regression')."
            )
        self._check_splits_agree()
        self.spec = self._spec(kind, num_classes, output_tokens, head)

    def _check_splits_agree(self) -> None:
        inputs, targets, _ = self.data["train"]
        for split, (x, t, _) in self.data.items():  # every split against train, before any training
            if x.shape[1:] != inputs.shape[1:] or t.shape[1] != targets.shape[1]:
                raise FPTError(
                    f"{split} examples are shaped {tuple(x.shape[1:])} with {t.shape[1]} target unit(s), but train "
                    f"examples {tuple(inputs.shape[1:])} with {targets.shape[1]}: every split needs the same tokens, "
                    "width and units (pad to one length and pass a mask for variable-length inputs)."
                )

    def _spec(self, kind: str, num_classes: int | None, output_tokens: int, head: str) -> TaskSpec:
        """The spec of the checked splits: shapes from train, classes from the targets unless given."""
        inputs, targets, _ = self.data["train"]
        discrete = not inputs.is_floating_point()
        units = targets.shape[1]
        if units % output_tokens:
            raise FPTError(f"{units} target units per example cannot be split over {output_tokens} output tokens.")
        width = int(max(x.max() for x, _, _ in self.data.values())) + 1 if discrete else inputs.shape[-1]
        outputs: OutputKind = Regression()
        if kind == "classification":
            if num_classes is None:
                num_classes = int(max(t.max() for _, t, _ in self.data.values())) + 1
            for split, (_, t, _) in self.data.items():
                if t.max() >= num_classes:
                    raise FPTError(
                        f"{split} targets must be class ids in [0, {num_classes}); found {int(t.min())}..{int(t.max())}."
                    )
            outputs = Classification(num_classes)
        shape = "discrete" if discrete else "continuous"
        return TaskSpec(shape, width, inputs.shape[1], None, output_tokens, units // output_tokens, outputs, head)

    @staticmethod
    def _check(split: str, parts, output_tokens: int) -> Batch:
        """One split as a Batch of float32 or int64 inputs, (n, units) targets as given, bool mask or None,
        and the restore tensors if any; or an FPTError."""
        if isinstance(parts, Batch):
            parts, restore = (parts.inputs, parts.targets, parts.mask), (parts.output_loc, parts.output_scale)
        else:
            restore = (None, None)
        if not isinstance(parts, (tuple, list)) or len(parts) not in (2, 3):
            raise FPTError(
                f"The {split} split must be a tuple (inputs, targets) or (inputs, targets, mask), or a Batch."
            )
        try:
            inputs, targets = torch.as_tensor(parts[0]), torch.as_tensor(parts[1])
            mask = None if len(parts) < 3 or parts[2] is None else torch.as_tensor(parts[2])
        except (TypeError, ValueError, RuntimeError) as err:
            raise FPTError(f"The {split} split is not made of numeric arrays or tensors ({str(err)[:200]}).") from err
        float_tokens = inputs.is_floating_point() and inputs.dim() == 3
        id_tokens = inputs.dtype in INTEGER_DTYPES and inputs.dim() == 2
        if not (float_tokens or id_tokens):
            raise FPTError(
                f"{split} inputs must be (n, tokens, width) floats or (n, tokens) integer ids; got "
                f"{tuple(inputs.shape)} {inputs.dtype}."
            )
        if len(inputs) == 0 or inputs.shape[1] == 0 or (float_tokens and inputs.shape[2] == 0):
            raise FPTError(f"The {split} split is empty ({tuple(inputs.shape)}); every split needs examples.")
        if float_tokens:
            inputs = inputs.float()  # the model computes in float32 (float64 and half inputs are converted)
            if not torch.isfinite(inputs).all():
                raise FPTError(f"{split} inputs contain NaN or infinite values; clean or impute them first.")
        elif int(inputs.min()) < 0:
            raise FPTError(f"{split} token ids must be non-negative; found {int(inputs.min())}.")
        if targets.dim() == 0 or len(targets) != len(inputs):
            raise FPTError(
                f"{split}: {len(inputs)} inputs but targets of shape {tuple(targets.shape)}; give one target "
                "(or one row of targets) per example."
            )
        if targets.numel() == 0:
            raise FPTError(f"{split} targets hold no units (shape {tuple(targets.shape)}).")
        if mask is not None:
            problem = mask_problem(mask, (inputs.shape[0], inputs.shape[1]), output_tokens)
            if problem:
                raise FPTError(f"The {split} mask {problem}")
            mask = mask.bool()
        targets = targets.reshape(len(targets), -1)
        return Batch(
            inputs,
            targets,
            mask,
            *(_restore_part(split, name, t, targets) for name, t in zip(RESTORE, restore, strict=True)),
        )

    def split_size(self, split: str) -> int:
        return len(self.data[split][0])

    def _take(self, split: str, index: torch.Tensor | slice) -> Batch:
        """The examples of `split` at `index`, as the model reads them (token ids as int64, which the embedding
        needs; stored as given, so uint8 ids stay small); subclasses that store examples in another form
        (uint8 images, packed sequences) override this alone."""
        batch = Batch(*self.data[split], *self.restore.get(split, (None, None))).rows(index)
        if self.spec.input_kind == "discrete" and batch.inputs.dtype != torch.long:
            batch.inputs = batch.inputs.long()
        return batch

    def require_full_batches(self, batch_size: int) -> None:
        n = self.split_size("train")
        if n < batch_size:
            raise FPTError(
                f"{self.name}: the training split has {n:,} examples, fewer than one batch of {batch_size}. "
                f"Lower --batch-size to at most {n}, or give the task more training data (a generated dataset "
                "that is too small is rebuilt with `fpt data generate <name> --force`)."
            )

    def train_order(self, batch_size: int, seed: int, cursor: StreamCursor | None = None) -> Iterator[torch.Tensor]:
        """The example indices of each training batch: without replacement, reshuffled every epoch.

        `cursor` holds the generator's state at the epoch's start and the offset reached in it: a saved
        one continues from there, drawing the epoch's order again rather than every epoch before it."""
        cursor = cursor or StreamCursor()
        generator = torch.Generator().manual_seed(seed)
        if "epoch_start" in cursor.position:
            generator.set_state(cast(torch.Tensor, cursor.position["epoch_start"]))
        offset = int(cursor.position.get("offset", 0))
        n = self.split_size("train")
        self.require_full_batches(batch_size)
        while True:
            cursor.position["epoch_start"] = generator.get_state()
            order = torch.randperm(n, generator=generator)
            for start in range(offset, n - batch_size + 1, batch_size):
                cursor.position["offset"] = start + batch_size
                yield order[start : start + batch_size]
            offset = 0

    def train_batches(self, batch_size: int, seed: int, cursor: StreamCursor | None = None) -> Iterator[Batch]:
        for index in self.train_order(batch_size, seed, cursor):
            yield self._take("train", index)

    def eval_batches(self, split: str, batch_size: int) -> Iterator[Batch]:
        for start in range(0, self.split_size(split), batch_size):
            yield self._take(split, slice(start, start + batch_size))

    def examples(self, split: str, batch_size: int) -> Iterator[Batch]:
        """Every example of `split`, "train" included (a fixed set here), in index order."""
        return self.eval_batches(split, batch_size)

    # -- own data, rebuildable in a new process (fpt.tasks.arrays) --------------------------------
    source: dict | None = None  # set when read from a file: the `arrays` task options that rebuild it

    def options(self) -> dict:
        return dict(self.source or {})

    def rebuild_options(self, run_dir, write: bool = True) -> dict:
        """The `arrays` task options that rebuild this task in a new process (`fpt eval`, `--resume`);
        a task held only in memory first saves its arrays in `run_dir` (when `write`)."""
        from fpt.tasks.arrays import save_task

        return dict(self.source) if self.source else save_task(self, run_dir, write)

    @classmethod
    def from_arrays(cls, inputs, targets, mask=None, split=None, **options) -> TensorTask:
        """One set of arrays, with an optional per-example `split` (0 train, 1 val, 2 test); see
        `fpt.tasks.arrays.from_arrays` (val_fraction, test_fraction, split_seed, num_classes, ...)."""
        from fpt.tasks.arrays import from_arrays

        return from_arrays(inputs, targets, mask, split, **options)

    @classmethod
    def from_hf(cls, dataset, input_column: str, label_column: str, **options) -> TensorTask:
        """A Hugging Face `datasets.Dataset` (split by fraction) or `DatasetDict` (train/validation/test);
        see `fpt.tasks.arrays.from_hf` (mask_column, patch_size for image columns, ...). Needs `frozen-pretrained-transformers[hf]`."""
        from fpt.tasks.arrays import from_hf

        return from_hf(dataset, input_column, label_column, **options)

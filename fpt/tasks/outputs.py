"""What a task predicts, owned by the task: its output kind.

A kind says how wide the head is per predicted unit, the loss, the running scores an evaluation
accumulates, what a prediction is, and which validation metric selects the best checkpoint (and
whether higher or lower is better). Everything downstream (evaluation, early stopping, summary.json,
`fpt predict`, sweeps, tables, `fpt compare/report`) reads these instead of assuming accuracy.

- `Classification(num_classes)`: integer targets, cross-entropy, unit accuracy and exact match;
  the best checkpoint has the highest validation accuracy.
- `Regression()`: float targets, one value per unit, mean squared error; MSE and MAE summed exactly
  in float64; the best checkpoint has the lowest validation MSE.

Both predict `units` outputs per example (TaskSpec: output_tokens x outputs_per_token), so targets
are (batch, units) in both, and the model's outputs (batch, units, width).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from fpt.errors import FPTError

KIND_NAMES = ("classification", "regression")


@dataclass(frozen=True)
class Selection:
    """The validation metric that picks the best checkpoint (and the lr of a sweep), and its direction."""

    metric: str  # a key of the kind's results, e.g. "accuracy" or "mse"
    mode: Literal["max", "min"]

    def better(self, value: float, best: float | None) -> bool:
        """Whether `value` beats `best` (None: nothing yet). Ties keep the earlier best."""
        if best is None:
            return True
        return value > best if self.mode == "max" else value < best

    def best_of(self, values: dict) -> object:
        """The key of `values` ({key: score}) with the best score; the first listed among ties."""
        pick = max if self.mode == "max" else min
        return pick(values, key=values.__getitem__)

    def to_dict(self) -> dict:
        return {"metric": self.metric, "mode": self.mode}


class OutputKind:
    """Base of the output kinds; see the module docstring."""

    name: ClassVar[str]
    selection: ClassVar[Selection]
    # the result keys that tables and summaries show, the headline first
    headline: ClassVar[tuple[str, ...]]
    # how each result key is named to a reader (a task may rename them: bit accuracy)
    metric_names: ClassVar[dict[str, str]]

    @property
    def width(self) -> int:
        """The head's outputs per predicted unit."""
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scores(self) -> ClassScores | RegressionScores:
        raise NotImplementedError

    def predict(self, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model's (batch, units, width) outputs as predictions ({name: (batch, units, ...)})."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError


@dataclass(frozen=True)
class Classification(OutputKind):
    num_classes: int

    name: ClassVar[str] = "classification"
    selection: ClassVar[Selection] = Selection("accuracy", "max")
    headline: ClassVar[tuple[str, ...]] = ("accuracy", "exact_match")
    metric_names: ClassVar[dict[str, str]] = {"accuracy": "accuracy", "exact_match": "exact match"}

    @property
    def width(self) -> int:
        return self.num_classes

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]).float(), targets.reshape(-1))

    def scores(self) -> ClassScores:
        return ClassScores(self.num_classes)

    def predict(self, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = outputs.float()
        return {"classes": outputs.argmax(-1), "probabilities": outputs.softmax(-1)}

    def to_dict(self) -> dict:
        return {"kind": self.name, "num_classes": self.num_classes}


@dataclass(frozen=True)
class Regression(OutputKind):
    """One real value per unit; see the module docstring."""

    name: ClassVar[str] = "regression"
    selection: ClassVar[Selection] = Selection("mse", "min")
    headline: ClassVar[tuple[str, ...]] = ("mse", "mae")
    metric_names: ClassVar[dict[str, str]] = {"mse": "MSE", "mae": "MAE"}

    @property
    def width(self) -> int:
        return 1

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs.reshape(targets.shape).float(), targets.float())

    def scores(self) -> RegressionScores:
        return RegressionScores()

    def predict(self, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"values": outputs[..., 0].float()}

    def to_dict(self) -> dict:
        return {"kind": self.name}


KINDS: tuple[type[OutputKind], ...] = (Classification, Regression)


def output_kind(config: object) -> OutputKind:
    """The kind a model config (FPTConfig, LSTMConfig, or their dicts) was built for; configs written
    before output kinds existed are classifiers."""
    get = config.get if isinstance(config, dict) else lambda key, default=None: getattr(config, key, default)
    name = get("outputs", "classification") or "classification"
    if name == "regression":
        return Regression()
    if name != "classification":
        raise FPTError(f"Unknown output kind {name!r} in a model config; fpt knows {', '.join(KIND_NAMES)}.")
    return Classification(int(get("num_classes") or 0))


def kind_selecting(metric: str) -> type[OutputKind]:
    """The output kind whose best checkpoint `metric` selects (summaries record the metric, not the kind)."""
    for kind in KINDS:
        if kind.selection.metric == metric:
            return kind
    raise FPTError(
        f"No output kind selects by {metric!r}; fpt's select by {', '.join(k.selection.metric for k in KINDS)}."
    )


def selection_of(summary: dict) -> Selection:
    """The selection a run's summary.json records; summaries from before output kinds: accuracy, max."""
    recorded = summary.get("selection") or {}
    return Selection(recorded.get("metric", "accuracy"), recorded.get("mode", "max"))


def test_metric(summary: dict) -> float | None:
    """The selection metric on the test split, from a summary of any age (None: no test pass)."""
    value = summary.get("test_metric", summary.get("test_accuracy"))
    return None if value is None else float(value)


def val_metric(summary: dict) -> float | None:
    """The selection metric of the tested (best-on-validation) checkpoint, from a summary of any age."""
    value = summary.get("best_val_metric", summary.get("best_val_accuracy"))
    return None if value is None else float(value)


@dataclass
class ClassScores:
    """Running counts for unit accuracy and whole-example exact match, and how often each class was
    predicted and was the answer (a run that predicts one class everywhere learned nothing); on the device."""

    num_classes: int = 0
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

    def totals(self, device: torch.device | str) -> torch.Tensor:
        """Every count in one tensor, to be summed over processes and read back by `from_totals`."""
        classes = self.num_classes
        counts = [self.correct_units.item(), self.units, self.correct_examples.item(), self.examples]
        return torch.cat(
            [
                torch.tensor(counts, device=device),
                padded_counts(self.predicted, classes).to(device),
                padded_counts(self.answers, classes).to(device),
            ]
        )

    def from_totals(self, counts: torch.Tensor) -> ClassScores:
        classes = self.num_classes
        correct_units, units, correct_examples, examples = counts[:4].tolist()
        predicted, answers = counts[4 : 4 + classes], counts[4 + classes :]
        return ClassScores(
            classes, torch.tensor(correct_units), units, torch.tensor(correct_examples), examples, predicted, answers
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


@dataclass
class RegressionScores:
    """Running sums of squared and absolute errors, in float64 on the device (exact enough that the
    order of batches and processes does not show in the reported figures), and the counts."""

    sums: torch.Tensor = field(default_factory=lambda: torch.zeros(4, dtype=torch.float64))  # sq, abs, units, examples

    def add(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        error = outputs.reshape(targets.shape).double() - targets.double()
        batch = torch.stack(
            [
                error.square().sum(),
                error.abs().sum(),
                error.new_tensor(float(error.numel())),
                error.new_tensor(float(error.shape[0])),
            ]
        )
        self.sums = self.sums.to(batch.device) + batch

    def totals(self, device: torch.device | str) -> torch.Tensor:
        return self.sums.to(device)

    def from_totals(self, counts: torch.Tensor) -> RegressionScores:
        return RegressionScores(counts.double())

    def result(self) -> dict[str, float]:
        squared, absolute, units, examples = self.sums.tolist()
        units = max(units, 1.0)
        return {"mse": squared / units, "mae": absolute / units, "examples": int(examples)}


def padded_counts(counts: torch.Tensor, classes: int) -> torch.Tensor:
    """`counts` (one per class) with zeros appended up to `classes` entries."""
    return torch.cat([counts, counts.new_zeros(max(classes - counts.numel(), 0))])

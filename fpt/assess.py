"""A trained model measured on labelled examples (`fpt eval`): accuracy, loss, per-class figures and the
confusion matrix (a regression model: MSE, MAE and the loss), on a split of the run's task or on a
new labelled file (`fpt eval RUN --data FILE`).

One pass: every example once, the logits turned into the loss the run trained with, the predicted
and true class of every unit counted into a confusion matrix, from which the per-class recall and
precision come. Exact match (every unit of an example right) is reported only where an example has
more than one unit; with one it is the accuracy again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from fpt.errors import FPTError
from fpt.memory import pass_bytes, require
from fpt.predict import check_inputs, restore_tensors
from fpt.tasks.arrays import read_array_file
from fpt.tasks.base import Batch
from fpt.tasks.outputs import Classification, OutputKind, Regression, output_kind

CONFUSION_LIMIT = 50  # classes up to which the confusion matrix is printed (remote homology has 1,195)


def read_labelled(path: str | Path, config) -> tuple[Batch, str]:
    """The examples of a labelled .npz/.safetensors file (arrays `inputs`, `targets`, optional `mask`, as
    for `--task arrays`), checked against the model's `config` (shapes, dtypes, ids, class range), and
    the file's SHA-256."""
    arrays, digest = read_array_file(Path(path), "Data file")
    inputs, mask = check_inputs(arrays["inputs"], arrays.get("mask"), config)
    units = config.output_tokens * config.outputs_per_token
    targets = np.asarray(arrays["targets"])
    if output_kind(config).name == "regression":
        return _labelled_values(path, inputs, targets, mask, units, arrays), digest
    if targets.ndim == 1 and units == 1:
        targets = targets[:, None]
    if targets.dtype.kind not in "iub" or targets.shape != (len(inputs), units):
        raise FPTError(
            f"{path}: targets have shape {targets.shape} and dtype {targets.dtype}; this model predicts {units} "
            f"class id(s) per example, so targets must be ({len(inputs)},{' ' + str(units) if units > 1 else ''}) integers."
        )
    if targets.min() < 0 or targets.max() >= config.num_classes:
        raise FPTError(
            f"{path}: targets hold class ids {int(targets.min())}..{int(targets.max())}; this model has "
            f"{config.num_classes} classes (0 to {config.num_classes - 1})."
        )
    return Batch(inputs, torch.from_numpy(targets.astype(np.int64)), mask), digest


def _labelled_values(path, inputs: torch.Tensor, targets: np.ndarray, mask, units: int, arrays: dict) -> Batch:
    """A regression model's labelled examples: (n, units) finite float targets, with any restore arrays."""
    n = len(inputs)
    if targets.dtype.kind not in "fiub" or len(targets) != n or targets.size != n * units:
        raise FPTError(
            f"{path}: targets have shape {targets.shape} and dtype {targets.dtype}; this model predicts {units} "
            f"value(s) per example, so targets must be {n} rows of {units} number(s)."
        )
    values = torch.from_numpy(targets.reshape(n, units).astype(np.float64))
    if not torch.isfinite(values).all():
        raise FPTError(f"{path}: targets hold NaN or infinite values; drop or impute those examples first.")
    loc, scale = restore_tensors(Regression(), n, arrays.get("output_loc"), arrays.get("output_scale"))
    return Batch(inputs, values, mask, loc, scale)


def require_pass_memory(model, examples: Batch, batch_size: int, device: torch.device) -> None:
    """Refuse evaluation batches whose pass cannot fit in memory, before one is made (see fpt.memory)."""
    size = min(batch_size, len(examples))
    width = examples.inputs.shape[2] if examples.inputs.dim() == 3 else 1
    require(
        f"Evaluation batches of {size:,} examples of {examples.inputs.shape[1]:,} tokens",
        pass_bytes(model, size, examples.inputs.shape[1], width, False, device),
        "Lower --batch-size.",
        device,
    )


@torch.inference_mode()
def assess(
    model,
    batches: Iterable[Batch],
    kind: OutputKind,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
    precision=None,
) -> dict:
    """By the model's output `kind`: a classifier's accuracy, exact match (several units per example
    only), mean loss per unit, the number of examples, per-class figures and the confusion matrix (rows:
    true class, columns: predicted); a regression model's MSE, MAE, loss and number of examples."""
    if not isinstance(kind, Classification):
        return _assess_values(model, batches, kind, loss, device, precision)
    num_classes = kind.num_classes
    model.eval()
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.long)
    loss_sum, exact, examples, units = 0.0, 0, 0, 0
    for batch in batches:
        batch = batch.to(device)
        with precision.autocast() if precision else nullcontext():
            logits = model(batch.inputs, batch.mask)
        predicted = logits.argmax(-1)
        loss_sum += loss(logits, batch.targets).item() * batch.targets.numel()
        exact += int((predicted == batch.targets).all(dim=1).sum())
        examples, units = examples + len(batch), units + batch.targets.numel()
        pairs = (batch.targets * num_classes + predicted).reshape(-1).cpu()
        confusion += torch.bincount(pairs, minlength=num_classes * num_classes)
    if not examples:
        raise FPTError("No examples to evaluate.")
    matrix = confusion.reshape(num_classes, num_classes)
    result: dict = {"accuracy": int(matrix.diag().sum()) / units}
    if units > examples:
        result["exact_match"] = exact / examples
    result.update(
        loss=loss_sum / units,
        examples=examples,
        # the largest share of one class among the predictions, and among the answers (the majority class)
        prediction_share=int(matrix.sum(0).max()) / units,
        majority_share=int(matrix.sum(1).max()) / units,
        per_class=per_class(matrix),
    )
    if num_classes <= CONFUSION_LIMIT:
        result["confusion_matrix"] = matrix.tolist()
    return result


def _assess_values(model, batches: Iterable[Batch], kind: OutputKind, loss, device, precision) -> dict:
    """MSE, MAE (float64 sums), the mean loss per unit and the number of examples of restored outputs."""
    model.eval()
    scores, loss_sum = kind.scores(), 0.0
    for batch in batches:
        batch = batch.to(device)
        with precision.autocast() if precision else nullcontext():
            outputs = batch.restore(model(batch.inputs, batch.mask))
        scores.add(outputs, batch.targets)
        loss_sum += loss(outputs, batch.targets).item() * batch.targets.numel()
    result = scores.result()
    if not result["examples"]:
        raise FPTError("No examples to evaluate.")
    units = float(scores.totals("cpu")[2])
    return {"mse": result["mse"], "mae": result["mae"], "loss": loss_sum / units, "examples": result["examples"]}


def per_class(matrix: torch.Tensor) -> list[dict]:
    """Each class's support (true units), how often it was predicted, recall and precision (None where
    undefined: a class never true, or never predicted)."""
    support, predicted, hits = matrix.sum(1), matrix.sum(0), matrix.diag()
    return [
        {
            "class": k,
            "support": int(support[k]),
            "predicted": int(predicted[k]),
            "recall": round(int(hits[k]) / int(support[k]), 4) if support[k] else None,
            "precision": round(int(hits[k]) / int(predicted[k]), 4) if predicted[k] else None,
        }
        for k in range(len(matrix))
    ]


def plot_confusion(matrix: list[list[int]], out: str | Path, title: str) -> None:
    """The confusion matrix as a PNG: each row (true class) normalised to 1, the counts written in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = 2.5 + 0.45 * len(counts)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(counts):
        ax.text(
            column,
            row,
            str(count),
            ha="center",
            va="center",
            fontsize=7,
            color="black" if rates[row, column] < 0.6 else "white",
        )
    ax.set(
        title=title, xlabel="predicted class", ylabel="true class", xticks=range(len(counts)), yticks=range(len(counts))
    )
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, format="png")
    plt.close(fig)

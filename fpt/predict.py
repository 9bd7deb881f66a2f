"""Predictions from a saved run: `fpt predict RUN_DIR --input FILE` on the command line, and
`predict(model, inputs)` in Python (with `load_run_model(run_dir)` or `FrozenPretrainedTransformer.from_run`).

Inputs are arrays shaped like the task's examples: (n, tokens, width) values for continuous tokens,
(n, tokens) ids for discrete ones, with an optional (n, tokens) mask marking the real tokens of
right-padded examples. They come from .npy, .npz (arrays `inputs` and optionally `mask`, and for a
regression model `output_loc`/`output_scale`, each example's restore: fpt.tasks.base.Batch), or the
task's own text format where it has one (ListOps: one expression per line, as in the LRA TSV files).
What comes out is the model's output kind's (fpt.tasks.outputs): `classes` and `probabilities` from a
classifier, `values` from a regression model.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fpt.data.listops import tokenize
from fpt.errors import FPTError
from fpt.files import atomic_write, not_a_file
from fpt.memory import pass_bytes, require
from fpt.model import load_run_model
from fpt.runs import read_run_record
from fpt.tasks.base import Batch, mask_problem
from fpt.tasks.outputs import output_kind
from fpt.tasks.sequences import pack
from fpt.training.loop import resolve_device

ARRAY_SUFFIXES = (".npy", ".npz")


def check_inputs(inputs, mask, config) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate `inputs` (and `mask`) against the model's `config`; return them as tensors."""
    inputs = np.asarray(inputs) if not isinstance(inputs, torch.Tensor) else inputs.detach().cpu().numpy()
    continuous = config.input_kind == "continuous"
    expected = f"(n, tokens, {config.input_dim}) numbers" if continuous else "(n, tokens) integer token ids"
    allowed = "fiub" if continuous else "iu"
    if inputs.dtype.kind not in allowed:
        raise FPTError(f"Inputs have dtype {inputs.dtype}; this model expects {expected}.")
    if inputs.ndim != (3 if continuous else 2) or (continuous and inputs.shape[-1] != config.input_dim):
        raise FPTError(f"Inputs have shape {inputs.shape}; this model expects {expected}.")
    n, tokens = inputs.shape[:2]
    if n == 0:
        raise FPTError("Inputs hold no examples (n = 0).")
    if not config.output_tokens <= tokens <= config.max_length:
        raise FPTError(
            f"Inputs have {tokens} tokens per example; this model reads {config.output_tokens} output token(s) and was "
            f"built for at most {config.max_length} tokens."
        )
    if continuous:
        values = torch.from_numpy(inputs.astype(np.float32))
        if not torch.isfinite(values).all():
            bad = int((~torch.isfinite(values)).flatten(1).any(1).sum())
            raise FPTError(
                f"Inputs contain NaN or infinite values ({bad} of {n} examples); clean or impute them first."
            )
    else:
        values = torch.from_numpy(inputs.astype(np.int64))
        if values.min() < 0 or values.max() >= config.input_dim:
            raise FPTError(
                f"Token ids must be in [0, {config.input_dim}); found {int(values.min())}..{int(values.max())}."
            )
    if mask is None:
        return values, None
    mask = np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask.detach().cpu().numpy()
    if mask.dtype.kind not in "biu":
        raise FPTError(f"The mask must be ({n}, {tokens}) booleans or 0/1 marking real tokens; got dtype {mask.dtype}.")
    mask = torch.from_numpy(mask.astype(np.int64) if mask.dtype.kind == "u" else mask)
    problem = mask_problem(mask, (n, tokens), config.output_tokens)
    if problem:
        raise FPTError(f"The mask {problem}")
    mask = mask.bool()
    return values, mask


def read_listops(path: Path, max_length: int, options: dict) -> tuple[np.ndarray, np.ndarray]:
    """ListOps expressions, one per line (an LRA TSV's target column and header are ignored),
    clipped to the model's length as in training."""

    tokens = []
    for number, line in enumerate(path.read_bytes().decode("utf-8", "replace").splitlines(), start=1):
        expression = line.split("\t")[0].strip()
        if not expression or (number == 1 and expression == "Source"):
            continue
        ids = tokenize(expression, options.get("parentheses", False))
        if ids is None or not len(ids):
            raise FPTError(
                f"{path}, line {number}: not a ListOps expression (tokens separated by spaces): {expression[:60]!r}."
            )
        tokens.append(ids)
    if not tokens:
        raise FPTError(f"{path} holds no ListOps expressions.")
    packed, lengths = pack(tokens, max_length)
    return packed.numpy(), (np.arange(packed.shape[1]) < lengths.numpy()[:, None])


TASK_READERS = {"listops": read_listops}  # task name -> reader of its own input format


def read_inputs(
    path: str | Path, task: str | None = None, max_length: int = 0, options: dict | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Arrays from `path`: .npy, .npz (`inputs`, optional `mask`), else the `task`'s own format."""
    path = Path(path)
    if not path.is_file():
        raise FPTError(f"Input file {path} {'is ' + str(not_a_file(path)) if not_a_file(path) else 'does not exist'}.")
    if path.suffix not in ARRAY_SUFFIXES:
        if task not in TASK_READERS:
            raise FPTError(
                f"Cannot read {path}: give inputs as .npy or .npz (arrays `inputs` and optionally `mask`)"
                + (f"; {', '.join(TASK_READERS)} also read their own text format." if TASK_READERS else ".")
            )
        return TASK_READERS[task](path, max_length, options or {})
    try:
        if path.suffix == ".npy":  # mapped first: a header announcing more than the file holds is refused unread
            return np.array(np.load(path, mmap_mode="r", allow_pickle=False)), None
        loaded = np.load(path, allow_pickle=False)
        with loaded:
            names = list(loaded.keys())
            if "inputs" not in names and len(names) != 1:
                raise FPTError(f"{path} holds arrays {names}; name the inputs `inputs` (and the mask `mask`).")
            inputs = loaded["inputs" if "inputs" in names else names[0]]
            return inputs, loaded["mask"] if "mask" in names else None
    except FPTError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise FPTError(f"Cannot read {path} as a NumPy {path.suffix} file ({str(err)[:200]}).") from err
    except MemoryError as err:  # an .npz member whose header announces more than it holds
        raise FPTError(
            f"{path} announces arrays larger than this machine's memory; it is damaged or not inputs."
        ) from err


def read_restore(path: str | Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """An .npz's `output_loc` and `output_scale` arrays (None where absent, or for other files)."""
    if Path(path).suffix != ".npz":
        return None, None
    with np.load(path, allow_pickle=False) as loaded:
        return tuple(loaded[name] if name in loaded.files else None for name in ("output_loc", "output_scale"))  # type: ignore[return-value]


def restore_tensors(kind, n: int, loc, scale) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """`output_loc`/`output_scale` as float tensors of n rows, refused for a classifier (logits are not rescaled)."""
    if loc is None and scale is None:
        return None, None
    if kind.name != "regression":
        raise FPTError("output_loc/output_scale restore predicted values; this model classifies. Drop them.")
    tensors = []
    for name, array in (("output_loc", loc), ("output_scale", scale)):
        tensor = None if array is None else torch.as_tensor(np.asarray(array, dtype=np.float32))
        if tensor is not None and (tensor.dim() == 0 or len(tensor) != n or not torch.isfinite(tensor).all()):
            raise FPTError(f"{name} must hold finite numbers, one row per example ({n}); got {tuple(tensor.shape)}.")
        tensors.append(tensor)
    return tensors[0], tensors[1]


@torch.inference_mode()
def predict(
    model,
    inputs,
    mask=None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    output_loc=None,
    output_scale=None,
) -> dict[str, np.ndarray]:
    """Predictions for `inputs`, by the model's output kind: a classifier's `classes` (n, units) and
    `probabilities` (n, units, classes), a regression model's `values` (n, units), restored with
    `output_loc`/`output_scale` where given (per example, broadcastable to (n, units); see
    fpt.tasks.base.Batch). With one unit per example, flat: (n,) and (n, classes)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise FPTError(f"batch_size must be a positive integer, got {batch_size!r:.40}.")
    values, mask = check_inputs(inputs, mask, model.config)
    kind = output_kind(model.config)
    loc, scale = restore_tensors(kind, len(values), output_loc, output_scale)
    examples, tokens = min(batch_size, len(values)), values.shape[1]
    require(
        f"Prediction batches of {examples:,} examples of {tokens:,} tokens",
        pass_bytes(model, examples, tokens, values.shape[2] if values.dim() == 3 else 1, False, torch.device(device)),
        "Lower --batch-size.",
        torch.device(device),
    )
    model.to(device).eval()
    parts: dict[str, list[torch.Tensor]] = {}
    unlabelled = Batch(values, torch.empty((len(values), 0), dtype=torch.long), mask, loc, scale)  # targets (n, 0)
    for batch in unlabelled.chunks(batch_size):
        batch = batch.to(device)
        for name, tensor in kind.predict(batch.restore(model(batch.inputs, batch.mask).float())).items():
            parts.setdefault(name, []).append(tensor.cpu())
    result = {name: torch.cat(tensors).numpy() for name, tensors in parts.items()}
    if next(iter(result.values())).shape[1] == 1:
        result = {name: array[:, 0] for name, array in result.items()}
    return result


def write_predictions(result: dict[str, np.ndarray], output: Path) -> None:
    """.npy: the classes (or a regression model's values); .npz: every array (classes and probabilities,
    or values); .json: the same as lists. Written atomically."""

    buffer = io.BytesIO()
    if output.suffix == ".npy":
        np.save(buffer, next(iter(result.values())))
    elif output.suffix == ".npz":
        arrays: dict[str, Any] = dict(result)
        np.savez(buffer, **arrays)
    elif output.suffix == ".json":
        buffer.write(json.dumps({k: v.tolist() for k, v in result.items()}).encode())
    else:
        raise FPTError(f"Output {output}: use a .npy (classes), .npz (classes and probabilities) or .json file.")
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(output, buffer.getvalue())


def predict_run(
    run_dir: str | Path,
    input_path: str | Path,
    output: str | Path | None = None,
    which: str = "best",
    batch_size: int = 256,
    device: str = "auto",
) -> dict[str, np.ndarray]:
    """What `fpt predict` does: load the run's model, read and check the inputs, predict, write."""

    run_dir = Path(run_dir)
    if output is not None and Path(output).resolve().is_relative_to(run_dir.resolve()):
        raise FPTError(
            f"Write predictions outside the run directory {run_dir} (got --output {output}), so its files stay as training left them."
        )
    if output is not None and Path(output).suffix not in (".npy", ".npz", ".json"):
        raise FPTError(f"Output {output}: use a .npy (classes), .npz (classes and probabilities) or .json file.")
    model = load_run_model(run_dir, which)
    record = read_run_record(run_dir)
    inputs, mask = read_inputs(
        input_path, record.task, model.config.max_length, record.config.get("task_options") or {}
    )
    loc, scale = read_restore(input_path)
    result = predict(model, inputs, mask, batch_size, resolve_device(device), loc, scale)
    if output is not None:
        write_predictions(result, Path(output))
    return result

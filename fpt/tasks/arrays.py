"""Own data from a file: `fpt train --task arrays --task-option path=data.npz`, and how an in-memory
`TensorTask` is saved into its run directory so `fpt eval`, `fpt attention` and `--resume` can
rebuild it in a new process.

The file (.npz, or .safetensors) holds, over all examples:
  inputs   (n, tokens, width) floats, or (n, tokens) integer ids
  targets  (n,) or (n, units): integer class ids to classify, or float values to regress (MSE/MAE;
           (n,) one value, (n, d) d values, or (n, output_tokens) one per output token)
  mask     optional (n, tokens) bool, True on real tokens (right padding)
  split    optional (n,) integers: 0 train, 1 val, 2 test (in .npz also the strings train/val/test);
           without it, val and test are carved from the examples with a fixed seed
  output_loc, output_scale  optional (regression), per example, broadcastable to (n, units): each
           example's outputs are restored as outputs * output_scale + output_loc (fpt.tasks.base.Batch)
The run records the file's absolute path and SHA-256; a changed file is refused when rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import cast

import numpy as np
import torch

from fpt.errors import FPTError, install_hint
from fpt.files import not_a_file
from fpt.tasks.base import Batch
from fpt.tasks.tensors import TensorTask

SPLITS = ("train", "val", "test")
DATA_FILE = "task-data.safetensors"  # an in-memory TensorTask's arrays, in its run directory
KEYS = ("inputs", "targets", "mask", "split", "output_loc", "output_scale")
RESTORE = ("output_loc", "output_scale")
OPTIONS = {  # refinements of the `arrays` factory's options (fpt.tasks.options)
    "path": {"type": str, "help": ".npz or .safetensors file: inputs, targets, optional mask and split"},
    "sha256": {"type": str, "help": "the file's SHA-256, checked when given (runs record it)"},
    "task_name": {"help": "the task's name in summaries and tables"},
    "num_classes": {"type": int, "min": 1, "help": "classes per unit (null: the largest target + 1)"},
    "outputs": {
        "choices": ["auto", "classification", "regression"],
        "help": "auto: integer targets classify, fractional float targets regress (MSE/MAE)",
    },
    "output_tokens": {"min": 1, "help": "final positions the head reads; the target units are split over them"},
    "head": {"choices": ["last", "flatten"], "help": "flatten: one linear map over all output tokens' features"},
    "val_fraction": {"min": 0, "max": 1, "help": "without a split array: share of examples for validation"},
    "test_fraction": {"min": 0, "max": 1, "help": "without a split array: share of examples for test"},
    "split_seed": {"help": "seed of that carving"},
}
DEFAULT_FRACTIONS = dict(val_fraction=0.1, test_fraction=0.1, split_seed=0)  # unused when a file has `split`


def _as_split_ids(split: np.ndarray | torch.Tensor, n: int) -> torch.Tensor:
    split = np.asarray(split)
    if split.dtype.kind in "US":
        unknown = sorted(set(split.astype(str).tolist()) - set(SPLITS))
        if unknown:
            raise FPTError(f"`split` names {unknown[:3]}; use train, val and test (or 0, 1, 2).")
        split = np.array([SPLITS.index(name) for name in split.astype(str).reshape(-1).tolist()])
    elif split.dtype.kind not in "iub":
        raise FPTError(f"`split` must hold integers 0 (train), 1 (val), 2 (test); got dtype {split.dtype}.")
    split = torch.as_tensor(split).long().reshape(-1)
    if len(split) != n:
        raise FPTError(f"`split` has {len(split)} entries for {n} examples; give one per example.")
    if len(split) and (int(split.min()) < -1 or int(split.max()) > 2):
        raise FPTError("`split` values must be 0 (train), 1 (val) or 2 (test).")
    return split


def from_arrays(
    inputs,
    targets,
    mask=None,
    split=None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    output_loc=None,
    output_scale=None,
    **task_options,
) -> TensorTask:
    """A TensorTask from whole arrays; `split` (0 train, 1 val, 2 test; -1 or absent: unassigned)
    says which example goes where, and unassigned examples are carved by fraction with `split_seed`.
    `output_loc`/`output_scale` (regression): each example's restore (see fpt.tasks.base.Batch)."""
    try:
        inputs, targets = torch.as_tensor(np.asarray(inputs)), torch.as_tensor(np.asarray(targets))
        mask = None if mask is None else torch.as_tensor(np.asarray(mask))
        loc, scale = (None if a is None else torch.as_tensor(np.asarray(a)) for a in (output_loc, output_scale))
    except (TypeError, ValueError) as err:
        raise FPTError(
            f"inputs, targets and mask must be numeric arrays of one shape each ({str(err)[:200]}); pad "
            "variable-length examples to one length and give a mask."
        ) from err
    n = len(inputs) if inputs.dim() else 0
    for name, array in (("targets", targets), ("mask", mask), ("output_loc", loc), ("output_scale", scale)):
        if array is not None and (array.dim() == 0 or len(array) != n):
            raise FPTError(
                f"inputs hold {n} examples and {name} {'a scalar' if array.dim() == 0 else len(array)}; give one "
                f"{'target (or row of targets)' if name == 'targets' else 'mask row'} per example."
            )
    ids = torch.full((n,), -1, dtype=torch.long) if split is None else _as_split_ids(split, n)
    free = torch.nonzero(ids == -1).flatten()
    if len(free):
        for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
                raise FPTError(f"{name} must be a number between 0 and 1 (got {fraction!r}).")
        if val_fraction + test_fraction >= 1:
            raise FPTError("val_fraction + test_fraction must leave examples to train on (sum below 1).")
        order = free[torch.randperm(len(free), generator=torch.Generator().manual_seed(split_seed))]
        n_test, n_val = round(len(free) * test_fraction), round(len(free) * val_fraction)
        ids[order[:n_test]] = 2
        ids[order[n_test : n_test + n_val]] = 1
        ids[order[n_test + n_val :]] = 0
    parts = {}
    for code, name in enumerate(SPLITS):
        index = torch.nonzero(ids == code).flatten()
        if len(index) == 0:
            raise FPTError(
                f"No example falls in the {name} split ({n} examples); give more examples, a `split` array, or "
                "other val_fraction/test_fraction."
            )
        cut = lambda t: None if t is None else t.index_select(0, index)  # noqa: E731, B023 (used at once)
        parts[name] = Batch(
            inputs.index_select(0, index), targets.index_select(0, index), *map(cut, (mask, loc, scale))
        )
    return TensorTask(parts["train"], parts["val"], parts["test"], **task_options)


def read_array_file(path: Path, what: str = "Task data file") -> tuple[dict, str]:
    """The arrays of `path` (.npz without pickles, or .safetensors) and the file's SHA-256."""
    if not_a_file(path):
        raise FPTError(f"Task data file {path} is {not_a_file(path)}, not a file; pass --task-option path=FILE.npz.")
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        hint = "; pass --task-option path=FILE.npz" if what == "Task data file" else ""
        raise FPTError(f"{what} {path} does not exist{hint}.") from err
    except OSError as err:
        raise FPTError(f"Cannot read {what.lower()} {path}: {err}.") from err
    digest = hashlib.sha256(data).hexdigest()
    if path.suffix == ".npz" and not data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        what = "a single .npy array" if data.startswith(b"\x93NUMPY") else f"{len(data)} bytes that are no zip archive"
        raise FPTError(
            f"Task data file {path} is not a .npz archive ({what}): a .npz is the zip of arrays numpy.savez writes; "
            "save inputs and targets with numpy.savez(path, inputs=..., targets=...)."
        )
    try:
        if path.suffix == ".npz":
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        elif path.suffix == ".safetensors":
            from safetensors.torch import load

            arrays = load(data)
        else:
            raise FPTError(
                f"{what} {path}: expected a .npz (numpy.savez) or .safetensors file with arrays "
                "inputs, targets and optionally mask and split."
            )
    except (ValueError, OSError, zipfile.BadZipFile, RuntimeError) as err:
        raise FPTError(
            f"{what} {path} cannot be read as {path.suffix} ({str(err)[:200]}); object (pickled) arrays "
            "are refused: save plain numeric arrays."
        ) from err
    missing = [key for key in ("inputs", "targets") if key not in arrays]
    unknown = sorted(set(arrays) - set(KEYS))
    if missing or unknown:
        raise FPTError(
            f"{what} {path} holds arrays {sorted(arrays)}; it needs inputs and targets (and may hold mask "
            f"and split){'; unknown: ' + ', '.join(unknown) if unknown else ''}."
        )
    return arrays, digest


def arrays(
    path: str,
    sha256: str | None = None,
    task_name: str = "arrays",
    num_classes: int | None = None,
    output_tokens: int = 1,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    outputs: str = "auto",
    head: str = "last",
) -> TensorTask:
    """Classify, or regress on, the examples of a .npz/.safetensors file (see the module docstring).

    `sha256`, when given (runs record it), must match the file; `task_name` names the task in summaries."""
    if not isinstance(path, str) or not path:
        raise FPTError("Task `arrays` needs --task-option path=FILE.npz (or .safetensors).")
    file = Path(path).expanduser().absolute()
    values, digest = read_array_file(file)
    if sha256 is not None and sha256 != digest:
        raise FPTError(
            f"Task data file {file} changed since the run recorded it (SHA-256 {sha256[:12]}..., now "
            f"{digest[:12]}...); restore it, or train a new run on the new data."
        )
    fractions = dict(val_fraction=val_fraction, test_fraction=test_fraction, split_seed=split_seed)
    task = from_arrays(
        values["inputs"],
        values["targets"],
        values.get("mask"),
        values.get("split"),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        split_seed=split_seed,
        num_classes=num_classes,
        output_tokens=output_tokens,
        name=task_name,
        outputs=outputs,
        head=head,
        output_loc=values.get("output_loc"),
        output_scale=values.get("output_scale"),
    )
    task.source = _options(file, digest, task, fractions)
    return task


def _options(path: Path, digest: str, task: TensorTask, fractions: dict) -> dict:
    """The `arrays` options a run records: what rebuilds exactly this task from its file."""
    spec = task.spec
    return (
        dict(
            path=str(path),
            sha256=digest,
            task_name=task.name,
            num_classes=spec.num_classes,
            output_tokens=spec.output_tokens,
        )
        | fractions
        # recorded where the targets alone could not say it (runs from before output kinds classify)
        | ({"outputs": spec.output_kind.name} if spec.num_classes is None else {})
        | ({"head": spec.head} if spec.head != "last" else {})
    )


def save_task(task: TensorTask, directory: Path, write: bool = True) -> dict:
    """Write `task`'s splits to directory/task-data.safetensors (if `write`); return the `arrays` options
    that rebuild it. Every split must have the same tokens and width (TensorTask checks that)."""
    from safetensors.torch import save

    parts = [task.data[split] for split in SPLITS]
    tensors = {
        "inputs": torch.cat([x for x, _, _ in parts]).contiguous(),
        "targets": torch.cat([t for _, t, _ in parts]).contiguous(),
        "split": torch.cat([torch.full((len(x),), code) for code, (x, _, _) in enumerate(parts)]),
    }
    if any(m is not None for _, _, m in parts):
        tensors["mask"] = torch.cat(
            [torch.ones(x.shape[:2], dtype=torch.bool) if m is None else m for x, _, m in parts]
        )
    for index, name in enumerate(RESTORE):  # regression's per-example restore, where the task has one
        kept = [task.restore[split][index] for split in SPLITS if split in task.restore]
        if kept and all(t is not None for t in kept):
            tensors[name] = torch.cat(
                cast(list[torch.Tensor], kept)
            ).contiguous()  # TensorTask: every split has it, or none
    data = save(tensors)
    path = Path(directory).absolute() / DATA_FILE
    if write:
        from fpt.files import atomic_write

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
    return _options(path, hashlib.sha256(data).hexdigest(), task, DEFAULT_FRACTIONS)


HF_SPLITS = {"train": 0, "validation": 1, "val": 1, "test": 2}


def _hf_column(dataset, column: str, split: str) -> np.ndarray:
    if column not in dataset.column_names:
        raise FPTError(f"The {split} dataset has no column {column!r}; its columns: {', '.join(dataset.column_names)}.")
    values = dataset.select_columns([column]).with_format("numpy")[:][column]
    try:
        return np.stack(list(values)) if values.dtype == object else values  # object: one array per example
    except ValueError as err:
        raise FPTError(
            f"Column {column!r} holds examples of different shapes ({err}); pad them to one length and give a "
            "mask column."
        ) from err


def from_hf(
    dataset,
    input_column: str,
    label_column: str,
    mask_column: str | None = None,
    patch_size: int | None = None,
    **options,
) -> TensorTask:
    """A TensorTask from a `datasets.Dataset` (val and test carved by val_fraction/test_fraction) or a
    `DatasetDict` with train, validation (or val) and test splits. `patch_size` cuts image columns
    ((h, w) or channels-last (h, w, c), as HF Image features give them) into patch tokens with
    `image_tokens`; other inputs must already be tokens ((tokens, width) floats or (tokens,) ids)."""
    try:
        import datasets
    except ImportError as err:
        raise FPTError(f"TensorTask.from_hf needs the `datasets` package: {install_hint('hf', 'datasets')}.") from err
    if isinstance(dataset, datasets.DatasetDict):
        codes = sorted(HF_SPLITS.get(name, -1) for name in dataset)
        if codes != [0, 1, 2]:
            raise FPTError(
                f"DatasetDict splits {sorted(dataset)}: expected train, validation (or val) and test; for one "
                "Dataset, pass it alone (e.g. dataset['train']) to carve val and test from it."
            )
        named = [(dataset[name], name, HF_SPLITS[name]) for name in dataset]
    elif isinstance(dataset, datasets.Dataset):
        named = [(dataset, "given", -1)]
    else:
        raise FPTError(f"from_hf takes a datasets.Dataset or DatasetDict, not {type(dataset).__name__}.")
    columns = [c for c in (input_column, label_column, mask_column) if c is not None]
    parts = [[_hf_column(ds, c, name) for c in columns] for ds, name, _ in named]
    inputs, targets, *mask = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
    split = np.concatenate([np.full(len(ds), code) for ds, _, code in named])
    if patch_size is not None:
        from fpt.tasks.images import image_tokens

        return from_arrays(image_tokens(inputs, patch_size), targets, mask[0] if mask else None, split, **options)
    return from_arrays(inputs, targets, mask[0] if mask else None, split, **options)


def task_record(task, run_dir: Path, write: bool = True, given: dict | None = None) -> tuple[str, dict]:
    """(registered task name, options): what config.yaml records so a new process rebuilds `task`.

    A TensorTask held only in memory is recorded as `arrays`, its data saved in `run_dir` (if `write`).
    A registered factory's task that reports no options of its own (a TensorTask it built) is recorded
    with the options it was `given`."""
    from fpt.tasks import task_names

    if isinstance(task, TensorTask) and (task.source or task.name not in task_names()):
        return "arrays", task.rebuild_options(run_dir, write)
    return task.name, task.options() or dict(given or {})

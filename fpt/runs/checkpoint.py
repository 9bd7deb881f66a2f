"""Checkpoints hold only what training changed: the trained parameters (safetensors), plus, for
resumable ones, the optimizer state, step, RNG states and loop counters (state.pt), tied to the
frozen backbone by its fingerprint.

A checkpoint is a directory written under a temporary name, flushed, and renamed into place, so a
crash mid-write leaves the previous one intact. Its manifest (written last) records a SHA-256 of
every file, so a truncated or altered file is refused instead of silently loaded.

Layout: run/checkpoints/step-000100 ... (the last few, resumable) and run/checkpoints/best.
Models and the training loop both read checkpoints, so this module sits below both.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from fpt.errors import FPTError
from fpt.files import write_synced


class TrainedModel(Protocol):
    """What checkpoints, the training loop and the feature cache need of a model, FPT or LSTM: the
    trained parameters (and frozen ones no rebuild gives back) are stored, tied to the frozen rest by a
    fingerprint."""

    config: Any  # FPTConfig or LSTMConfig
    fingerprint: dict[str, Any]
    fast_paths: list[str]  # the rewrites it was built with (fpt.model.fast_paths); none for the LSTM

    def trained_state(self) -> dict[str, torch.Tensor]: ...
    def saved_state(self) -> dict[str, torch.Tensor]: ...
    def group_counts(self) -> dict[str, tuple[int, bool]]: ...
    def freeze_report(self) -> str: ...
    def config_dict(self) -> dict[str, Any]: ...
    def named_parameters(self, *args: Any, **kwargs: Any) -> Iterator[tuple[str, torch.nn.Parameter]]: ...


MODEL_FILE, STATE_FILE, MANIFEST = "model.safetensors", "state.pt", "checkpoint.json"
FINGERPRINT_KEYS = ("backbone", "init", "config_hash", "weights_hash")


def _publish(tmp: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def hash_tensors(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 of named tensors' bytes: a fingerprint of the frozen weights a checkpoint relies on."""
    digest = hashlib.sha256()
    for name, tensor in named:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def step_name(step: int) -> str:
    return f"step-{step:06d}"


def save_checkpoint(directory: Path, model, step: int, extra: dict | None = None, state: dict | None = None) -> Path:
    """Write `directory` (e.g. run/checkpoints/best) with the model's `saved_state()` and optional state."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tensors = {name: t.detach().float().cpu().contiguous() for name, t in model.saved_state().items()}
    files = {MODEL_FILE: write_synced(tmp / MODEL_FILE, save(tensors, metadata={"step": str(step)}))}
    if state is not None:
        buffer = io.BytesIO()
        torch.save({"step": step, **state}, buffer)
        files[STATE_FILE] = write_synced(tmp / STATE_FILE, buffer.getvalue())
    manifest = {"step": step, "fingerprint": model.fingerprint, "extra": extra or {}, "sha256": files}
    write_synced(tmp / MANIFEST, json.dumps(manifest, indent=1, default=str).encode())
    _publish(tmp, directory)
    return directory


def step_checkpoints(checkpoints: Path) -> list[Path]:
    """Published resumable checkpoints, oldest first."""
    found = (
        [p for p in checkpoints.glob("step-*") if p.is_dir() and p.name[5:].isdigit()] if checkpoints.is_dir() else []
    )
    return sorted(found, key=lambda p: int(p.name[5:]))


def resolve(run_dir: Path, which: str) -> Path:
    """`best`, `last` (the newest step checkpoint) or a directory name such as step-000100."""
    checkpoints = Path(run_dir) / "checkpoints"
    if which == "last":
        steps = step_checkpoints(checkpoints)
        if not steps:
            raise FPTError(
                f"{run_dir} has no step checkpoint yet (looked for {checkpoints}/step-*); nothing to resume or load."
            )
        return steps[-1]
    return checkpoints / which


def prune(checkpoints: Path, keep: int) -> None:
    """Delete all but the newest `keep` step checkpoints (`best` is separate and always kept)."""
    for old in step_checkpoints(checkpoints)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _read_verified(directory: Path, name: str, manifest: dict) -> bytes:
    path = directory / name
    try:
        data = path.read_bytes()
    except OSError as err:
        raise FPTError(f"Checkpoint {directory}: cannot read {name} ({err}); the checkpoint is incomplete.") from err
    if hashlib.sha256(data).hexdigest() != manifest["sha256"].get(name):
        raise FPTError(
            f"Checkpoint {directory}: {name} does not match the hash recorded when it was written (the file is "
            f"truncated, damaged or was replaced). Refusing to load it; delete {directory} to fall back to an "
            "older checkpoint."
        )
    return data


def read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    if not path.is_file():
        raise FPTError(
            f"No checkpoint at {directory} (expected {MANIFEST}); the run may not have reached a checkpoint, or "
            "this is not a checkpoint directory."
        )
    try:
        manifest = json.loads(path.read_bytes())
    except (ValueError, OSError) as err:
        raise FPTError(f"Checkpoint {directory}: {MANIFEST} is damaged ({err}); refusing to load it.") from err
    if (
        not isinstance(manifest, dict)
        or not isinstance(manifest.get("sha256"), dict)
        or not isinstance(manifest.get("fingerprint"), dict)
    ):
        raise FPTError(f"Checkpoint {directory}: {MANIFEST} is not a checkpoint manifest written by fpt.")
    return manifest


def read_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The trained tensors and the manifest of `directory`, after checking every hash."""
    manifest = read_manifest(directory)
    data = _read_verified(directory, MODEL_FILE, manifest)
    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as err:
        raise FPTError(f"Checkpoint {directory}/{MODEL_FILE} is not a safetensors file ({err}).") from err
    return tensors, manifest


def read_training_state(directory: Path) -> dict:
    """The optimizer, RNG and loop state of a resumable checkpoint (hash-checked; tensors only, no pickled code)."""
    manifest = read_manifest(directory)
    if STATE_FILE not in manifest["sha256"]:
        raise FPTError(f"Checkpoint {directory} holds parameters only (no {STATE_FILE}); it cannot be resumed from.")
    data = _read_verified(directory, STATE_FILE, manifest)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (
        Exception
    ) as err:  # torch raises several types for bad pickles; the hash matched, so this is a bug or a foreign file
        raise FPTError(f"Checkpoint {directory}/{STATE_FILE} cannot be read ({err}).") from err


def check_fingerprint(manifest: dict, model, where: Path) -> None:
    """Refuse a checkpoint whose frozen rest differs from `model`'s, saying which part differs: the freeze
    policy (recorded since fingerprints hold it), the backbone or init, or the weights and architecture."""
    theirs, ours = manifest["fingerprint"], model.fingerprint
    mismatched = [k for k in FINGERPRINT_KEYS if theirs.get(k) != ours[k]]
    if not mismatched:
        return
    if "train" in theirs and theirs["train"] != ours.get("train"):
        raise FPTError(
            f"Checkpoint {where} was trained with freeze policy {theirs['train']!r}, and the model being loaded "
            f"has {ours.get('train')!r}: another policy trains (and stores) other parameters. The config it is "
            "rebuilt from (a run's config.yaml `model: train:`, a saved model's config.json) was changed after "
            f"training; set the policy back to {theirs['train']!r}."
        )
    if theirs.get("backbone") == ours["backbone"] and theirs.get("init") == ours["init"]:
        raise FPTError(
            f"Checkpoint {where} does not fit backbone {ours['backbone']!r} ({ours['init']}) as it loads now: its "
            f"{' and '.join(k.replace('_hash', '') for k in mismatched)} differ from those the checkpoint was trained "
            "on. The backbone's files changed since (a local directory rewritten, a hub model at another revision), "
            "or the config it is rebuilt from was edited (layers, freeze policy, adapter). Load it with the backbone "
            "files and the config it was trained with."
        )
    raise FPTError(
        f"Checkpoint {where} was made for another backbone: its {', '.join(mismatched)} differ from the model "
        f"being loaded (checkpoint: backbone {theirs.get('backbone')!r}, init {theirs.get('init')!r}; model: "
        f"{ours['backbone']!r}, init {ours['init']!r}). Load it with the backbone, weights and init it was trained with."
    )


def load_trained(model, run_dir: Path, which: str = "best") -> dict:
    """Load a run's trained parameters into `model`, refusing a checkpoint made for other weights.

    Returns the checkpoint's manifest (step, fingerprint, extra)."""
    directory = resolve(Path(run_dir), which)
    tensors, manifest = read_checkpoint(directory)
    check_fingerprint(manifest, model, directory)
    copy_trained(model, tensors, directory)
    return manifest


def copy_trained(model, tensors: dict[str, torch.Tensor], where) -> None:
    """Copy saved tensors into `model`, refusing a set or shapes that another model trains.

    Checkpoints written before frozen new layers were saved lack them; the model keeps its own, which
    `FrozenPretrainedTransformer.rebuilt` draws as training did."""
    expected = model.saved_state()
    older = set(expected) - set(model.trained_state()) - set(tensors)
    if set(tensors) != set(expected) - older:
        raise FPTError(
            f"Checkpoint {where} holds other parameters than the model trains "
            f"(missing {sorted(set(expected) - set(tensors))[:3]}, extra {sorted(set(tensors) - set(expected))[:3]}); "
            "it was trained with another freeze policy or task shape."
        )
    params = dict(model.named_parameters())
    for name, tensor in tensors.items():
        if params[name].shape != tensor.shape:
            raise FPTError(
                f"Checkpoint tensor {name} has shape {tuple(tensor.shape)}, model expects {tuple(params[name].shape)}."
            )
    with torch.no_grad():
        for name, tensor in tensors.items():
            params[name].copy_(tensor)

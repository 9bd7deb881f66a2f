"""Checkpoints hold only what training changed: the trained parameters (safetensors), plus the
optimizer state, step and RNG states, tied to the frozen backbone by its fingerprint.

A checkpoint is a directory written under a temporary name and renamed into place, so a crash
mid-write leaves the previous one intact.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fpt.errors import FPTError

MODEL_FILE, STATE_FILE = "model.safetensors", "state.pt"


def _publish(tmp: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(directory: Path, model, step: int, extra: dict | None = None, state: dict | None = None) -> Path:
    """Write `directory` (e.g. run/checkpoints/best) with the trained tensors and optional state."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    metadata = {"step": str(step), "fingerprint": json.dumps(model.fingerprint), "extra": json.dumps(extra or {})}
    tensors = {name: t.contiguous() for name, t in model.trained_state().items()}
    save_file(tensors, str(tmp / MODEL_FILE), metadata=metadata)
    if state is not None:
        torch.save({"step": step, **state}, tmp / STATE_FILE)
    _publish(tmp, directory)
    return directory


def read_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict]:
    path = directory / MODEL_FILE
    if not path.is_file():
        raise FPTError(f"No checkpoint at {directory} (expected {MODEL_FILE}); the run may not have reached an evaluation.")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise FPTError(f"Checkpoint {path} is damaged or not a safetensors file ({err}).") from err
    meta = {"step": int(metadata.get("step", -1)), "fingerprint": json.loads(metadata.get("fingerprint", "{}")),
            "extra": json.loads(metadata.get("extra", "{}"))}
    return tensors, meta


def load_trained(model, run_dir: Path, which: str = "best") -> dict:
    """Load a run's trained parameters into `model`, refusing a checkpoint made for other weights."""
    tensors, meta = read_checkpoint(Path(run_dir) / "checkpoints" / which)
    mismatched = [k for k in ("backbone", "init", "config_hash", "weights_hash") if meta["fingerprint"].get(k) != model.fingerprint[k]]
    if mismatched:
        raise FPTError(
            f"Checkpoint {run_dir}/checkpoints/{which} was made for another backbone: its {', '.join(mismatched)} "
            f"differ from the model being loaded ({meta['fingerprint'].get('backbone')!r}, init "
            f"{meta['fingerprint'].get('init')!r}). Load it with the backbone and init it was trained with."
        )
    expected = model.trained_state()
    if set(tensors) != set(expected):
        raise FPTError(
            f"Checkpoint {run_dir}/checkpoints/{which} holds other parameters than the model trains "
            f"(missing {sorted(set(expected) - set(tensors))[:3]}, extra {sorted(set(tensors) - set(expected))[:3]})."
        )
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, tensor in tensors.items():
            if params[name].shape != tensor.shape:
                raise FPTError(f"Checkpoint tensor {name} has shape {tuple(tensor.shape)}, model expects {tuple(params[name].shape)}.")
            params[name].copy_(tensor)
    return meta

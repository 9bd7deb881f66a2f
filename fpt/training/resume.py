"""What a resumable checkpoint holds beyond parameters (RNG states, loop counters, the config it
was written under) and the checks that a resume continues the same run.

A resume must be exact: every RNG a training step draws from is saved per process and restored,
and a resume whose config, backbone or status says it would not continue the same run is refused
before anything is written.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import cast

import numpy as np
import torch
from accelerate import Accelerator

from fpt.errors import FPTError
from fpt.runs.checkpoint import load_trained, read_training_state, resolve, step_checkpoints
from fpt.runs.record import read_run_record, read_summary
from fpt.training.config import RunConfig

# Config keys that may differ when a run is resumed: where and how it runs, not what it computes.
# eval_batch_size too: it is lowered to fit the memory at hand (fpt.training.batch_memory), which may change.
RESUME_OVERRIDABLE = (
    "steps",
    "device",
    "log",
    "checkpoint_every",
    "keep_checkpoints",
    "data_dir",
    "compile",
    "eval_batch_size",
)


def rng_state() -> dict:
    """This process's RNG states, as tensors and plain values (loadable with weights_only)."""
    kind, keys, pos, has_gauss, cached = cast(tuple, np.random.get_state(legacy=True))
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def resumed_config(config: RunConfig) -> dict:
    """The config keys a resumed run must share with its checkpoint."""
    return {k: v for k, v in config.to_dict().items() if k not in (*RESUME_OVERRIDABLE, "out")}


def as_recorded_now(saved: dict) -> dict:
    """A checkpoint's recorded config as this fpt records it: keys renamed since (lora_rank & co. became
    method_options) are read as config.yaml's are, and keys added since take their defaults."""
    return resumed_config(RunConfig.from_dict(saved, source="the checkpoint's recorded config"))


def resume_config(run_dir: str | Path, **overrides) -> RunConfig:
    """The config of the run in `run_dir`, with the few keys a resume may change (e.g. more steps)."""
    fixed = sorted(set(overrides) - set(RESUME_OVERRIDABLE))
    if fixed:
        raise FPTError(
            f"--resume continues a run with the config it started with; {', '.join(fixed)} cannot change "
            f"(only {', '.join(RESUME_OVERRIDABLE)} can). Start a new run to train with other settings."
        )
    record = read_run_record(run_dir)
    return RunConfig.from_dict({**record.config, **overrides, "out": str(run_dir)}, source=f"{run_dir}/config.yaml")


def open_for_resume(run_dir: Path, config: RunConfig, model, accelerator: Accelerator, log) -> dict | None:
    """Check the newest checkpoint of `run_dir` against the model and config, load its parameters,
    and return its training state (None: the run has no checkpoint yet and starts from step 0).
    Refuses (FPTError) before anything is written."""
    summary = read_summary(run_dir)
    if not step_checkpoints(run_dir / "checkpoints") and not (summary and summary.get("status") == "diverged"):
        # it stopped before its first checkpoint (a crash, an allocation failure): start it again
        written = RunConfig.from_dict(read_run_record(run_dir).config, source=f"{run_dir}/config.yaml")
        changed = sorted(k for k, v in resumed_config(config).items() if resumed_config(written).get(k) != v)
        if changed:
            raise FPTError(
                f"{run_dir}/config.yaml differs from the config given (changed: {', '.join(changed)}); "
                "resuming would not continue the same run. Restore config.yaml or start a new run."
            )
        log(f"{run_dir} has no step checkpoint yet: starting it from step 0")
        return None
    checkpoint = resolve(run_dir, "last")
    state = read_training_state(checkpoint)
    load_trained(model, run_dir, checkpoint.name)
    if summary and summary.get("status") == "diverged":
        raise FPTError(
            f"{run_dir} diverged (see summary.json); resuming would repeat it exactly. Start a new run with a lower --lr."
        )
    if summary and summary.get("status") == "early-stopped":
        raise FPTError(
            f"{run_dir} stopped early on reaching target_accuracy at step {state['step']}; there is nothing to resume."
        )
    if config.steps < state["step"]:
        raise FPTError(
            f"The newest checkpoint of {run_dir} is step {state['step']}; --steps {config.steps} would end before "
            f"it. Pass --steps {state['step']} or more to continue (`fpt eval {run_dir}` evaluates it as it is)."
        )
    if summary and summary.get("status") == "finished" and state["step"] >= config.steps:
        raise FPTError(
            f"{run_dir} already finished at step {state['step']}; pass a larger --steps to train it further."
        )
    saved, now = as_recorded_now(state["config"]), resumed_config(config)
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if changed:
        raise FPTError(
            f"{run_dir}/config.yaml no longer matches checkpoint {checkpoint.name} (changed: {', '.join(changed)}); "
            "resuming would not continue the same run. Restore config.yaml or start a new run."
        )
    if state["plan"]["processes"] != accelerator.num_processes:
        log(
            f"Note: checkpoint written by {state['plan']['processes']} process(es), resumed on "
            f"{accelerator.num_processes}: the same batches are seen, but dropout streams differ, so the result "
            "is not bit-identical to an uninterrupted run."
        )
    log(f"Resuming {run_dir} from {checkpoint.name} (step {state['step']})")
    return state

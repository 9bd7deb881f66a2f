"""Data parallelism through Accelerate: how a global batch is split over processes and micro-batches.

Every process draws the same global batch from the same seeded stream and keeps its own slice, so
the examples seen per optimizer step do not depend on how many processes run, and resuming is a
matter of replaying the stream. Gradients are averaged over processes (DDP) and over micro-batches
(loss / accumulation), so the update equals one computed on the whole batch at once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
from accelerate import Accelerator

from fpt.errors import FPTError
from fpt.tasks import Batch

TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb"}  # --log name -> package it needs


@dataclass(frozen=True)
class BatchPlan:
    """One optimizer step: `processes` x `accumulation` micro-batches of `micro_batch` examples."""

    batch_size: int  # global examples per optimizer step (the configured batch_size)
    processes: int
    micro_batch: int  # examples per forward pass on one process
    accumulation: int  # micro-batches per process per step

    def to_dict(self) -> dict:
        return asdict(self)


def plan_batches(
    batch_size: int, processes: int, grad_accum: int = 1, micro_batch_size: int | None = None
) -> BatchPlan:
    """Split `batch_size` over processes; accumulate `grad_accum` micro-batches, or as few as keep
    each micro-batch within `micro_batch_size` when that is given."""
    if batch_size % processes:
        raise FPTError(
            f"batch_size {batch_size} cannot be split evenly over {processes} processes; use a multiple of "
            f"{processes} (batch_size is the global batch per optimizer step, shared by all processes)."
        )
    share = batch_size // processes
    if micro_batch_size is None:
        accumulation = grad_accum
    else:
        accumulation = next(a for a in range(1, share + 1) if share % a == 0 and share // a <= micro_batch_size)
    if share % accumulation:
        raise FPTError(
            f"Each of the {processes} processes gets {share} examples per step, which cannot be split into "
            f"grad_accum={accumulation} equal micro-batches; choose batch_size a multiple of processes x grad_accum "
            f"({processes * accumulation}), or set micro_batch_size instead of grad_accum."
        )
    return BatchPlan(batch_size, processes, share // accumulation, accumulation)


def local_micro_batches(batch: Batch, plan: BatchPlan, rank: int) -> list[Batch]:
    """This process's slice of the global `batch`, cut into its micro-batches."""
    if len(batch) != plan.batch_size:
        raise FPTError(
            f"The training stream gave a batch of {len(batch)} examples; expected batch_size {plan.batch_size}."
        )
    share = plan.micro_batch * plan.accumulation
    return list(batch.rows(slice(rank * share, (rank + 1) * share)).chunks(plan.micro_batch))


def process_seed(seed: int, rank: int) -> int:
    """A distinct, reproducible seed for each process's dropout stream."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def resolve_tracker(log: str | None) -> str | None:
    """The tracker metrics also go to: `log` as asked, `none` for none, and by default (None)
    TensorBoard where it is installed (event files under the run directory)."""
    if log is None:
        return "tensorboard" if importlib.util.find_spec(TRACKERS["tensorboard"]) is not None else None
    return None if log == "none" else log


def shared_gpu_backend(device: torch.device) -> dict[str, str]:
    """{"backend": "gloo"} when this machine runs more processes than it has GPUs, else {} (NCCL):
    NCCL refuses two processes on one GPU; gloo all-reduces CUDA tensors through the host, slower
    but correct (benchmarks/gpu_check.sh's 2-process run on a single GPU)."""
    if device.type != "cuda":
        return {}
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return {"backend": "gloo"} if local_processes > torch.cuda.device_count() else {}


def make_accelerator(device: str, log: str | None, run_dir) -> Accelerator:
    """The Accelerator for this process (launched by `accelerate launch`/`torchrun`, or alone)."""
    log = resolve_tracker(log)
    if log is not None and importlib.util.find_spec(TRACKERS[log]) is None:
        raise FPTError(
            f"--log {log} needs the {TRACKERS[log]!r} package, which is not installed: `pip install {TRACKERS[log]}`, "
            "or leave --log out (metrics.jsonl is always written)."
        )
    accelerator = Accelerator(cpu=device == "cpu", log_with=log, project_dir=str(run_dir))
    if device not in ("auto", "cpu") and accelerator.device.type != torch.device(device).type:
        raise FPTError(f"Device {device!r} was asked for but this process runs on {accelerator.device}.")
    return accelerator


@contextlib.contextmanager
def process_group_closed() -> Iterator[None]:
    """Tear down the process group a launched run opened, once every process is done with it.

    Left to interpreter exit, gloo's threads can be destroyed while still running and abort a process
    (`terminate called without an active exception`) after its work finished. On success the processes
    meet at a barrier first; after an error each only closes its own end, since the others may never arrive.
    """
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            if succeeded:
                torch.distributed.barrier()
            torch.distributed.destroy_process_group()

"""Peak memory of one `fpt train` step against fpt.memory's floor (`pass_bytes`), on the CPU.

Builds the training loop's own path (build_model, prepare_training, training_step) on a padded token
task shaped like LRA ListOps (examples shorter than the padded length, so every batch has padding),
takes a first step (optimizer state, kernels), resets the process's peak RSS (VmHWM), takes a second
step and reports what it added to the resident memory, next to the floor the memory guard compares with what is free.
Run one size per process, single-threaded, under an address-space limit:

    (ulimit -v 6000000; OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python benchmarks/attention_memory.py --tokens 512)
"""

from __future__ import annotations

import argparse
import ctypes
import tempfile
from pathlib import Path

import torch

from fpt import RunConfig, TensorTask
from fpt.memory import pass_bytes
from fpt.training.distributed import make_accelerator
from fpt.training.loop import build_model, prepare_training, training_step


def _status(field: str) -> int:
    """A VmRSS/VmHWM figure of this process, in bytes."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--tokens", type=int, default=512, help="padded length (the task's max_length)")
    parser.add_argument("--examples", type=int, default=4, help="batch size (one pass)")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--attn-implementation", default="sdpa", help="sdpa (fpt_sdpa on CPU) or eager")
    args = parser.parse_args()
    torch.manual_seed(0)
    n, length = 4 * args.examples, args.tokens
    inputs = torch.randint(1, 16, (n, length))
    mask = torch.arange(length) < torch.randint(length // 2, length, (n, 1))  # padded, as ListOps batches are
    split = (inputs, torch.randint(0, 10, (n,)), mask)
    task = TensorTask(split, split, split, num_classes=10)
    with tempfile.TemporaryDirectory() as out:
        config = RunConfig(
            backbone=args.backbone,
            batch_size=args.examples,
            precision=args.precision,
            attn_implementation=args.attn_implementation,
            device="cpu",
            out=out,
        )
        model = build_model(config, task)
        trainer = prepare_training(config, task, model, make_accelerator("cpu", None, out))
        batch = next(task.train_batches(args.examples, 0))
        floor = pass_bytes(model, args.examples, length, 1, training=True)
        training_step(trainer, batch)  # the first step also creates optimizer state and loads kernels
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand the first step's freed memory back to the system
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS: the peak from here on
        before = _status("VmRSS")
        training_step(trainer, batch)
        step = _status("VmHWM") - before
    mib = 2**20
    print(
        f"{args.backbone} {args.attn_implementation} {args.precision} {args.examples} x {length} tokens: "
        f"step peak {step / mib:,.0f} MiB above the built model, floor {floor / mib:,.0f} MiB "
        f"(measured / floor {step / floor:.2f}); attention {model.backbone.config._attn_implementation}, "
        f"fast paths {model.fast_paths}"
    )


if __name__ == "__main__":
    main()

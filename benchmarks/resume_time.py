"""How long a resumed run takes to reach its step: the stream cursor against replaying the stream.

Trains Bit Memory (generated data; the paper's 5 strings of 1,000 bits) for `--steps` steps with a
tiny random GPT-2 (2 layers, 32 wide: the run is about the stream, not the model) and a checkpoint at
the end, then resumes it for one more step twice, from copies of the run: as `fpt train --resume`
does (the checkpoint's stream cursor), and by replaying the stream (drawing and dropping every
earlier batch, as resumes did before). "Reach the step" is the time to position the stream and draw
the first new batch; the whole resume (reading the checkpoint, building the model, the step, its
evaluation and the test pass) is timed too.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/resume_time.py \\
        --out benchmarks/results/resume_time.txt
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from fpt import RunConfig, train
from fpt.training import loop, resume_config

QUIET = dict(progress=False, log=lambda *a: None)


def tiny_gpt2(folder: Path) -> str:
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    GPT2Model(
        GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=128, vocab_size=100, bos_token_id=0, eos_token_id=0)
    ).save_pretrained(folder)
    return str(folder)


def timed_resume(run: Path, steps: int, replay: bool) -> tuple[float, float]:
    """(seconds to position the stream and draw its first new batch, seconds of the whole resume)."""
    reached: list[float] = []
    positioned = loop.Trainer.train_batches

    def timing(trainer):
        started = time.perf_counter()
        stream = positioned(trainer)
        first = next(stream)
        reached.append(time.perf_counter() - started)
        yield first
        yield from stream

    original_test = loop.takes_cursor
    loop.Trainer.train_batches = timing  # type: ignore[method-assign]
    loop.takes_cursor = (lambda task: False) if replay else original_test
    try:
        started = time.perf_counter()
        summary = train(resume_config(run, steps=steps + 1), resume=True, **QUIET)
        whole = time.perf_counter() - started
    finally:
        loop.Trainer.train_batches, loop.takes_cursor = positioned, original_test  # type: ignore[method-assign]
    assert summary["resumed_from_step"] == steps and summary["steps"] == steps + 1
    return reached[0], whole


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--out", help="also write the result to this file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fpt-resume-time-"))
    try:
        config = RunConfig(
            task="bit-memory",
            task_options={"val_size": 64, "test_size": 64},
            backbone=tiny_gpt2(work / "gpt2"),
            init="random",
            steps=args.steps,
            eval_every=args.steps,
            batch_size=16,
            device="cpu",
            precision="fp32",
            out=str(work / "run"),
        )
        started = time.perf_counter()
        train(config, **QUIET)
        trained = time.perf_counter() - started
        rows = []
        for how, replay in (("stream cursor (fpt train --resume)", False), ("replaying the stream", True)):
            copy = work / f"run-{int(replay)}"
            shutil.copytree(work / "run", copy)
            rows.append((how, *timed_resume(copy, args.steps, replay)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"Resume of a {args.steps:,}-step Bit Memory run (batch 16, tiny random GPT-2, fp32, one thread) to step "
        f"{args.steps + 1:,}; training the {args.steps:,} steps took {trained:.0f} s.",
        f"machine: {cpu_name()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; "
        f"torch {torch.__version__}; {time.strftime('%Y-%m-%d')}",
        "",
        f"{'resume by':<38}{'reach the step (s)':>20}{'whole resume (s)':>18}",
        *(f"{how:<38}{reach:>20.3f}{whole:>18.1f}" for how, reach, whole in rows),
    ]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

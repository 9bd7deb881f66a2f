"""Training throughput (examples/s) of one process per precision: fp32 vs bf16 (and fp16 on a GPU).

Times `fpt.training.loop.training_step`, the loop's own per-step code, on a fixed stream of batches:
a few warm-up steps, then `--steps` timed steps, repeated `--repeats` times with the precisions
interleaved so that load from other processes hits them alike; reports the median and the range.
On CPU it also reports examples per CPU-second of this process, which other processes sharing the
cores disturb far less than wall-clock time.

    python benchmarks/precision_throughput.py [--backbone minilm] [--task bit-memory] [--batch-size 32]
        [--steps 8] [--repeats 3] [--precisions fp32,bf16] [--device auto] [--record]

--record writes the table to benchmarks/results/precision_throughput_<device>.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers

from fpt import RunConfig, get_task
from fpt.training.distributed import make_accelerator
from fpt.training.loop import build_model, prepare_training, resolve_device, training_step

RESULTS = Path(__file__).parent / "results"


def measure(config: RunConfig, task, steps: int, warmup: int = 2) -> tuple[float, float]:
    """Examples per wall-clock second and per CPU-second over `steps` steps after `warmup` untimed ones."""
    torch.manual_seed(config.seed)
    with tempfile.TemporaryDirectory() as scratch:
        accelerator = make_accelerator(config.device, None, scratch)
        trainer = prepare_training(config, task, build_model(config, task), accelerator)
        batches = task.train_batches(config.batch_size, config.seed)
        sync = torch.cuda.synchronize if accelerator.device.type == "cuda" else (lambda: None)
        for _ in range(warmup):
            training_step(trainer, next(batches))
        sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(steps):
            loss = training_step(trainer, next(batches))
        loss.item()  # waits for the last step
        sync()
        examples = steps * config.batch_size
        return examples / (time.perf_counter() - start), examples / (time.process_time() - cpu_start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--task", default="bit-memory")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    device = resolve_device(args.device)
    task = get_task(args.task)
    precisions = args.precisions.split(",")
    load_before = os.getloadavg()[0]  # other processes' load, which the wall-clock figures absorb
    rates: dict[str, list[tuple[float, float]]] = {p: [] for p in precisions}
    for _ in range(args.repeats):
        for precision in precisions:
            config = RunConfig(
                task=args.task,
                backbone=args.backbone,
                batch_size=args.batch_size,
                precision=precision,
                device=str(device),
                steps=args.steps,
            )
            rates[precision].append(measure(config, task, args.steps))
            print(precision, [f"{r:.2f}" for r in rates[precision][-1]], flush=True)

    name = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.processor() or platform.machine()} CPU"
    )
    lines = [
        f"# Training throughput by precision ({name})",
        "",
        f"Command: `python benchmarks/precision_throughput.py --backbone {args.backbone} --task {args.task} "
        f"--batch-size {args.batch_size} --steps {args.steps} --repeats {args.repeats} --precisions {args.precisions} "
        f"--device {args.device}`",
        "",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d %H:%M %Z')}; "
        f"task {args.task} ({task.spec.max_length} tokens), batch {args.batch_size}, fpt freeze policy; "
        f"load average at start: {load_before:.1f} on {os.cpu_count()} cores.",
        "",
        "| precision | examples/s, median (min-max) | vs first | examples per CPU-second, median (min-max) | vs first |",
        "|---|---|---|---|---|",
    ]
    medians = {p: [statistics.median(r[i] for r in rates[p]) for i in (0, 1)] for p in precisions}
    for precision in precisions:
        cells = []
        for i in (0, 1):
            values = [r[i] for r in rates[precision]]
            cells += [
                f"{medians[precision][i]:.2f} ({min(values):.2f}-{max(values):.2f})",
                f"{medians[precision][i] / medians[precisions[0]][i]:.2f}x",
            ]
        lines.append(f"| {precision} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.record:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"precision_throughput_{device.type}.md"
        path.write_text(table)
        print(f"Written: {path}")


if __name__ == "__main__":
    main()

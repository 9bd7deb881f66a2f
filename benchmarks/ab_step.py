"""A/B of training steps by process CPU time, for deciding on a fast path while the machine is loaded.

`fpt bench` times wall clock, which is what a user waits for and what a quiet machine records. On a
shared machine other processes take the CPU away mid-step and wall time swings by tens of percent,
hiding a 3% change. Here each path's steps are timed by the CPU time this process spent (all its
threads), interleaved in blocks of `--block` steps, and reported as median and best block. Run it
with one thread (OMP_NUM_THREADS=1): with more, time spent spinning in OpenMP counts too.

Paths: the default one (fpt.bench.default_path: what `fpt train` runs), the default one with a fast
path reversed (one per `--without`), and the authors' recipe (fpt.bench.reference_path).

    OMP_NUM_THREADS=1 python benchmarks/ab_step.py minilm-bit-xor --precision fp32 --without packed-frozen-matrices
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace

from fpt.bench import CASES, BenchSettings, Path_, default_path, reference_path
from fpt.model.dropout import use_plain_dropout
from fpt.model.packed import unpack_frozen_matrices
from fpt.model.unread import unwrap_last_block
from fpt.tasks import get_task


def _plain_dropout(model) -> bool:
    applied = "cpu-dropout" in model.fast_paths
    use_plain_dropout(model)
    return applied


REVERSE = {  # fast path -> undo it on a built model; returns whether it was applied
    "packed-frozen-matrices": unpack_frozen_matrices,
    "cpu-dropout": _plain_dropout,
    "last-block-read-positions-only": lambda model: unwrap_last_block(model.backbone),
}


def _timed_block(path: Path_, steps: int) -> float:
    path.sync()
    start = time.process_time()
    for _ in range(steps):
        path.step()
    path.sync()
    return (time.process_time() - start) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--train", help="freeze policy instead of the case's own (e.g. output)")
    parser.add_argument("--without", action="append", default=[], choices=sorted(REVERSE))
    parser.add_argument("--steps", type=int, default=40, help="timed steps per path")
    parser.add_argument("--block", type=int, default=2, help="steps per timed block")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()

    case = CASES[args.case] if args.train is None else replace(CASES[args.case], train=args.train)
    settings = BenchSettings(precision=args.precision, device="cpu")
    task = get_task(case.task, **case.task_options)
    with tempfile.TemporaryDirectory() as workdir:
        paths = {"default": default_path(case, settings, task, workdir)}
        for name in args.without:
            path = default_path(case, settings, task, workdir)
            if not REVERSE[name](path.module):
                parser.error(f"{name} is not applied to {case.name}: nothing to compare")
            paths[f"without {name}"] = path
        if not args.no_reference:
            paths["reference"] = reference_path(case, settings, task)
        for path in paths.values():
            for _ in range(args.warmup):
                path.step()
        seconds: dict[str, list[float]] = {name: [] for name in paths}
        for index in range(max(1, args.steps // args.block)):
            for name in list(paths) if index % 2 == 0 else list(paths)[::-1]:
                seconds[name].append(_timed_block(paths[name], args.block))
    default = statistics.median(seconds["default"])
    print(f"{case.name} (train {case.train}), precision {args.precision}: CPU ms per step, median / best block")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(
            f"  {name:40s} {median * 1e3:8.2f} / {min(values) * 1e3:8.2f}  {case.batch_size / median:7.1f} "
            f"samples per CPU second; the default is {median / default:.3f}x as fast"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training steps/s and peak memory of `gemma3-270m` beside `minilm` and random-init `gpt2`, one run.

Uses `fpt bench`'s machinery (fpt.bench.run_bench) on three Bit XOR cases with the default training
path (what `fpt train` runs: bf16 autocast on a CPU with native bf16), no reference path; peak memory
is each case's own child process (VmHWM: Python, torch and the model included).

    python benchmarks/gemma_speed.py [--cases ...] [--steps 10] [--rounds 2] [--warmup 2] [--out FILE.json]

--out writes the JSON and the table beside it (.txt); the Bit XOR cases run by default.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fpt import bench

CASES = {
    case.name: case
    for case in (
        bench.BenchCase("minilm-bit-xor", "bit-xor", "minilm", eval_examples=256),
        bench.BenchCase("gpt2-random-bit-xor", "bit-xor", "gpt2", "random", eval_examples=256),
        bench.BenchCase("gemma3-270m-bit-xor", "bit-xor", "gemma3-270m", eval_examples=256),
        bench.BenchCase("minilm-fashion-mnist", "fashion-mnist", "minilm", eval_examples=64),
        bench.BenchCase("gemma3-270m-fashion-mnist", "fashion-mnist", "gemma3-270m", eval_examples=64),
    )
}
BIT_XOR = ["minilm-bit-xor", "gpt2-random-bit-xor", "gemma3-270m-bit-xor"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--cases", nargs="+", default=BIT_XOR, choices=sorted(CASES))
    parser.add_argument("--out", type=Path, help="e.g. benchmarks/results/gemma3_270m_speed.json")
    args = parser.parse_args()
    settings = bench.BenchSettings(steps=args.steps, rounds=args.rounds, warmup=args.warmup, reference="off")
    document = bench.run_bench(args.cases, settings, cases=CASES)
    print(bench.table(document))
    if args.out:
        bench.write(document, args.out)


if __name__ == "__main__":
    main()

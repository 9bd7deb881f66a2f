"""Fashion-MNIST, MiniLM frozen: language-pretrained vs random init, 3 epochs each, side by side.

3 epochs of the 58,000 training images (2,000 are validation) at batch 16 is 10,875 steps; each run
ends with a full pass over the 10,000 official test images with its best-on-validation checkpoint.
Writes benchmarks/results/fashion_mnist_pretrained_vs_random.md; a killed run resumes (--resume).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/fashion_mnist_pretrained_vs_random.py [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN_EXAMPLES, BATCH = 58_000, 16


def run(init: str, steps: int, device: str, out: Path) -> dict:
    if (out / "summary.json").exists():
        return json.loads((out / "summary.json").read_text())
    command = [sys.executable, "-m", "fpt.cli", "train", "--quiet"]
    if (out / "config.yaml").exists():  # interrupted earlier: continue from its newest checkpoint
        command += ["--resume", str(out)]
    else:
        command += [
            "--task",
            "fashion-mnist",
            "--backbone",
            "minilm",
            "--init",
            init,
            "--steps",
            str(steps),
            "--batch-size",
            str(BATCH),
            "--eval-every",
            "1000",
            "--seed",
            "0",
            "--device",
            device,
            "--out",
            str(out),
        ]
    subprocess.run(command, check=True, cwd=ROOT)
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    steps = math.ceil(args.epochs * TRAIN_EXAMPLES / BATCH)
    rows = {
        init: run(init, steps, args.device, ROOT / "runs" / f"fashion-mnist-{init}-{steps}")
        for init in ("pretrained", "random")
    }
    lines = [
        f"# Fashion-MNIST, frozen MiniLM, {args.epochs:g} epochs ({steps} steps of {BATCH}), seed 0",
        "",
        "| init | test accuracy | best val accuracy | best step | test split | wall seconds |",
        "|---|---|---|---|---|---|",
    ]
    for init, s in rows.items():
        lines.append(
            f"| {init} | {s['test_accuracy']:.4f} | {s['best_val_accuracy']:.4f} | {s['best_step']} | "
            f"{s['test_split']} ({s['test_examples']}) | {s['wall_seconds']} |"
        )
    text = "\n".join(lines) + "\n"
    (ROOT / "benchmarks" / "results" / "fashion_mnist_pretrained_vs_random.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

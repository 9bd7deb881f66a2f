"""Start-up time of the `fpt` command: commands that need no model must not load torch/transformers.

Runs each command `--repeat` times in a fresh process (the installed `fpt` script beside this
Python, importing the checkout this file is in) and reports min / median / max wall seconds. For
contrast it also times the import the package did eagerly before (`import fpt.training`).

    HF_HUB_OFFLINE=1 /work/quiet .venv/bin/python benchmarks/startup_time.py --out benchmarks/results/startup_time.txt
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FPT = [str(Path(sys.executable).with_name("fpt"))]
COMMANDS = {
    "fpt --help": [*FPT, "--help"],
    "fpt --version": [*FPT, "--version"],
    "fpt train --help": [*FPT, "train", "--help"],
    "fpt data list": [*FPT, "data", "list"],
    "python -c 'import fpt'": [sys.executable, "-c", "import fpt"],
    "python -c 'import fpt.training.loop' (torch, transformers, accelerate: what import fpt loaded before)": [
        sys.executable,
        "-c",
        "import fpt.training.loop",
    ],
}


def time_command(argv: list[str], repeat: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    subprocess.run(argv, env=env, check=True, capture_output=True)  # warm the file cache once
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    lines = [
        f"# {' '.join(['python', 'benchmarks/startup_time.py', *sys.argv[1:]])}",
        f"# {cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f} at start; {args.repeat} runs each, wall seconds",
        f"{'command':<92} {'min':>6} {'median':>7} {'max':>6}",
    ]
    for name, argv in COMMANDS.items():
        times = time_command(argv, args.repeat)
        lines.append(f"{name:<92} {min(times):6.3f} {statistics.median(times):7.3f} {max(times):6.3f}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()

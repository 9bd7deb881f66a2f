"""Every command in README.md's fenced ```bash blocks runs, in README order, in a temporary folder.

Commands are shrunk so the whole README takes a few minutes on a CPU: `fpt train` gets 2 steps and
small validation/test sets (flags appended; argparse keeps the last), sweeps and reproductions
`--steps 2 --max-runs 1`, benchmarks one short round, ListOps is generated at 64/16/16 examples.
Files a reader would already have are stood in for (SETUP), offline, with the data root in the
temporary folder. The commands that cannot run here are listed in SKIP, each with its reason.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fpt.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"

SKIP = {  # command prefix -> why it is not executed here
    "make demo": "sets up .venv and runs benchmarks/bit_xor_pretrained_vs_random.py (minutes, by design)",
    "make test": "this test suite itself",
    "fpt data download": "needs a network",
    "accelerate launch": "a multi-GPU / multi-machine launcher",
    "torchrun": "a multi-process launcher (the 2-process CPU run is tested in tests/test_distributed.py)",
    "fpt bench --out": "times three full-size cases (over 3 minutes shrunk); the minilm-bit-xor bench line runs",
    "fpt bench gpt2-bit-memory --compile": "torch.compile: minutes of compilation before the first timed step",
    "fpt train --task listops --steps 1000": "~2000-token examples: over 8 minutes even shrunk; the max_length=512 line runs",
    "python benchmarks/feature_cache_epoch.py": "a benchmark of full Fashion-MNIST epochs (minutes)",
}
SMALL = ["--task-option", "val_size=16", "--task-option", "test_size=16"]
TASK_SHRINK = {  # task -> options appended to its `fpt train` command
    "bit-xor": SMALL,
    "bit-memory": [*SMALL, "--task-option", "n_bits=100"],  # 12 tokens instead of 120
    "fashion-mnist": SMALL,
    "mnist": SMALL,
    "listops": ["--batch-size", "4"],  # the generated data is 64/16/16 examples
}
PLACEHOLDERS = {"RUN_DIR": "runs/mem-all"}  # a run an earlier command made


def readme_commands() -> list[str]:
    """Each command of the README's bash blocks: continuation lines joined, comments and blanks dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


def skip_reason(command: str) -> str | None:
    return next((why for prefix, why in SKIP.items() if command.startswith(prefix)), None)


def _option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


def shrink(argv: list[str]) -> list[str]:
    """The command with the README's sizes cut down (flags appended win over earlier ones)."""
    argv = [PLACEHOLDERS.get(word, word) for word in argv]
    if argv[:2] == ["fpt", "train"] and "--resume" in argv:
        return argv + (["--steps", "4"] if "--steps" in argv else [])  # past the 2 steps it trained
    if argv[:2] == ["fpt", "train"]:
        return argv + ["--steps", "2", "--eval-every", "2", *TASK_SHRINK.get(_option(argv, "--task") or "", [])]
    if argv[:2] in (["fpt", "sweep"], ["fpt", "reproduce"]):
        return argv + ["--steps", "2", "--max-runs", "1"]
    if argv[:2] == ["fpt", "bench"]:
        return argv + ["--rounds", "1", "--steps", "1", "--warmup", "0", "--no-memory"]
    if argv[:4] == ["fpt", "data", "generate", "listops"]:
        return argv + ["--train", "64", "--val", "16", "--test", "16"]
    return argv


def setup(argv: list[str], folder: Path) -> None:
    """Stand-ins for what a reader has before a command: their own files, or what a skipped step made."""
    if argv[:3] == ["fpt", "train", "--config"]:
        (folder / argv[3]).write_text("task: bit-xor\ntask_options: {val_size: 16, test_size: 16}\nbatch_size: 8\n")
    elif argv[:2] == ["fpt", "predict"]:  # inputs shaped for the run's task (shrunk Bit Memory: 12 tokens of 50)
        np.save(folder / argv[argv.index("--input") + 1], np.sign(np.random.default_rng(0).normal(size=(4, 12, 50))))
    elif argv[:2] == ["fpt", "train"] and "--resume" in argv and "--steps" not in argv:
        (folder / argv[3] / "summary.json").unlink()  # as if killed after its last checkpoint, before the summary
    elif _option(argv, "--task") == "fashion-mnist":  # what `fpt data download` would have put in the data root
        from tests.datafiles import write_mnist

        write_mnist(folder / "data" / "fashion-mnist", n_train=2100, n_test=40)  # more than `fpt bench`'s 2000 val


def run(argv: list[str], folder: Path) -> str | None:
    """Run one command; None when it succeeded, else what went wrong."""
    if argv[0] == "fpt":
        try:
            code = main(argv[1:])
        except SystemExit as exit:  # argparse: unknown flags
            code = exit.code
        return None if code == 0 else f"exit status {code}"
    if argv[0] == "python":
        done = subprocess.run([sys.executable, *argv[1:]], cwd=folder, capture_output=True, text=True, timeout=600)
        return None if done.returncode == 0 else f"exit status {done.returncode}: {done.stderr[-1500:]}"
    return f"no runner for {argv[0]!r}: add one here, or a SKIP entry with the reason"


def test_every_skip_names_a_readme_command():
    commands = readme_commands()
    assert all(any(c.startswith(prefix) for c in commands) for prefix in SKIP), "stale SKIP entries"
    assert len(SKIP) <= len(commands) // 3  # most of the README runs


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FPT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(sys, "path", [str(README.parent), *sys.path])  # tests.datafiles
    failures, ran = [], 0
    for command in readme_commands():
        if skip_reason(command):
            continue
        argv = shrink(shlex.split(command))
        setup(argv, tmp_path)
        started = time.time()
        problem = run(argv, tmp_path)
        print(f"README command ({time.time() - started:.0f} s): {shlex.join(argv)}", file=sys.stderr, flush=True)
        ran += 1
        if problem:
            failures.append(f"{command}\n    ran as: {shlex.join(argv)}\n    {problem}")
    assert not failures, "README commands that failed:\n" + "\n".join(failures)
    assert ran >= 20
    assert os.path.isfile(tmp_path / "runs" / "mem" / "summary.json")

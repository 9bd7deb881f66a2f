"""Every command of README.md and docs/ runs, in document order, in a temporary folder: the fenced
```bash blocks, the ```python blocks, and the commands quoted inline that a reader would type (INLINE).

Commands are shrunk so the documents take minutes on a CPU: `fpt train` gets 2 steps and small
validation/test sets (flags appended; argparse keeps the last), sweeps and reproductions `--steps 2
--max-runs 1`, benchmarks one short round, ListOps is generated at 64/16/16 examples, the scripts in
benchmarks/ run from a copy in the temporary folder with `fpt` shrunk the same way, and Python blocks
get smaller numbers by exact substitutions (SHRINK_PYTHON; each must apply, so a changed document
cannot silently run at full size). Files a reader would already have are stood in for (`setup`),
offline, with the data root in the temporary folder. The commands that cannot run here are in SKIP,
each with its reason.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from fpt.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REPRODUCTION = ROOT / "docs" / "reproduction.md"
TUNING = ROOT / "docs" / "tuning.md"

SKIP = {  # command prefix -> why it is not executed here
    "make demo": "sets up .venv and runs benchmarks/bit_xor_pretrained_vs_random.py (minutes, by design)",
    "make test": "this test suite itself",
    "fpt data download": "needs a network",
    "accelerate launch": "a multi-GPU / multi-machine launcher",
    "torchrun": "a multi-process launcher (the 2-process CPU run is tested in tests/test_distributed.py)",
    "fpt bench --out": "times three full-size cases (over 3 minutes shrunk); the minilm-bit-xor bench line runs",
    "fpt bench gpt2-bit-memory --compile": "torch.compile: minutes of compilation before the first timed step",
    "fpt train --task listops --steps 1000": "~2000-token examples: over 8 minutes even shrunk; the max_length=512 line runs",
    "benchmarks/reproduce_cpu.sh bit-memory": "the bit-xor line runs the same script; other tasks only take longer",
    "ray start": "starts a Ray node; tests/test_sweep_backends.py runs a real cluster of them on loopback",
    "fpt reproduce main --budget paper --backend ray": "needs a Ray cluster with GPUs (the backend's test runs one)",
    "fpt reproduce methods --budget paper --backend ray": "needs a Ray cluster with GPUs (as above)",
    "fpt reproduce init --budget paper --backend submitit": "needs SLURM (tests/test_sweep_backends.py: its local executor and a stand-in sbatch)",
    "fpt sweep example --out runs/sweep-ray --backend ray": "a local Ray instance in this process; tests/test_sweep_backends.py starts one",
}
# Commands quoted inline in the documents' prose, run after the blocks (the runs they name exist then).
INLINE = [
    "fpt list backbones",
    "fpt list methods",
    "fpt train --task bit-memory --help-task",
    "fpt eval runs/mine",
    "fpt train --resume runs/mine",
]
SMALL = ["--task-option", "val_size=16", "--task-option", "test_size=16"]
TASK_SHRINK = {  # task -> options appended to its `fpt train` command
    "bit-xor": SMALL,
    "bit-memory": [*SMALL, "--task-option", "n_bits=100"],  # 12 tokens instead of 120
    "fashion-mnist": SMALL,
    "mnist": SMALL,
    "listops": ["--batch-size", "4"],  # the generated data is 64/16/16 examples
}
QUICK = ["--steps", "2", "--max-runs", "1"]
PLACEHOLDERS = {"RUN_DIR": "runs/mem-all"}  # a run an earlier command made
TASK_OPTIONS = 'task_options={"val_size": 16, "test_size": 16}, '
SHRINK_PYTHON = {  # document -> (text, replacement) pairs, each of which must occur in its Python blocks
    README: [("steps=300", "steps=2, eval_every=2")],
    TUNING: [
        (
            'RunConfig(task="bit-xor", steps=600, eval_every=50',
            f'RunConfig(task="bit-xor", {TASK_OPTIONS}steps=4, eval_every=2',
        ),
        ("n_trials=20", "n_trials=2"),
        ("n_warmup_steps=100", "n_warmup_steps=0"),
    ],
}


def bash_commands(document: Path) -> list[str]:
    """Each command of a document's bash blocks: continuation lines joined, comments and blanks dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", document.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


def python_blocks(document: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", document.read_text(), re.S)


def skip_reason(command: str) -> str | None:
    return next((why for prefix, why in SKIP.items() if command.startswith(prefix)), None)


def _option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


def shrink(argv: list[str]) -> list[str]:
    """The command with the document's sizes cut down (flags appended win over earlier ones)."""
    argv = [PLACEHOLDERS.get(word, word) for word in argv]
    if argv[:2] == ["fpt", "train"] and "--help-task" in argv:
        return argv
    if argv[:2] == ["fpt", "train"] and "--resume" in argv:
        return argv + (["--steps", "4"] if "--steps" in argv else [])  # past the 2 steps it trained
    if argv[:2] == ["fpt", "train"]:
        return argv + ["--steps", "2", "--eval-every", "2", *TASK_SHRINK.get(_option(argv, "--task") or "", [])]
    if argv[:2] in (["fpt", "sweep"], ["fpt", "reproduce"]):
        return argv + QUICK
    if argv[:2] == ["fpt", "bench"]:
        return argv + ["--rounds", "1", "--steps", "1", "--warmup", "0", "--no-memory"]
    if argv[:4] == ["fpt", "data", "generate", "listops"]:
        return argv + ["--train", "64", "--val", "16", "--test", "16"]
    if argv[:2] == ["python", "benchmarks/feature_cache_epoch.py"]:
        return argv + ["--examples", "32"]
    return argv


def setup(argv: list[str], folder: Path) -> None:
    """Stand-ins for what a reader has before a command: their own files, or what a skipped step made."""
    if argv[:3] == ["fpt", "train", "--config"]:
        (folder / argv[3]).write_text("task: bit-xor\ntask_options: {val_size: 16, test_size: 16}\nbatch_size: 8\n")
    elif argv[:2] == ["fpt", "predict"]:  # inputs shaped for the run's task (shrunk Bit Memory: 12 tokens of 50)
        np.save(folder / argv[argv.index("--input") + 1], np.sign(np.random.default_rng(0).normal(size=(4, 12, 50))))
    elif argv[:2] == ["fpt", "train"] and "--resume" in argv and "--steps" not in argv:
        (folder / argv[3] / "summary.json").unlink()  # as if killed after its last checkpoint, before the summary
    elif _option(argv, "--task") == "fashion-mnist" or "feature_cache_epoch" in " ".join(argv):
        from tests.datafiles import write_mnist  # what `fpt data download` would have put in the data root

        if not (folder / "data" / "fashion-mnist").is_dir():
            write_mnist(folder / "data" / "fashion-mnist", n_train=2100, n_test=40)  # over `fpt bench`'s 2000 val
    elif argv[0].startswith("benchmarks/") and argv[0].endswith(".sh"):
        _shrunk_scripts(folder)
    if argv[:2] == ["fpt", "attention"] and _option(argv, "--out"):
        (folder / str(_option(argv, "--out"))).parent.mkdir(parents=True, exist_ok=True)  # the repo has the folder


def _shrunk_scripts(folder: Path) -> None:
    """The scripts, copied where they write (they `cd` to their parent's parent), with an `fpt` that shrinks."""
    shim = folder / "fpt-shrunk"
    if shim.is_file():
        return
    (folder / "benchmarks").mkdir(exist_ok=True)
    for script in (ROOT / "benchmarks").glob("*.sh"):
        shutil.copy(script, folder / "benchmarks" / script.name)
    shim.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = reproduce ]; then exec {shlex.quote(sys.executable)} -m fpt.cli "$@" {" ".join(QUICK)}; fi\n'
        f'exec {shlex.quote(sys.executable)} -m fpt.cli "$@"\n'
    )
    shim.chmod(0o755)


def run(argv: list[str], folder: Path) -> str | None:
    """Run one command; None when it succeeded, else what went wrong."""
    if argv[0] == "fpt":
        try:
            code = main(argv[1:])
        except SystemExit as exit:  # argparse: unknown flags, --help
            code = exit.code
        return None if code in (0, None) else f"exit status {code}"
    if argv[0] == "python" or argv[0].startswith("benchmarks/"):
        script = (
            argv[1:3] if argv[1] in ("-c", "-m") else [str(ROOT / argv[1])]
        )  # the repo's scripts, run from the folder
        command = [sys.executable, *script, *argv[len(script) + 1 :]] if argv[0] == "python" else ["bash", *argv]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "FPT": str(folder / "fpt-shrunk"), "PYTHON": sys.executable}
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
        return None if done.returncode == 0 else f"exit status {done.returncode}: {(done.stdout + done.stderr)[-1500:]}"
    return f"no runner for {argv[0]!r}: add one here, or a SKIP entry with the reason"


def run_commands(commands: list[str], folder: Path) -> tuple[list[str], int]:
    failures, ran = [], 0
    for command in commands:
        if skip_reason(command):
            continue
        argv = shrink(shlex.split(command))
        setup(argv, folder)
        started = time.time()
        problem = run(argv, folder)
        print(f"doc command ({time.time() - started:.0f} s): {shlex.join(argv)}", file=sys.stderr, flush=True)
        ran += 1
        if problem:
            failures.append(f"{command}\n    ran as: {shlex.join(argv)}\n    {problem}")
    return failures, ran


def shrunk_python(document: Path) -> list[str]:
    """The document's Python blocks with SHRINK_PYTHON's substitutions, each checked to apply."""
    blocks = python_blocks(document)
    for old, new in SHRINK_PYTHON.get(document, []):
        assert any(old in block for block in blocks), f"{document.name} no longer holds {old!r}: update SHRINK_PYTHON"
        blocks = [block.replace(old, new) for block in blocks]
    return blocks


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A reader's working folder: offline, the data root inside it, tests.datafiles importable."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FPT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(sys, "path", [str(ROOT), *sys.path])
    return tmp_path


def test_every_import_quoted_in_prose_works_and_register_backbone_has_one():
    """A reader copies the imports the documents quote inline; where `register_backbone` lives was not said."""
    quoted = [
        statement
        for document in (README, REPRODUCTION, TUNING, ROOT / "CONTRIBUTING.md")
        for statement in re.findall(r"`((?:from fpt[\w.]* import [\w, ]+)|(?:import fpt[\w.]*))`", document.read_text())
    ]
    assert any("register_backbone" in statement for statement in quoted), quoted
    for statement in quoted:
        exec(statement, {})


def test_every_skip_names_a_document_command():
    commands = bash_commands(README) + bash_commands(REPRODUCTION)
    assert all(any(c.startswith(prefix) for c in commands) for prefix in SKIP), "stale SKIP entries"
    assert sum(map(bool, map(skip_reason, commands))) <= len(commands) // 2  # most of them run
    prose = " ".join((README.read_text() + REPRODUCTION.read_text() + TUNING.read_text()).split())
    assert all(f"`{command}`" in prose for command in INLINE), "an INLINE command is no longer in the documents"


@pytest.mark.slow
def test_every_readme_command_runs(folder):
    failures, ran = run_commands(bash_commands(README), folder)
    namespace: dict = {}
    for block in shrunk_python(README):
        exec(compile(block, "README.md", "exec"), namespace)
    assert (folder / "fpt-mine" / "model.safetensors").is_file() and namespace["again"] is not None
    more, ran_inline = run_commands(INLINE, folder)
    assert not failures + more, "README commands that failed:\n" + "\n".join(failures + more)
    assert ran >= 20 and ran_inline == len(INLINE)
    assert os.path.isfile(folder / "runs" / "mem" / "summary.json")


@pytest.mark.slow
def test_every_reproduction_doc_command_runs(folder):
    failures, ran = run_commands(bash_commands(REPRODUCTION), folder)
    assert not failures, "docs/reproduction.md commands that failed:\n" + "\n".join(failures)
    assert ran >= 3
    kept = folder / "benchmarks" / "results"  # the scripts' own copies: tables and every run's evidence
    assert (kept / "reproduce-main-cpu" / "runs").is_dir() and (kept / "methods-cpu" / "results.md").is_file()


@pytest.mark.slow
def test_the_tuning_examples_run(folder, monkeypatch):
    """docs/tuning.md's Optuna study (2 trials) and its Ray Tune trainable, with `ray.tune` stood in for."""
    pytest.importorskip("optuna", reason="the test extra installs optuna")
    reported: list[dict] = []
    ray = types.ModuleType("ray")
    ray.tune = types.SimpleNamespace(report=reported.append)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray", ray)
    namespace: dict = {}
    for block in shrunk_python(TUNING):
        exec(compile(block, "docs/tuning.md", "exec"), namespace)
    assert len(namespace["study"].trials) == 2 and (folder / "runs" / "optuna" / "1" / "summary.json").is_file()
    namespace["trainable"]({"lr": 1e-3})
    assert [r["step"] for r in reported] == [2, 4] and all("val_accuracy" in r for r in reported)

"""Exact resume: a run killed (SIGKILL) or stopped (SIGTERM) at an arbitrary step and resumed ends
bit-identical to an uninterrupted run of the same seed; damaged or foreign checkpoints are refused."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from fpt import FPTError, train
from fpt.cli import main
from fpt.runs.checkpoint import read_checkpoint, resolve, step_checkpoints
from fpt.training import resume_config

QUIET = dict(progress=False, log=lambda *a: None)
ROOT = Path(__file__).resolve().parents[1]
# Dropout stays on (0.1 in the input layer and the tiny GPT-2), so restoring the RNG state matters.
FLAGS = [
    "--task",
    "bit-xor",
    "--task-option",
    "val_size=32",
    "--task-option",
    "test_size=32",
    "--steps",
    "16",
    "--eval-every",
    "2",
    "--checkpoint-every",
    "5",
    "--batch-size",
    "8",
    "--device",
    "cpu",
    "--precision",
    "fp32",
    "--quiet",
]
WALL_CLOCK = ("elapsed_s", "samples_per_s")  # timings differ between any two runs; everything else must match


def _metrics(run) -> list[dict]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in WALL_CLOCK} for line in lines]


def _fpt(*args) -> list[str]:
    return [sys.executable, "-m", "fpt.cli", "train", *args]


def _env() -> dict:
    # The same thread count as this process, so CPU kernels reduce in the same order.
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "HF_HUB_OFFLINE": "1"}


def _start_and_stop(args, out, at_step: int, sig: int) -> subprocess.CompletedProcess:
    """Start a training subprocess that waits once metrics.jsonl reaches `at_step` (tests/stall.py), send it
    `sig` there, then let it go on (a SIGKILL has ended it; a SIGTERM makes it stop at that step)."""
    release = out.parent / f"{out.name}.release"
    env = {**_env(), "FPT_STALL_AT": str(at_step), "FPT_STALL_RELEASE": str(release), "PYTHONPATH": str(ROOT)}
    launch = "import sys, tests.stall; from fpt.cli import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", launch, "train", *args]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600  # a bound on a broken run, not a timing the outcome depends on
    while time.time() < deadline and proc.poll() is None:
        metrics = out / "metrics.jsonl"
        if metrics.is_file() and any(
            json.loads(line)["step"] >= at_step for line in metrics.read_text().splitlines() if line.endswith("}")
        ):
            proc.send_signal(sig)
            break
        time.sleep(0.02)
    release.touch()
    stdout, stderr = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_gpt2):
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("resume") / "reference"
    result = subprocess.run(
        _fpt(*FLAGS, "--backbone", tiny_gpt2, "--out", str(out)),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return out


def _assert_same_run(resumed, reference) -> None:
    assert _metrics(resumed) == _metrics(reference)
    for which in ("last", "best"):
        ours, theirs = read_checkpoint(resolve(resumed, which))[0], read_checkpoint(resolve(reference, which))[0]
        assert ours.keys() == theirs.keys()
        for name in ours:
            assert torch.equal(ours[name], theirs[name]), f"{which}: {name} differs"
    summary, expected = (json.loads((run / "summary.json").read_text()) for run in (resumed, reference))
    scores = [key for key in expected if key.startswith(("best_val_", "test_"))]  # the task's own metrics
    assert "test_metric" in scores or "test_accuracy" in scores
    for key in ("steps", "status", "best_step", *scores):
        assert summary[key] == expected[key], key


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path, tiny_gpt2, reference):
    out = tmp_path / "killed"
    killed = _start_and_stop([*FLAGS, "--backbone", tiny_gpt2, "--out", str(out)], out, at_step=8, sig=signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL and not (out / "summary.json").exists(), "the run ended before the kill"
    last = int(resolve(out, "last").name[5:])
    written = [line["step"] for line in _metrics(out)]
    assert (last, written) == (5, [2, 4, 6, 8])  # killed at step 8: its checkpoint (every 5) is step 5
    summary = train(resume_config(out), resume=True, **QUIET)
    assert summary["resumed_from_step"] == 5 and summary["steps"] == 16
    assert [line["step"] for line in _metrics(out)] == list(range(2, 17, 2))  # 6 and 8 replaced, not repeated
    _assert_same_run(out, reference)
    assert len(step_checkpoints(out / "checkpoints")) == 2  # keep_checkpoints


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_resume_matches(tmp_path, tiny_gpt2, reference):
    out = tmp_path / "stopped"
    stopped = _start_and_stop([*FLAGS, "--backbone", tiny_gpt2, "--out", str(out)], out, at_step=3, sig=signal.SIGTERM)
    assert stopped.returncode == 2, stopped.stderr
    assert "Interrupted at step" in stopped.stderr and "--resume" in stopped.stderr
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"
    step = int(resolve(out, "last").name[5:])
    assert step == 4 and f"Interrupted at step {step} " in stopped.stderr  # stopped, and its checkpoint, at step 4
    train(resume_config(out), resume=True, **QUIET)
    _assert_same_run(out, reference)


def _snapshot(run) -> dict:
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture
def finished(tmp_path, tiny_gpt2):
    """A run made like `reference` but in this process: the refusals need a real finished run, not a
    second interpreter (which costs more than the run itself)."""
    out = tmp_path / "finished"
    assert main(["train", *FLAGS, "--backbone", tiny_gpt2, "--out", str(out)]) == 0
    return out


def test_damaged_or_foreign_checkpoints_are_refused_and_nothing_changes(tmp_path, finished, tiny_llama):
    run = tmp_path / "copy"
    shutil.copytree(finished, run)
    summary = json.loads((run / "summary.json").read_text())
    summary["status"] = "interrupted"  # let resume get past the "already finished" check
    (run / "summary.json").write_text(json.dumps(summary))
    last = resolve(run, "last") / "model.safetensors"

    def refused(match: str, config=None) -> None:
        before = _snapshot(run)
        with pytest.raises(FPTError, match=match):
            train(config or resume_config(run), resume=True, **QUIET)
        assert _snapshot(run) == before

    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    refused("model.safetensors does not match the hash")
    last.write_bytes(data)

    values = yaml.safe_load((run / "config.yaml").read_text())
    values["lr"] = 0.5
    (run / "config.yaml").write_text(yaml.safe_dump(values))
    refused("no longer matches checkpoint .*changed: lr")
    values["lr"] = 1e-3
    values["backbone"] = tiny_llama  # other weights: the fingerprint check names what differs
    values["model"]["backbone"] = tiny_llama
    (run / "config.yaml").write_text(yaml.safe_dump(values))
    refused("made for another backbone: its backbone, config_hash, weights_hash differ")

    with pytest.raises(FPTError, match="lr cannot change"):
        resume_config(finished, lr=0.1)
    with pytest.raises(FPTError, match="already finished"):
        train(resume_config(finished), resume=True, **QUIET)

"""The run guarantees hold for a LoRA run: kill + resume ends bit-identical to an uninterrupted run,
and two gloo processes train to the parameters of one (patterns of test_resume / test_distributed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from fpt import RunConfig, train
from fpt.runs.checkpoint import read_checkpoint, resolve
from fpt.training import resume_config
from tests.test_distributed import ARGS
from tests.test_resume import FLAGS, QUIET, _assert_same_run, _env, _fpt, _start_and_stop

LORA = ["--train", "lora", "--method-option", "rank=4"]


@pytest.mark.slow
def test_lora_sigkill_then_resume_is_bit_identical(tmp_path, tiny_gpt2):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    args = [*FLAGS, *LORA, "--backbone", tiny_gpt2]
    result = subprocess.run(
        _fpt(*args, "--out", str(reference)), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    stopped = _start_and_stop([*args, "--out", str(killed)], killed, at_step=8, sig=signal.SIGKILL)
    assert stopped.returncode == -signal.SIGKILL and not (killed / "summary.json").exists()
    train(resume_config(killed), resume=True, **QUIET)
    _assert_same_run(killed, reference)
    tensors = read_checkpoint(resolve(killed, "best"))[0]
    assert any("lora_A" in n for n in tensors) and all(t.shape[0] == 4 for n, t in tensors.items() if "lora_A" in n)


@pytest.mark.slow
def test_lora_two_gloo_processes_match_one_process(tmp_path, quiet_gpt2):
    settings = {**ARGS, "backbone": quiet_gpt2, "train": "lora"}
    one, two = tmp_path / "one", tmp_path / "two"
    train(RunConfig(**settings, out=str(one)), **QUIET)
    flags = [arg for k, v in settings["task_options"].items() for arg in ("--task-option", f"{k}={v}")]
    flags += [a for k, v in settings.items() if k != "task_options" for a in (f"--{k.replace('_', '-')}", str(v))]
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
        + ["-m", "fpt.cli", "train", *flags, "--out", str(two), "--quiet"],
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for which in ("last", "best"):
        ours, theirs = (read_checkpoint(resolve(run, which))[0] for run in (one, two))
        assert ours.keys() == theirs.keys() and any("lora_B" in n for n in ours)
        for name in ours:
            torch.testing.assert_close(theirs[name], ours[name], rtol=1e-5, atol=1e-6)
    summaries = [json.loads((run / "summary.json").read_text()) for run in (one, two)]
    assert summaries[0]["test_accuracy"] == summaries[1]["test_accuracy"]
    assert summaries[0]["trainable_params"] == summaries[1]["trainable_params"]

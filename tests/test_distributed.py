"""Data parallelism: two CPU processes (gloo, launched by torchrun) train to the same parameters as one
process with the same global batch and seed, and evaluation counts every example exactly once."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from fpt import FPTError, RunConfig, train
from fpt.runs.checkpoint import read_checkpoint, resolve
from fpt.training.distributed import plan_batches, process_group_closed

# 30 examples in batches of 8: 4 batches, so the two processes score 2 batches each, one of them short.
ARGS = dict(
    task="bit-xor",
    task_options={"val_size": 30, "test_size": 30},
    steps=6,
    eval_every=3,
    batch_size=8,
    grad_accum=2,
    dropout=0.0,
    eval_batch_size=8,
    device="cpu",
    precision="fp32",
)


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path, quiet_gpt2):
    one = tmp_path / "one"
    train(RunConfig(**ARGS, backbone=quiet_gpt2, out=str(one)), progress=False, log=lambda *a: None)

    two = tmp_path / "two"
    flags = []
    for key, value in {**ARGS, "backbone": quiet_gpt2, "out": str(two)}.items():
        if key == "task_options":
            flags += [arg for k, v in value.items() for arg in ("--task-option", f"{k}={v}")]
        else:
            flags += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--standalone",
            "-m",
            "fpt.cli",
            "train",
            *flags,
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count('"status"') == 1  # only the main process reports

    layout = yaml.safe_load((two / "config.yaml").read_text())["distributed"]
    assert layout == {"batch_size": 8, "processes": 2, "micro_batch": 2, "accumulation": 2, "precision": "fp32"}
    summaries = [json.loads((run / "summary.json").read_text()) for run in (one, two)]
    assert (summaries[0]["processes"], summaries[1]["processes"]) == (1, 2)
    assert summaries[0]["test_examples"] == summaries[1]["test_examples"] == 30
    for which in ("last", "best"):
        ours, theirs = (read_checkpoint(resolve(run, which))[0] for run in (one, two))
        for name in ours:
            torch.testing.assert_close(theirs[name], ours[name], rtol=1e-5, atol=1e-6)
    lines = [[json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (one, two)]
    assert [line["step"] for line in lines[1]] == [3, 6]
    for a, b in zip(*lines, strict=False):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_accuracy"] == b["val_accuracy"]
    assert summaries[0]["test_accuracy"] == summaries[1]["test_accuracy"]


def test_batch_plan_splits_the_global_batch():
    assert plan_batches(64, 4).to_dict() == {"batch_size": 64, "processes": 4, "micro_batch": 16, "accumulation": 1}
    assert plan_batches(64, 2, grad_accum=4).micro_batch == 8
    plan = plan_batches(96, 2, micro_batch_size=20)  # 48 per process -> 3 micro-batches of 16
    assert (plan.micro_batch, plan.accumulation) == (16, 3)
    assert plan_batches(16, 1, micro_batch_size=64).accumulation == 1
    with pytest.raises(FPTError, match="cannot be split evenly over 3 processes"):
        plan_batches(16, 3)
    with pytest.raises(FPTError, match="grad_accum=3"):
        plan_batches(16, 2, grad_accum=3)


def test_processes_sharing_a_gpu_use_gloo(monkeypatch):
    from fpt.training.distributed import shared_gpu_backend

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert shared_gpu_backend(torch.device("cuda")) == {"backend": "gloo"}  # NCCL refuses two ranks on one GPU
    assert shared_gpu_backend(torch.device("cpu")) == {}
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert shared_gpu_backend(torch.device("cuda")) == {}


@pytest.mark.parametrize("fails", [False, True])
def test_a_launched_run_closes_its_process_group(tmp_path, fails):
    """The CLI's train closes the gloo group itself (success or error) rather than leave its threads to exit."""
    store = torch.distributed.FileStore(str(tmp_path / "store"), 1)
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        with pytest.raises(FPTError) if fails else contextlib.nullcontext(), process_group_closed():
            torch.distributed.barrier()
            if fails:
                raise FPTError("a rank failed")
    finally:
        closed = not torch.distributed.is_initialized()
        if not closed:
            torch.distributed.destroy_process_group()
    assert closed

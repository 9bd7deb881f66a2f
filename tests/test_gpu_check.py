"""benchmarks/gpu_check.sh --dry-run: every step of the GPU check runs on the CPU with tiny sizes and
the summary holds every row (bench runs, DDP pair, Fashion-MNIST pair)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.datafiles import write_mnist

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_result(tmp_path, tiny_gpt2, tiny_bert):
    write_mnist(tmp_path / "data" / "fashion-mnist", n_train=2064, n_test=20)  # the bench case holds out 2000
    out = tmp_path / "gpu"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
        "FPT_DATA": str(tmp_path / "data"),
        "FPT_GPU_CHECK_GPT2": tiny_gpt2,
        "FPT_GPU_CHECK_MINILM": tiny_bert,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,  # ~10 processes: about 4 minutes on the shared 2-core CPU at load 8, over 10 at load 12
    )
    log = (out / "gpu_check.log").read_text() if (out / "gpu_check.log").is_file() else ""
    assert result.returncode == 0, (result.stderr + log)[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    rows = {(r["run"], r["case"]) for r in summary["bench"]}
    for run in ("bf16", "fp32"):
        assert {(f"{run}_gpt2", "gpt2-bit-memory"), (f"{run}_minilm", "minilm-bit-xor")} <= rows
        assert (f"{run}_minilm", "minilm-fashion-mnist") in rows
    batch64 = [r for r in summary["bench"] if r["run"] == "bf16_batch64_gpt2"]
    assert batch64 and batch64[0]["batch"] == 64
    assert summary["bf16_matmul_gflops"] > 0 and all(r["mfu_vs_bf16_matmul"] > 0 for r in summary["bench"])
    one, two = summary["ddp"]["1_process"], summary["ddp"]["2_process"]
    assert (one["processes"], two["processes"]) == (1, 2)
    assert all(0 < run["last_train_loss"] < 10 and run["test_accuracy"] is not None for run in (one, two))
    assert all(f["steps"] == 2 and f["test_accuracy"] is not None for f in summary["fashion_mnist"].values())
    tested = [json.loads((out / "runs" / f"fashion-mnist-{p}" / "summary.json").read_text()) for p in ("bf16", "fp32")]
    assert [s["test_examples"] for s in tested] == [16, 16]  # not the whole test split (10,000 with the real data)
    assert "gpu_check [0:" in result.stderr and "--dry-run: about 10 processes" in result.stderr  # never silent
    assert "MFU" in (out / "summary.md").read_text()

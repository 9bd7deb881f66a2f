"""benchmarks/speed_record.sh --dry-run: both precisions' bench records of every case, the CPU's model and
flags, and the log of what ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fpt.bench import CASES
from tests.datafiles import write_mnist

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_speed_record_dry_run_writes_both_records(tmp_path, tiny_gpt2):
    write_mnist(tmp_path / "data" / "fashion-mnist", n_train=2064, n_test=20)  # the bench case holds out 2000
    out = tmp_path / "speed"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
        "FPT_DATA": str(tmp_path / "data"),
        "FPT_SPEED_BACKBONE": tiny_gpt2,
        "HF_HUB_OFFLINE": "1",
    }
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "speed_record.sh"), "--dry-run", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    log = (out / "speed_record.log").read_text() if (out / "speed_record.log").is_file() else ""
    assert result.returncode == 0, (result.stderr + log)[-4000:]
    for name, dtype in (("default", None), ("fp32", "fp32")):
        record = json.loads((out / f"record_{name}.json").read_text())
        assert [r["case"] for r in record["results"]] == list(CASES)
        assert all(r["speedup_vs_reference"] > 0 and r["fraction_of_matmul_peak"] > 0 for r in record["results"])
        assert dtype is None or {r["dtype"] for r in record["results"]} == {dtype}
        assert record["machine"]["cpu_flags"] and record["machine"]["OMP_NUM_THREADS"] == "1"
        assert "speedup" in (out / f"record_{name}.txt").read_text()
    assert "$ fpt bench --rounds 1" in log and "# commit " in log
    assert (out / "lscpu.txt").read_text().strip()


def _record(commit: str, precision: str) -> dict[str, dict]:
    path = ROOT / "benchmarks" / "results" / "speed" / f"record-{commit}" / f"record_{precision}.json"
    return {result["case"]: result for result in json.loads(path.read_text())["results"]}


def test_the_native_kernels_table_is_its_records():
    """Every row of the native-kernels table in benchmarks/results/speed/README.md, rebuilt from its record."""
    readme = (ROOT / "benchmarks" / "results" / "speed" / "README.md").read_text()
    section = readme[readme.index("## Native CPU kernels") :]
    rows = [
        line.split("|")[1:-1]
        for line in section.splitlines()
        if line.startswith("| gpt2") or line.startswith("| minilm")
    ]
    assert len(rows) == 6
    for case_commit, bf16, bf16_speedup, bf16_peak, fp32, fp32_speedup, fp32_peak in rows:
        case, commit = case_commit.split()[0].rstrip(","), case_commit.split()[1]
        for precision, samples, speedup, peak in (
            ("default", bf16, bf16_speedup, bf16_peak),
            ("fp32", fp32, fp32_speedup, fp32_peak),
        ):
            result = _record(commit, precision)[case]
            assert samples.strip() == f"{result['samples_per_s']:.2f} / {result['reference_samples_per_s']:.2f}"
            assert speedup.split()[0] == f"{result['speedup_vs_reference']:.2f}x"
            assert peak.split()[0].rstrip("*") == f"{result['fraction_of_matmul_peak']:.0%}"

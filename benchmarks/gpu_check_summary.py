"""One table from benchmarks/gpu_check.sh's results: throughput, MFU, memory, DDP and accuracy pairs.

MFU here is a step's achieved matrix-multiply FLOP rate over the bf16 matmul rate measured on the
same device in the same runs (the median over every bf16 bench round), whatever the path's own dtype,
so bf16 and fp32 rows are on one scale. Usage: python benchmarks/gpu_check_summary.py OUT_DIR
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def _bench_rows(out: Path) -> tuple[list[dict], float | None]:
    documents = {
        path.stem.removeprefix("bench_"): json.loads(path.read_text()) for path in sorted(out.glob("bench_*.json"))
    }
    bf16_rates = [
        rate
        for document in documents.values()
        for record in document["results"]
        if record.get("dtype") == "bf16"
        for rate in record.get("matmul_gflops_rounds", [])
    ]
    bf16_peak = statistics.median(bf16_rates) if bf16_rates else None
    rows = []
    for run, document in documents.items():
        for record in document["results"]:
            rows.append(
                {
                    "run": run,
                    "case": record["case"],
                    "dtype": record.get("dtype"),
                    "compile": record.get("compile"),
                    "batch": record["batch_size"],
                    "samples_per_s": record.get("samples_per_s"),
                    "reference_samples_per_s": record.get("reference_samples_per_s"),
                    "achieved_gflops": record.get("achieved_gflops"),
                    "mfu_vs_bf16_matmul": record["achieved_gflops"] / bf16_peak
                    if bf16_peak and "achieved_gflops" in record
                    else None,
                    "peak_memory_mb": record.get("peak_memory_mb"),
                }
            )
    return rows, bf16_peak


def _summary(run_dir: Path) -> dict | None:
    path = run_dir / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _last_loss(run_dir: Path) -> float | None:
    path = run_dir / "metrics.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return lines[-1]["train_loss"] if lines else None


def summarize(out: Path) -> dict:
    rows, bf16_peak = _bench_rows(out)
    ddp = {n: _summary(out / "runs" / f"ddp-{n}") for n in (1, 2)}
    fashion = {p: _summary(out / "runs" / f"fashion-mnist-{p}") for p in ("bf16", "fp32")}
    return {
        "bf16_matmul_gflops": bf16_peak,
        "bench": rows,
        "ddp": {
            f"{n}_process": {
                "processes": s and s.get("processes"),
                "test_accuracy": s and s.get("test_accuracy"),
                "last_train_loss": _last_loss(out / "runs" / f"ddp-{n}"),
            }
            for n, s in ddp.items()
        },
        "fashion_mnist": {
            p: {
                "steps": s and s.get("steps"),
                "test_accuracy": s and s.get("test_accuracy"),
                "wall_seconds": s and s.get("wall_seconds"),
            }
            for p, s in fashion.items()
        },
    }


def _cell(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def markdown(summary: dict) -> str:
    peak = summary["bf16_matmul_gflops"]
    lines = [
        f"bf16 matmul rate measured in these runs: {_cell(peak, '{:.0f}')} GFLOP/s",
        "",
        "| run | case | dtype | compile | batch | samples/s | reference samples/s | GFLOP/s | MFU (of bf16 matmul) | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["bench"]:
        lines.append(
            f"| {r['run']} | {r['case']} | {r['dtype']} | {r['compile']} | {r['batch']} | {_cell(r['samples_per_s'], '{:.2f}')} "
            f"| {_cell(r['reference_samples_per_s'], '{:.2f}')} | {_cell(r['achieved_gflops'], '{:.1f}')} "
            f"| {_cell(r['mfu_vs_bf16_matmul'], '{:.1%}')} | {_cell(r['peak_memory_mb'], '{:.0f}')} |"
        )
    lines += ["", "| DDP | processes | test accuracy | last train loss |", "|---|---|---|---|"]
    for name, d in summary["ddp"].items():
        lines.append(
            f"| {name} | {_cell(d['processes'], '{}')} | {_cell(d['test_accuracy'], '{:.4f}')} | {_cell(d['last_train_loss'], '{:.6f}')} |"
        )
    lines += ["", "| Fashion-MNIST | steps | test accuracy | wall s |", "|---|---|---|---|"]
    for name, f in summary["fashion_mnist"].items():
        lines.append(
            f"| {name} | {_cell(f['steps'], '{}')} | {_cell(f['test_accuracy'], '{:.4f}')} | {_cell(f['wall_seconds'], '{:.0f}')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    out = Path(sys.argv[1])
    summary = summarize(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

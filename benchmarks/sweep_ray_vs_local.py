"""A 12-run grid (Bit XOR, `minilm`, 3 inits x 4 seeds, 40 steps) swept twice: locally with `--jobs 1`
and on a Ray cluster started on this machine (a head with no CPUs and one worker node with 2, on
loopback; tests/raycluster.py). Records both wall times and every run's test accuracy side by side,
which must be equal run for run (the same seeds and settings train the same way wherever they run).

    .venv/bin/python benchmarks/sweep_ray_vs_local.py --record benchmarks/results/sweep_ray_vs_local
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.raycluster import LocalRayCluster, kill_session  # noqa: E402

# One lr per condition: a grid with several would grow past 12 runs where a choice falls on its edge
# (fpt.experiments.lr_grid), and the two sweeps are to run the same 12.
GRID = {
    "name": "bit-xor, minilm, 3 inits x 4 seeds",
    "tasks": ["bit-xor"],
    "seeds": [0, 1, 2, 3],
    "lrs": [1e-3],
    "inits": ["pretrained", "random", "stats"],
    "settings": {"steps": 40, "eval_every": 20, "batch_size": 16, "task_options": {"val_size": 200, "test_size": 500}},
}
WORKER_CPUS = 2


def timed_sweep(args: list[str], log: Path, env: dict) -> float:
    started = time.monotonic()
    with open(log, "w") as out:
        sweep = subprocess.Popen(
            [sys.executable, "-m", "fpt.cli", "sweep", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            code = sweep.wait(timeout=7200)
        finally:
            kill_session(sweep.pid)
    if code != 0:
        raise SystemExit(f"sweep failed ({code}):\n{log.read_text()[-3000:]}")
    return time.monotonic() - started


def per_run(out: Path) -> dict[str, dict]:
    runs = {}
    for path in sorted((out / "runs").rglob("summary.json")):
        summary = json.loads(path.read_text())
        runs[str(path.parent.relative_to(out / "runs"))] = {
            k: summary.get(k) for k in ("status", "test_accuracy", "best_val_accuracy", "precision", "wall_seconds")
        }
    return runs


def table(out: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "run_dirs"} for row in csv.DictReader(open(out / "results.csv"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", help="write RECORD.json and RECORD.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sweep-ray-vs-local-"))
    grid = work / "grid.yaml"
    grid.write_text(yaml.safe_dump(GRID, sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    load_before = os.getloadavg()

    local_s = timed_sweep([str(grid), "--out", str(work / "local"), "--jobs", "1"], work / "local.log", env)
    cluster = LocalRayCluster()
    try:
        started = time.monotonic()
        cluster.start_head(cpus=0)
        cluster.add_worker("worker", cpus=WORKER_CPUS)
        cluster_s = time.monotonic() - started
        ray_args = [str(grid), "--out", str(work / "ray"), "--backend", "ray", "--address", cluster.address]
        ray_s = timed_sweep(ray_args, work / "ray.log", {**cluster.env, **env})
    finally:
        cluster.close()
    load_after = os.getloadavg()

    local, remote = per_run(work / "local"), per_run(work / "ray")
    same = sorted(local) == sorted(remote) and all(
        local[k]["test_accuracy"] == remote[k]["test_accuracy"] for k in local
    )
    import ray
    import torch

    from fpt.bench import machine

    result = {
        "grid": GRID,
        "runs": len(local),
        "local_jobs1_wall_s": round(local_s, 1),
        "ray_wall_s": round(ray_s, 1),
        "ray_cluster_start_s": round(cluster_s, 1),
        "ray_cluster": f"head (0 CPUs) + 1 worker node ({WORKER_CPUS} CPUs) on 127.0.0.2, 1 CPU per run",
        "same_test_accuracy_every_run": same,
        "same_results_table": table(work / "local") == table(work / "ray"),
        "per_run": {k: {"local": local[k], "ray": remote.get(k)} for k in local},
        "machine": {
            **{k: v for k, v in machine().items() if k != "cpu_flags"},
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
            "note": "shared with other jobs and loaded while measured (see loadavg): wall times are indicative only",
        },
        "versions": {"torch": torch.__version__, "ray": ray.__version__, "python": platform.python_version()},
        "threads_per_run": 1,
    }
    print(json.dumps(result, indent=1))
    if args.record:
        record = Path(args.record)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        record.with_suffix(".md").write_text(markdown(result))
    if not same:
        raise SystemExit("test accuracies differ between the local and the Ray sweep")


def markdown(result: dict) -> str:
    lines = [
        "# A 12-run grid: local `--jobs 1` vs a Ray cluster on this machine",
        "",
        "`.venv/bin/python benchmarks/sweep_ray_vs_local.py --record benchmarks/results/sweep_ray_vs_local`",
        "",
        f"Grid: {result['grid']['name']}; {result['grid']['settings']}. Ray: {result['ray_cluster']}. "
        f"Every run: 1 training thread; precision as each summary says (below).",
        "",
        "| sweep | wall time (s) |",
        "|---|---|",
        f"| local, `--jobs 1` (one run at a time) | {result['local_jobs1_wall_s']} |",
        f"| Ray, `--backend ray --address ...` ({WORKER_CPUS} runs at a time) | {result['ray_wall_s']} "
        f"(+ {result['ray_cluster_start_s']} s to start the cluster) |",
        "",
        f"Same test accuracy, run for run: **{result['same_test_accuracy_every_run']}**; same results table "
        f"(results.csv less its run directories): **{result['same_results_table']}**.",
        "",
        f"Not like for like in speed: the Ray worker trains {WORKER_CPUS} runs at once on the 2 cores, the local "
        "sweep one (as `--jobs 1` does); the point is that the cluster path gives the same numbers, and what it "
        "costs (the cluster's start, Ray's scheduling) beside the runs themselves. Per-run times below are each "
        "run's own `wall_seconds` (training and evaluation, not the process start-up).",
        "",
        f"Machine: {result['machine']['cpu_count']} cores ({result['machine']['cpu']}), "
        f"load average {result['machine']['loadavg_before']} before and {result['machine']['loadavg_after']} after: "
        f"{result['machine']['note']}. Versions: {result['versions']}.",
        "",
        "| run | local test acc | Ray test acc | precision | local run wall (s) | Ray run wall (s) |",
        "|---|---|---|---|---|---|",
    ]
    for key, both in result["per_run"].items():
        local, ray = both["local"], both["ray"] or {}
        lines.append(
            f"| {key} | {local['test_accuracy']} | {ray.get('test_accuracy')} | {local['precision']} | "
            f"{local.get('wall_seconds')} | {ray.get('wall_seconds')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""Sweeps on other backends: a real Ray cluster on this machine (a worker killed mid-run), submitit's
local executor (a run warned of its time limit checkpoints, is requeued and resumes), a stand-in SLURM
for the array job's submission, and the grid's progress lines and log."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fpt import FPTError
from fpt.experiments.backends import make_backend
from fpt.experiments.progress import GridProgress, Pace, running_marker
from fpt.experiments.sweep import ATTEMPT, expand, run_status, sweep
from tests.raycluster import LocalRayCluster, kill_session

ROOT = Path(__file__).resolve().parents[1]
TINY_XOR = {"n_bits": 2, "val_size": 16, "test_size": 16}
PRETRAINED = "bit-xor/pretrained/lr0.001"
on_linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Ray clusters and SLURM run on Linux")


def _grid(backbone: str, **settings) -> dict:
    """Two seeds of a tiny run."""
    return {
        "name": "tiny",
        "tasks": ["bit-xor"],
        "seeds": [0, 1],
        "lrs": [1e-3],
        "paper_table": "init",
        "settings": {"backbone": backbone, "steps": 4, "eval_every": 2, "batch_size": 4, "task_options": TINY_XOR}
        | settings,
        "conditions": [{"label": "pretrained"}],
    }


def _table(out: Path) -> list[dict]:
    """results.csv without the run directories (which name the sweep's own --out)."""
    return [{k: v for k, v in row.items() if k != "run_dirs"} for row in csv.DictReader(open(out / "results.csv"))]


def _summaries(out: Path) -> dict[str, dict]:
    return {
        str(path.parent.relative_to(out / "runs")): json.loads(path.read_text())
        for path in (out / "runs").rglob("summary.json")
    }


def _wait_for(condition, what: str, timeout: float = 600.0, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert process is None or process.poll() is None, f"the sweep ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.1)
    return found


def _sweep_process(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "fpt.cli", "sweep", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


# -- options and errors ------------------------------------------------------------------------------
def test_backend_options_are_checked_and_a_missing_extra_says_what_to_install(monkeypatch):
    with pytest.raises(FPTError, match="--partition does not apply to --backend ray"):
        make_backend("ray", partition="gpu")
    with pytest.raises(FPTError, match="--address does not apply to --backend local"):
        make_backend("local", address="head:6379")
    with pytest.raises(FPTError, match="--jobs must be a positive integer"):
        make_backend("ray", jobs=0)
    with pytest.raises(FPTError, match="not a Ray cluster's address"):
        make_backend("ray", address="1:2:x")
    with pytest.raises(FPTError, match="whole number of GPUs"):
        make_backend("submitit", gpus_per_run=0.5)
    with pytest.raises(FPTError, match="not a SLURM time"):
        make_backend("submitit", time="4h")
    assert make_backend("submitit", time="1-02:30").time_min == 26 * 60 + 30
    assert (
        make_backend("submitit", time="90").time_min == 90 and make_backend("submitit", time="2:00:30").time_min == 121
    )
    for module, backend, extra in (("ray", "ray", "ray"), ("submitit", "submitit", "slurm")):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
        with pytest.raises(FPTError, match=rf"pip install -e '\.\[{extra}\]'") as err:
            make_backend(backend).run([], lambda run: {}, Path("unused"), None)  # type: ignore[arg-type]
        assert "frozen-pretrained-transformers[" not in str(err.value)  # not on PyPI under that name


def test_slurm_submission_without_slurm_says_where_to_submit_from(tmp_path, monkeypatch):
    pytest.importorskip("submitit", reason="the slurm extra: pip install -e '.[slurm]'")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    grid = expand({"tasks": ["bit-xor"], "lrs": [1e-3]})
    progress = GridProgress(tmp_path, 1, Pace(1, None), lambda line: None)
    with pytest.raises(FPTError, match="SLURM did not take the array job.*--submitit-cluster local"):
        make_backend("submitit").run(grid.runs, lambda run: {}, tmp_path, progress)


def test_cli_refuses_list_with_a_backend_and_malformed_slurm_options(tmp_path, capsys):
    from fpt.cli import main

    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"tasks": ["bit-xor"], "lrs": [1e-3]}))
    assert main(["sweep", str(grid), "--out", str(tmp_path / "sw"), "--list", "--backend", "ray"]) == 2
    assert "give no --backend" in capsys.readouterr().err
    args = ["sweep", str(grid), "--out", str(tmp_path / "sw"), "--backend", "submitit", "--slurm", "account"]
    assert main(args) == 2
    assert "--slurm expects KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "sw").exists()


def test_reproduce_hands_its_grid_to_the_backend_its_flags_name(tmp_path, monkeypatch, capsys):
    """`fpt reproduce ... --backend` reaches the grid's runs with its options (the sweep's path is tested on a
    real cluster below; reproduce shares the flags and must not drop them on the way)."""
    from fpt.cli import main
    from fpt.experiments import reproduce as module

    given = []

    def fake_run_grid(grid, out, jobs=1, log=print, backend=None):  # every run "fails" at once
        given.append(backend)
        Path(out).mkdir(parents=True, exist_ok=True)  # as run_grid makes it
        return [{"key": r.key, "status": "failed", "error": "not run in this test"} for r in grid.runs]

    monkeypatch.setattr(module, "run_grid", fake_run_grid)
    common = ["reproduce", "main", "--budget", "smoke", "--tasks", "bit-xor", "--seeds", "1", "--jobs", "3"]
    ray = ["--backend", "ray", "--address", "127.0.0.9:6379", "--gpus-per-run", "0.5", "--cpus-per-run", "2"]
    slurm = ["--backend", "submitit", "--partition", "gpu", "--time", "2:00:00", "--slurm", "account=proj"]
    for name, flags in (("ray", ray), ("slurm", slurm)):
        main([*common, *flags, "--out", str(tmp_path / name)])
        assert (tmp_path / name / "results.md").is_file(), capsys.readouterr().err
    (on_ray, on_slurm) = given
    assert (type(on_ray).__name__, on_ray.address, on_ray.gpus, on_ray.threads, on_ray.jobs) == (
        "RayBackend",
        "127.0.0.9:6379",
        0.5,
        2,
        3,
    )
    assert (on_slurm.partition, on_slurm.time_min, on_slurm.slurm, on_slurm.jobs) == (
        "gpu",
        120,
        {"account": "proj"},
        3,
    )


def test_progress_counts_runs_and_writes_plain_lines_to_the_sweep_log(tmp_path, monkeypatch):
    """Starts seen in the runs' markers (where the backend trains elsewhere), a line per ended run with the
    time left and the counts, a heartbeat while none ends; the same lines time-stamped in sweep.log."""
    from fpt.experiments import progress as module

    lines: list[str] = []
    progress = GridProgress(tmp_path, total=4, pace=Pace(runs=3, jobs=None), log=lines.append)
    progress.found("a", {"status": "finished"})
    progress.dispatched(["b", "c", "d"])
    (tmp_path / "logs").mkdir()
    running_marker(tmp_path, "b").write_text("host 1\n")
    progress.tick()  # the markers are read every STARTS_EVERY_S
    assert lines == []
    monkeypatch.setattr(module, "STARTS_EVERY_S", 0.0)
    progress.tick()
    assert lines == [f"  started b (progress: {tmp_path / 'logs' / 'b.log'})"]
    progress.ended("c", {"key": "c", "status": "failed", "error": "boom"})
    assert lines[-1].startswith("  [2/4] c: failed (boom) in 0:00:")
    assert lines[-1].endswith("left for 2 run(s) at this pace | 1 done, 1 failed, 1 running, 1 waiting")
    progress.tick()  # the last line is recent: no heartbeat
    assert len(lines) == 2
    monkeypatch.setattr(module, "HEARTBEAT_S", 0.0)
    progress.tick()
    assert lines[-1].startswith("  progress | 1 done, 1 failed, 1 running, 1 waiting | 0:00:")
    logged = (tmp_path / "sweep.log").read_text().splitlines()
    assert len(logged) == 3 and all(line.endswith(shown) for line, shown in zip(logged, lines, strict=True))
    assert logged[0][:4].isdigit() and "\r" not in "".join(logged)  # time-stamped plain lines


def test_a_run_whose_launch_breaks_is_recorded_failed_and_the_rest_go_on(tmp_path, monkeypatch):
    """Not a training error (the run's log has those) but the launch itself (a full disk, an unreadable
    log): that run is failed with the error, and the grid goes on, on every backend alike."""
    from fpt.experiments import sweep as sweep_module

    def launch(run, out, threads):
        if run.seed == 0:
            raise OSError(28, "No space left on device")
        summary = {"status": "finished", "test_accuracy": 0.5}
        return {"key": run.key, "status": "finished", "run_dir": str(out / "runs" / run.key), "summary": summary}

    monkeypatch.setattr(sweep_module, "_launch", launch)
    grid = expand({"tasks": ["bit-xor"], "seeds": [0, 1], "lrs": [1e-3]})
    records = sweep_module.run_grid(grid, tmp_path, jobs=2, log=lambda line: None)
    assert [r["status"] for r in records] == ["failed", "finished"]
    assert records[0]["error"] == "OSError: [Errno 28] No space left on device"
    assert records[0]["log"] == str(tmp_path / "logs" / f"{grid.runs[0].key}.log")


# -- Ray ---------------------------------------------------------------------------------------------
@pytest.fixture
def ray_cluster():
    pytest.importorskip("ray", reason="the ray extra: pip install -e '.[ray]'")

    cluster = LocalRayCluster()
    try:
        cluster.start_head(cpus=0)
        cluster.add_worker("worker-1")
        yield cluster
    finally:
        cluster.close()


@on_linux
@pytest.mark.slow
def test_ray_cluster_sweep_survives_a_killed_worker_and_equals_a_local_sweep(ray_cluster, tiny_gpt2, tmp_path):
    """Head + worker on 127.0.0.2; the worker is killed while it trains a run; a new worker joins and the
    run is retried there. Each run's test accuracy (and the whole table) equals a local --jobs 1 sweep's."""
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(_grid(tiny_gpt2)))
    sweep(str(path), tmp_path / "local", jobs=1, log=lambda line: None)

    out = tmp_path / "ray"
    args = [str(path), "--out", str(out), "--backend", "ray"]
    driver = _sweep_process([*args, "--address", ray_cluster.address], tmp_path / "driver.log", ray_cluster.env)
    try:
        marker = _wait_for(
            lambda: next((out / "logs").rglob("*.running"), None) if (out / "logs").is_dir() else None,
            "run started on the worker",
            process=driver,
        )
        key = str(marker.relative_to(out / "logs")).removesuffix(".running")
        ray_cluster.kill("worker-1")  # the node, its Ray worker and the training it launched
        assert run_status(out / "runs" / key) is None  # killed mid-run, not after
        ray_cluster.add_worker("worker-2")
        assert driver.wait(timeout=900) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        kill_session(driver.pid)
    assert (out / "logs" / f"{key}.log").read_text().count(ATTEMPT) == 2  # lost with its worker, then retried
    local, remote = _summaries(tmp_path / "local"), _summaries(out)
    assert sorted(remote) == sorted(local) == [f"{PRETRAINED}/s0", f"{PRETRAINED}/s1"]
    for run in local:
        assert remote[run]["status"] == local[run]["status"] == "finished"
        assert remote[run]["test_accuracy"] == local[run]["test_accuracy"], run
        assert remote[run]["best_val_accuracy"] == local[run]["best_val_accuracy"], run
    assert _table(out) == _table(tmp_path / "local")
    log = (out / "sweep.log").read_text()
    assert "on the Ray cluster at 127.0.0.2" in log and "2 done, 0 failed, 0 running, 0 waiting" in log

    # Interrupted, and grown: a run as if stopped, and a third seed whose task breaks before training
    # (its log path is a directory). The same command on a local Ray instance (no --address) resumes the
    # one, records the other as failed with Ray's error, and leaves the finished run as it was.
    stopped, kept = (out / "runs" / PRETRAINED / f"s{seed}" / "summary.json" for seed in (0, 1))
    stopped.write_text(json.dumps({**json.loads(stopped.read_text()), "status": "interrupted"}))
    before = kept.stat().st_mtime_ns
    path.write_text(yaml.safe_dump({**_grid(tiny_gpt2), "seeds": [0, 1, 2]}))
    (out / "logs" / PRETRAINED / "s2.log").mkdir()
    resumed = _sweep_process(args, tmp_path / "resume.log", ray_cluster.env)
    try:
        assert resumed.wait(timeout=600) == 0, (tmp_path / "resume.log").read_text()[-3000:]
    finally:
        kill_session(resumed.pid)
    printed = (tmp_path / "resume.log").read_text()
    assert "3 runs, 1 already finished, 2 to run on a local Ray instance" in printed
    assert json.loads(stopped.read_text())["status"] == "finished" and kept.stat().st_mtime_ns == before
    assert f"{PRETRAINED}/s2: failed (Ray: " in printed and "IsADirectoryError" in (out / "results.md").read_text()


# -- SLURM through submitit --------------------------------------------------------------------------
def trained_or_lost(run):
    """A stand-in for training, run in the array task: seed 1's task is lost (raises), the others finish."""
    if run.seed == 1:
        raise RuntimeError("the node went down")
    return {"key": run.key, "status": "finished", "summary": {"test_accuracy": 0.5 + run.seed / 10}}


@on_linux
@pytest.mark.slow
def test_slurm_grid_is_one_array_job_with_the_given_resources(tmp_path, monkeypatch):
    """Through a stand-in `sbatch`: one submission for the grid, `--array=0-2%2`, the partition, time, GPUs
    and extra options given; each task's record comes back, and a lost task is a failed run, not a crash."""
    pytest.importorskip("submitit", reason="the slurm extra: pip install -e '.[slurm]'")
    from tests.fakeslurm import JOB_ID, install

    submissions = install(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the tasks unpickle this module's stand-in for training
    grid = expand({"tasks": ["bit-xor"], "seeds": [0, 1, 2], "lrs": [1e-3]})
    backend = make_backend(
        "submitit", jobs=2, partition="gpu", time="2:00:00", cpus_per_run=2, gpus_per_run=1, slurm={"account": "proj"}
    )
    lines: list[str] = []
    progress = GridProgress(tmp_path, len(grid.runs), Pace(len(grid.runs), None), lines.append)
    progress.dispatched([r.key for r in grid.runs])
    backend.run(grid.runs, trained_or_lost, tmp_path, progress)

    calls = submissions.read_text().split("----")[:-1]
    assert len(calls) == 1  # one array job, not one submission per run
    for option in (
        "--array=0-2%2",
        "--partition=gpu",
        "--time=120",
        "--gpus-per-node=1",
        "--cpus-per-task=2",
        "--account=proj",
        "--signal=USR2@90",
        "--nodes=1",
        "--ntasks-per-node=1",
    ):
        assert f"#SBATCH {option}\n" in calls[0], option
    assert lines[0] == f"Submitted SLURM array job {JOB_ID} (3 runs); files in {tmp_path / 'submitit'}"
    records = {key: progress.records[key] for key in (r.key for r in grid.runs)}
    assert [r["status"] for r in records.values()] == ["finished", "failed", "finished"]
    lost = records["bit-xor/pretrained/lr0.001/s1"]["error"]
    assert lost.startswith(f"SLURM job {JOB_ID}_1: ") and "the node went down" in (
        Path(lost.split("its output: ")[1].rstrip(")")).read_text()
    )
    assert records["bit-xor/pretrained/lr0.001/s2"]["summary"]["test_accuracy"] == 0.7


@on_linux
@pytest.mark.slow
def test_submitit_run_warned_of_its_time_limit_checkpoints_is_requeued_and_resumes(tiny_gpt2, tmp_path):
    """submitit's local executor: SLURM's warning (USR2) reaches the task while it trains; the training
    checkpoints and stops, the task is requeued, and the run resumes from that step and finishes."""
    pytest.importorskip("submitit", reason="the slurm extra: pip install -e '.[slurm]'")
    grid = {**_grid(tiny_gpt2, steps=400, eval_every=20), "seeds": [0]}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    out = tmp_path / "sw"
    driver = _sweep_process(
        [str(path), "--out", str(out), "--backend", "submitit", "--submitit-cluster", "local"], tmp_path / "driver.log"
    )
    run_dir = out / "runs" / "bit-xor" / "pretrained" / "lr0.001" / "s0"
    try:
        _wait_for(
            lambda: (run_dir / "metrics.jsonl").is_file() and (run_dir / "metrics.jsonl").read_text(),
            "evaluation",
            process=driver,
        )
        host, pid = running_marker(out, "bit-xor/pretrained/lr0.001/s0").read_text().split()
        os.kill(int(pid), signal.SIGUSR2)  # the array task's process: SLURM's warning before its time limit
        assert driver.wait(timeout=600) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        kill_session(driver.pid)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and 20 <= summary["resumed_from_step"] < 400
    assert (out / "logs" / "bit-xor" / "pretrained" / "lr0.001" / "s0.log").read_text().count(ATTEMPT) == 2
    assert "1 done, 0 failed" in (out / "sweep.log").read_text()

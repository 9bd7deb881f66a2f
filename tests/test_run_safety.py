"""One writer per run directory, resumes that cannot report the wrong step, runs that a crash before
their first checkpoint does not leave stuck, and CLI input checked before anything is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fpt import FPTError, RunConfig, train
from fpt.cli import main
from fpt.runs.lock import RunLock

QUIET = dict(progress=False, log=lambda *a: None)
SMALL = ["--task-option", "val_size=8", "--task-option", "test_size=8"]


def _snapshot(path: Path) -> dict:
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, quiet_gpt2):
    out = tmp_path_factory.mktemp("safety") / "run"
    config = RunConfig(
        backbone=quiet_gpt2, task_options={"val_size": 8, "test_size": 8}, steps=4, eval_every=2, batch_size=4
    )
    train(RunConfig(**{**config.to_dict(), "out": str(out)}), **QUIET)
    return out


def _hold_lock(run: Path):
    code = f"from fpt.runs.lock import RunLock; lock = RunLock({str(run)!r}).acquire(); print('held', flush=True); import time; time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_second_writer_exits_2_naming_the_lock_holder(finished, capsys):
    before = _snapshot(finished)
    holder = _hold_lock(finished)
    try:
        assert main(["train", "--resume", str(finished), "--steps", "6", "--quiet", "--device", "cpu"]) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert f"process {holder.pid}" in err and ".lock" in err
    assert _snapshot(finished) == before
    with RunLock(finished):  # released by the OS when the holder died
        pass


@pytest.mark.slow
def test_two_resumes_started_together_exactly_one_runs(tmp_path, finished):
    run = tmp_path / "run"
    subprocess.run(["cp", "-r", str(finished), str(run)], check=True)
    command = [sys.executable, "-m", "fpt.cli", "train", "--resume", str(run), "--steps", "400", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)]
    time.sleep(0.5)
    children.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    results = [(c.wait(timeout=600), c.stderr.read()) for c in children]
    assert sorted(rc for rc, _ in results) == [0, 2]
    # which refusal the other gets depends on how far the first had got when it looked (the machine's load):
    # the lock held, the checkpoint changed under it, or the run already finished
    refusal = next(err for rc, err in results if rc == 2)
    assert any(r in refusal for r in ("holds the lock", "changed while this resume", "already finished")), refusal
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))  # no duplicate metric lines


def test_resume_with_fewer_steps_than_the_newest_checkpoint_is_refused(finished, capsys):
    before = _snapshot(finished)
    assert main(["train", "--resume", str(finished), "--steps", "3", "--quiet", "--device", "cpu"]) == 2
    assert "newest checkpoint of" in capsys.readouterr().err and _snapshot(finished) == before


def test_a_run_that_crashed_before_its_first_checkpoint_resumes_from_step_0(tmp_path, quiet_gpt2, monkeypatch):
    import fpt.training.loop as loop

    out = tmp_path / "run"
    config = RunConfig(
        backbone=quiet_gpt2,
        task_options={"val_size": 8, "test_size": 8},
        steps=2,
        eval_every=1,
        batch_size=4,
        out=str(out),
    )

    def fails(trainer, batch):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(loop, "training_step", fails)
    with pytest.raises(FPTError, match="Out of memory"):
        train(config, **QUIET)
    monkeypatch.undo()
    assert (out / "config.yaml").is_file() and not (out / "checkpoints").exists()
    assert main(["train", "--resume", str(out), "--quiet", "--device", "cpu"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 2


def test_out_that_is_a_file_or_below_one(tmp_path, quiet_gpt2, capsys):
    (tmp_path / "file").write_text("keep")
    base = ["train", "--backbone", quiet_gpt2, "--steps", "1", "--quiet", "--device", "cpu", *SMALL]
    for out in (tmp_path / "file", tmp_path / "file" / "run"):
        assert main([*base, "--out", str(out)]) == 2
        assert "Traceback" not in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "keep"


def test_yaml_1_2_lr_trains_from_a_config_file(tmp_path, quiet_gpt2, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(f"backbone: {quiet_gpt2}\nlr: 1e-3\nsteps: 2\neval_every: 1\nbatch_size: 4\n")
    out = tmp_path / "run"
    assert main(["train", "--task", "bit-xor", "--config", str(config), *SMALL, "--out", str(out), "--quiet"]) == 0
    assert "lr: 0.001" in (out / "config.yaml").read_text()


@pytest.mark.parametrize(
    "option, message",
    [
        ("n_bits=[1, 2", "not valid YAML"),
        ("n_bits=abc", "n_bits must be an integer"),
        ("bits_per_token=0", "at least 1"),
    ],
)
def test_task_options_are_checked_at_parse_time(tmp_path, option, message, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "bit-xor", "--task-option", option, "--out", str(out), "--quiet"]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_help_task_lists_the_options(capsys):
    assert main(["train", "--task", "bit-memory", "--help-task"]) == 0
    out = capsys.readouterr().out
    assert "mask_prob (a number, from 0 to 1; default 0.5)" in out and "n_bits" in out


def test_eval_after_task_options_were_edited(tmp_path, finished, capsys):
    edited = tmp_path / "edited"
    subprocess.run(["cp", "-r", str(finished), str(edited)], check=True)
    path = edited / "config.yaml"
    path.write_text(path.read_text().replace("n_bits: 5", "n_bits: 10", 1))
    assert main(["eval", str(edited), "--device", "cpu"]) == 2
    assert "no longer describes the task" in capsys.readouterr().err
    assert main(["eval", str(finished), "--device", "cpu", "--batch-size", "0"]) == 2


def test_bench_out_is_checked_before_measuring(tmp_path, monkeypatch, capsys):
    from fpt import bench

    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: pytest.fail("measured before checking --out"))
    assert main(["bench", "minilm-bit-xor", "--out", str(tmp_path / "bench.yaml")]) == 2
    assert main(["bench", "minilm-bit-xor", "--out", str(tmp_path)]) == 2


def test_usage_errors_quote_briefly(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "grid.yaml", "--out", "x", "--jobs", "x" * 5000])
    assert len(capsys.readouterr().err) < 1000


def test_out_holding_other_files_is_refused(tmp_path, quiet_gpt2, capsys):
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    base = ["train", "--backbone", quiet_gpt2, "--steps", "1", "--quiet", "--device", "cpu", *SMALL]
    assert main([*base, "--out", str(tmp_path / "data")]) == 2
    assert "holds other files" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["mnist"]


def test_fuzz_findings_seed_range_long_messages_data_root_in_a_run(finished, capsys):
    with pytest.raises(FPTError, match="seed"):
        RunConfig(seed=2**40)
    assert main(["predict", str(finished), "--input", "x.npy", "--device", "x" * 5000]) == 2
    assert len(capsys.readouterr().err) < 2000
    before = _snapshot(finished)
    assert main(["data", "generate", "listops", "--data-dir", str(finished), "--train", "2", "--val", "2"]) == 2
    assert main(["data", "generate", "listops", "--data-dir", str(finished / "sub"), "--train", "2"]) == 2
    assert _snapshot(finished) == before


def test_default_run_dirs_started_in_the_same_second_do_not_collide(tmp_path, monkeypatch):
    """The default name holds the time to the second; a short run ends within one, so the next run started
    then gets the name numbered (a refusal broke README command lists), and an LSTM is named for itself."""
    import fpt.runs.record

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(fpt.runs.record.time, "strftime", lambda *_: "20261205-155816")
    small = {"val_size": 8, "test_size": 8}
    config = RunConfig(task="bit-xor", task_options=small, architecture="lstm", init="random", layers=1, steps=1)
    first, second = (train(config, **QUIET) for _ in range(2))
    assert first["status"] == second["status"] == "finished"
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["bit-xor-lstm-random-s0-20261205-155816", "bit-xor-lstm-random-s0-20261205-155816-2"]

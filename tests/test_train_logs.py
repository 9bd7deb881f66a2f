"""What `fpt train` prints: lines off a terminal, JSON lines, quiet; callbacks; time across a resume; trackers."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fpt import RunConfig, train
from fpt.cli import main
from fpt.runs.checkpoint import read_training_state, resolve

QUIET = dict(progress=False, log=lambda *a: None)
ROOT = Path(__file__).resolve().parents[1]


def _flags(backbone: str, out: Path, steps: int = 30) -> list[str]:
    return [
        "train",
        "--backbone",
        backbone,
        "--steps",
        str(steps),
        "--eval-every",
        "10",
        "--batch-size",
        "8",
        "--task-option",
        "val_size=32",
        "--task-option",
        "test_size=32",
        "--out",
        str(out),
    ]


@pytest.mark.slow  # end to end in a fresh interpreter (torch and transformers imported again)
def test_off_a_terminal_train_prints_one_line_per_evaluation_and_no_carriage_return(quiet_gpt2, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("TRANSFORMERS_VERBOSITY", None)
    env["TMPDIR"] = str(
        tmp_path
    )  # its own run registry: other trainings on the machine would add fpt's oversubscription warning
    result = subprocess.run(
        [sys.executable, "-m", "fpt.cli", *_flags(quiet_gpt2, tmp_path / "run")],
        capture_output=True,  # pipes: not a terminal
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "\r" not in output
    evaluations = [line for line in result.stderr.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in evaluations] == ["10/30", "20/30", "30/30"]
    assert all("train_loss" in line and "val_accuracy" in line and "ETA" in line for line in evaluations)
    assert "training finished at step 30" in result.stderr
    assert "Loading weights" not in output and "Warning" not in output  # transformers stays quiet
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["steps"] == 30 and summary["test_examples"] == 32
    assert "trained 2,498 of" in (tmp_path / "run" / "freeze_report.txt").read_text()


@pytest.mark.slow  # a new process: imports torch and transformers
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_reader_that_leaves_stops_the_printing_not_the_training(quiet_gpt2, tmp_path, log_format):
    """`fpt train ... | head -2`: head exits after two lines; the run goes on to its summary, quietly."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TMPDIR": str(tmp_path),
    }
    command = [sys.executable, "-m", "fpt.cli", *_flags(quiet_gpt2, tmp_path / "run"), "--log-format", log_format]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True) as process:
        assert process.stdout is not None and process.stderr is not None
        head = [process.stdout.readline() for _ in range(2)]
        process.stdout.close()  # what head does after its two lines
        errors = process.stderr.read()
        assert process.wait(timeout=300) == 0, errors
    assert all(head) and "Broken pipe" not in errors and "BrokenPipeError" not in errors
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 30


def test_log_format_json_gives_only_json_lines_with_the_summary_last(quiet_gpt2, tmp_path, capsys):
    assert main([*_flags(quiet_gpt2, tmp_path / "run"), "--log-format", "json"]) == 0
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("eval") == 3 and kinds[-1] == "summary" and "start" in kinds and "end" in kinds
    assert [e["step"] for e in events if e["event"] == "eval"] == [10, 20, 30]
    assert any(e["event"] == "message" and "trained 2,498 of" in e["text"] for e in events)  # the freeze report
    assert events[-1]["test_examples"] == 32 and "\r" not in err


def test_quiet_prints_only_the_summary(quiet_gpt2, tmp_path, capsys):
    assert main([*_flags(quiet_gpt2, tmp_path / "run", steps=10), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["steps"] == 10 and err == ""


def test_callbacks_see_every_evaluation_and_can_stop_the_run(quiet_gpt2, tmp_path):
    seen = []

    class Pruner:  # the shape an Optuna/Ray Tune pruning callback takes
        def on_eval(self, step: int, record: dict) -> bool:
            seen.append((step, record["val_accuracy"]))
            return step >= 20

    steps = []
    config = RunConfig(
        backbone=quiet_gpt2,
        steps=50,
        eval_every=10,
        batch_size=8,
        task_options={"val_size": 32, "test_size": 32},
        out=str(tmp_path / "run"),
    )
    summary = train(config, callbacks=[Pruner(), lambda step, record: steps.append(step)], **QUIET)
    assert [s for s, _ in seen] == [10, 20] and steps == [10, 20]
    assert summary["status"] == "pruned" and summary["steps"] == 20  # a pruned trial: no test pass
    assert summary["test_accuracy"] is None and "test_examples" not in summary
    assert (tmp_path / "run" / "checkpoints" / "step-000020").is_dir()  # kept, resumable
    assert all(isinstance(acc, float) for _, acc in seen)


class _Clock:
    """The loop's clock, advancing `tick` seconds at each reading: elapsed times the test can reason about."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def time(self) -> float:
        self.now += self.tick
        return self.now


def test_elapsed_time_continues_after_resume(quiet_gpt2, tmp_path, monkeypatch):
    from fpt.training import loop, resume_config

    config = RunConfig(
        backbone=quiet_gpt2,
        steps=10,
        eval_every=10,
        batch_size=8,
        task_options={"val_size": 32, "test_size": 32},
        out=str(tmp_path / "run"),
    )
    monkeypatch.setattr(loop, "time", _Clock(tick=1000.0))
    train(config, **QUIET)
    first = read_training_state(resolve(tmp_path / "run", "last"))["elapsed_s"]
    assert first >= 1000
    from fpt.training.progress import Reporter

    clock, events = _Clock(tick=1.0), io.StringIO()  # the resumed run alone would report far less than `first`
    monkeypatch.setattr(loop, "time", clock)
    summary = train(resume_config(tmp_path / "run", steps=20), resume=True, progress=Reporter("json", events))
    assert first < summary["wall_seconds"] <= first + clock.now  # went on from the checkpoint, not from zero
    end = next(e for e in map(json.loads, events.getvalue().splitlines()) if e["event"] == "end")
    assert first < end["elapsed_s"] <= summary["wall_seconds"]  # the end line agrees with the summary
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 20 and first < last["elapsed_s"] < summary["wall_seconds"]


def test_tensorboard_is_the_default_tracker_where_installed(monkeypatch):
    from fpt.training import distributed

    installed = {"tensorboard": True}
    monkeypatch.setattr(distributed.importlib.util, "find_spec", lambda name: object() if installed.get(name) else None)
    assert distributed.resolve_tracker(None) == "tensorboard"
    assert distributed.resolve_tracker("none") is None and distributed.resolve_tracker("wandb") == "wandb"
    installed["tensorboard"] = False
    assert distributed.resolve_tracker(None) is None


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed")
def test_a_default_run_writes_its_metrics_to_tensorboard(quiet_gpt2, tmp_path):
    """Every evaluation's record reaches TensorBoard's event file, step for step as metrics.jsonl has it
    (an event file alone is written as soon as the tracker starts, logged or not)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = RunConfig(
        backbone=quiet_gpt2,
        steps=2,
        eval_every=1,
        batch_size=4,
        task_options={"val_size": 8, "test_size": 8},
        out=str(tmp_path / "run"),
    )
    train(config, **QUIET)
    assert list((tmp_path / "run").rglob("events.out.tfevents.*"))
    tensorboard = tmp_path / "run" / "tensorboard"  # the metrics' event file (the hparams' is in a subfolder)
    logged = EventAccumulator(str(tensorboard)).Reload()
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    for tag in ("train_loss", "val_accuracy"):
        assert [(e.step, e.value) for e in logged.Scalars(tag)] == [(m["step"], pytest.approx(m[tag])) for m in metrics]


def test_patience_stops_a_run_whose_validation_stopped_improving(quiet_gpt2, tmp_path):
    """With an lr too small to change anything, validation accuracy never beats its first value: with
    patience 2 the run stops two evaluations later, its best (first) checkpoint tested."""
    config = RunConfig(
        backbone=quiet_gpt2,
        steps=100,
        eval_every=10,
        batch_size=8,
        lr=1e-12,
        patience=2,
        task_options={"val_size": 32, "test_size": 32},
        out=str(tmp_path / "run"),
    )
    summary = train(config, **QUIET)
    assert summary["status"] == "early-stopped" and summary["steps"] == 30 and summary["best_step"] == 10
    assert summary["test_accuracy"] is not None


def test_the_first_validation_pass_is_announced(quiet_gpt2, tmp_path):
    """A GPT-2 run's first line came after its first validation pass, minutes in: that pass is announced."""
    from fpt.training.progress import Reporter

    stream = io.StringIO()
    config = RunConfig(
        backbone=quiet_gpt2,
        steps=20,
        eval_every=10,
        batch_size=8,
        task_options={"val_size": 32, "test_size": 32},
        out=str(tmp_path / "run"),
    )
    train(config, progress=Reporter("text", stream, phase_delay=0), log=lambda *a: None)
    lines = stream.getvalue().splitlines()
    assert lines.count("val pass (32 examples) ...") == 1  # the first; the eval lines give the pace after it
    assert lines.index("val pass (32 examples) ...") < next(
        i for i, line in enumerate(lines) if line.startswith("step 10/")
    )

"""Progress reporting: plain lines off a terminal (no carriage returns), JSON lines, quiet."""

from __future__ import annotations

import io
import json
import re
import time

import pytest

from fpt.training.progress import Reporter, reporter

RECORD = {"step": 10, "train_loss": 0.5, "val_accuracy": 0.75, "val_exact_match": 0.25, "elapsed_s": 3.0}


def _run(style: str) -> str:
    stream = io.StringIO()
    report = Reporter(style, stream, phase_delay=0)  # announce every phase at once
    with report.phase("loading bit-xor"):
        pass
    report.start(total=20, initial=0, description="bit-xor pretrained")
    report.step()
    report.step()
    report.evaluation({**RECORD, "samples_per_s": 12.5})
    report.evaluation({**RECORD, "step": 20, "samples_per_s": 13.0})
    report.end("finished", 20)
    assert list(report.track(range(3), "test pass", total=3)) == [0, 1, 2]
    return stream.getvalue()


def test_off_a_terminal_auto_is_one_plain_line_per_event():
    stream = io.StringIO()  # not a terminal
    assert Reporter("auto", stream).style == "text"
    out = _run("text")
    assert "\r" not in out
    lines = out.splitlines()
    evals = [line for line in lines if line.startswith("step ")]
    assert len(evals) == 2
    assert evals[0].startswith("step 10/20  train_loss 0.5000  val_accuracy 0.7500  val_exact_match 0.2500")
    assert "samples_per_s 12.5 " in evals[0] and "ETA 0:00:" in evals[0]
    assert lines[0] == "loading bit-xor ..." and lines[1].startswith("loading bit-xor: done in")
    assert any(line.startswith("training finished at step 20") for line in lines)
    assert lines[-2] == "test pass ..." and lines[-1].startswith("test pass: done in")


def test_json_style_gives_one_object_per_event():
    events = [json.loads(line) for line in _run("json").splitlines()]
    assert [e["event"] for e in events] == ["phase", "phase", "start", "eval", "eval", "end", "phase", "phase"]
    first = events[3]
    assert first["step"] == 10 and first["val_accuracy"] == 0.75 and first["total_steps"] == 20
    assert isinstance(first["eta_s"], float)


def test_quiet_prints_nothing_and_bool_maps_to_auto_or_quiet():
    assert _run("quiet") == ""
    assert reporter(False).style == "quiet" and reporter("json").style == "json"
    with pytest.raises(ValueError, match="not one of"):
        Reporter("fancy")


def test_quick_phases_stay_silent_and_long_ones_are_announced():
    """Judged by events, not by how long the machine takes: the quick phases end long before their delay,
    and the slow one lasts until its announcement has appeared."""
    stream = io.StringIO()
    report = Reporter("text", stream, phase_delay=3600)
    with report.phase("quick"):
        pass
    with pytest.raises(KeyError):
        with report.phase("failing"):
            raise KeyError("x")
    assert stream.getvalue() == ""  # nothing before an error message, nothing for a blink
    report.phase_delay = 0.01
    with report.phase("slow"):
        for _ in range(6000):
            if stream.getvalue():
                break
            time.sleep(0.01)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "slow ..." and re.fullmatch(r"slow: done in \d+\.\d s", lines[1])


def test_auto_is_a_bar_in_a_notebook(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ipykernel", object())  # a Jupyter kernel: output is no terminal
    assert Reporter("auto", io.StringIO()).style == "bar"


def test_a_long_stretch_without_evaluations_gets_a_line_saying_where_the_run_is():
    stream = io.StringIO()
    report = Reporter("text", stream, heartbeat=0)  # every step is "long" here
    report.start(total=100, initial=40, description="bit-memory random", elapsed=3600.0)  # resumed after an hour
    report.step()
    last = stream.getvalue().splitlines()[-1]
    assert last.startswith("step 41/100  ") and " s/step  elapsed 1:00:0" in last and "ETA" in last
    events = io.StringIO()
    json_report = Reporter("json", events, heartbeat=0)
    json_report.start(total=10, initial=0, description="x")
    json_report.step()
    progress = json.loads(events.getvalue().splitlines()[-1])
    assert progress["event"] == "progress" and progress["step"] == 1 and progress["total_steps"] == 10
    calm = io.StringIO()
    patient = Reporter("text", calm, heartbeat=3600)
    patient.start(total=10, initial=0, description="x")
    patient.step()
    assert len(calm.getvalue().splitlines()) == 1  # the start line only


def test_the_end_line_counts_a_resumed_runs_earlier_time():
    stream = io.StringIO()
    report = Reporter("text", stream)
    report.start(total=20, initial=10, description="resumed")
    report.end("finished", 20, elapsed=3725.0)  # 1:02:05 in all, most of it before the resume
    assert stream.getvalue().splitlines()[-1] == "training finished at step 20 in 1:02:05"
    report.start(total=30, initial=20, description="resumed again", elapsed=7200.0)
    report.end("finished", 30)  # by default: the time before the start, and since
    assert stream.getvalue().splitlines()[-1].startswith("training finished at step 30 in 2:00:0")


def test_a_counted_phase_reports_its_count_and_an_eta_while_it_runs():
    stream = io.StringIO()
    report = Reporter("text", stream, phase_delay=0, heartbeat=0)
    with report.counting("generating listops", 4, "examples") as advance:
        for _ in range(4):
            advance(1)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "generating listops ..." and lines[-1].startswith("generating listops: done in")
    assert lines[1].startswith("generating listops: 1/4 examples, elapsed 0:00:00, ETA ")
    assert len(lines) == 5  # 1/4, 2/4, 3/4 between start and end

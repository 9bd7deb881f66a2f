"""The oversubscription check: live training processes are counted, dead or reused pids are not."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from fpt.training.occupancy import TrainingProcess, _start_time, oversubscription, registered, running


@pytest.fixture
def sleeper():
    child = subprocess.Popen(["sleep", "60"])
    yield child
    child.kill()
    child.wait()


def _register(registry, pid, threads, started):
    registry.mkdir(exist_ok=True)
    (registry / f"{pid}.json").write_text(json.dumps({"pid": pid, "threads": threads, "started": started}))


def test_live_processes_are_counted_and_dead_ones_removed(tmp_path, sleeper):
    registry = tmp_path / "registry"
    _register(registry, sleeper.pid, 2, _start_time(sleeper.pid))
    with registered(1, registry) as others:
        assert others == [TrainingProcess(sleeper.pid, 2)]
        assert sorted(running(registry)) == sorted([TrainingProcess(sleeper.pid, 2), TrainingProcess(os.getpid(), 1)])
    sleeper.kill()
    sleeper.wait()
    assert running(registry) == [] and not any(registry.glob("*.json"))  # this process unregistered, the dead removed


def test_a_reused_pid_is_not_counted(tmp_path, sleeper):
    if _start_time(sleeper.pid) is None:
        pytest.skip("no /proc start times here")
    registry = tmp_path / "registry"
    _register(registry, sleeper.pid, 2, "1")  # same pid, another start time: an earlier process's entry
    assert running(registry) == []


def test_warning_only_when_threads_exceed_cores():
    others = [TrainingProcess(123, 2)]
    assert oversubscription(1, [], cores=2) is None
    assert oversubscription(1, [TrainingProcess(123, 1)], cores=2) is None
    message = oversubscription(2, others, cores=2)
    assert message and "4 torch threads on 2 cores" in message and "OMP_NUM_THREADS=1" in message


def test_an_unwritable_registry_never_fails_the_run(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with registered(1, blocker / "registry") as others:  # a file where the folder should be
        assert others == []


def test_fpt_train_warns_when_oversubscribed_and_unregisters(tmp_path, sleeper, tiny_gpt2, monkeypatch, caplog):
    from fpt.cli import main
    from fpt.training import occupancy

    registry = tmp_path / "registry"
    monkeypatch.setattr(occupancy, "default_registry", lambda: registry)
    _register(registry, sleeper.pid, occupancy.usable_cores(), _start_time(sleeper.pid))  # all cores taken
    args = [
        "train",
        "--backbone",
        tiny_gpt2,
        "--steps",
        "1",
        "--eval-every",
        "1",
        "--batch-size",
        "4",
        "--device",
        "cpu",
    ]
    args += ["--task-option", "val_size=4", "--task-option", "test_size=4", "--quiet"]
    with caplog.at_level("WARNING", logger="fpt"):
        assert main([*args, "--out", str(tmp_path / "busy")]) == 0
    warned = [r.getMessage() for r in caplog.records if "oversubscribed" in r.getMessage()]
    assert len(warned) == 1 and f"pid {sleeper.pid}" in warned[0]
    assert [p.pid for p in running(registry)] == [sleeper.pid]  # this run unregistered when it ended
    sleeper.kill()
    sleeper.wait()
    caplog.clear()
    with caplog.at_level("WARNING", logger="fpt"):
        assert main([*args, "--out", str(tmp_path / "alone")]) == 0
    assert not [r for r in caplog.records if "oversubscribed" in r.getMessage()]

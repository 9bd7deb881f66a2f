"""The short fuzz run (the long one is benchmarks/fuzz_cli.py): generated bad arguments and files for
every subcommand and for train(), TensorTask and predict() end in exit 0 or 2, never a traceback,
and never change a protected run directory or dataset (see tests/fuzzing.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzzing import Fuzzer, _cli

COMMANDS = (
    "train", "resume", "eval", "predict", "describe", "data list", "data verify", "data generate",
    "data download", "sweep", "reproduce", "attention", "bench", "train peft", "train align", "train arrays",
    "train gguf", "eval lora", "compare", "report", "reproduce rows", "data generate recipe",
)  # fmt: skip


def test_fuzz_every_subcommand_and_api(tmp_path, quiet_gpt2, monkeypatch):
    fuzzer = Fuzzer(tmp_path / "fuzz", quiet_gpt2, seed=12, monkeypatch=monkeypatch)
    for command in COMMANDS:  # the unfuzzed base of each case works, so the cases test what they change
        fuzzer._run(command, command, lambda command=command: _cli(fuzzer.base_argv(command)), allowed_change=True)
    assert fuzzer.report.outcomes == {f"{c}: exit 0": 1 for c in COMMANDS}, fuzzer.report.failures
    for index in range(150):
        fuzzer.api_case() if index % 6 == 0 else fuzzer.cli_case(COMMANDS[index % len(COMMANDS)])
    for _ in range(4):  # signals at random moments; two processes sharing a run directory
        fuzzer.signal_case()
    fuzzer.concurrent_case("same --out")  # the other kinds: benchmarks/fuzz_cli.py
    assert not fuzzer.report.failures, fuzzer.report.failures[:3]
    assert sum(fuzzer.report.cases.values()) == 150 + len(COMMANDS) + 5
    assert {kind.split()[0] for kind in fuzzer.report.cases} >= {"signal", "concurrent", "api"}
    # a train case keeps what bounds it to seconds (seed 2's case 218 lost both and trained for minutes)
    assert all("--steps" in fuzzer.mutate(fuzzer.base_argv("train")) for _ in range(300))
    assert all("--resume" in fuzzer.mutate(fuzzer.base_argv("resume")) for _ in range(300))


@pytest.mark.slow  # the benchmark end to end in a fresh interpreter (it changes directory for good)
def test_the_long_run_records_to_a_path_relative_to_where_it_started(tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_cli.py"
    command = [sys.executable, str(script), "--cases", "3", "--record", "results/fuzz.json"]
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, timeout=600)
    assert json.loads((tmp_path / "results" / "fuzz.json").read_text())["cases"] == 3
    assert (tmp_path / "results" / "fuzz.md").exists()

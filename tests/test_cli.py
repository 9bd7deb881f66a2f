"""The command line: clear one-paragraph errors with a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from fpt.cli import main


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--task", "bit-xr"], "Did you mean 'bit-xor'"),
        (["train", "--backbone", "minlm"], "Did you mean 'minilm'"),
        (["train", "--init", "pretrained-ish"], "Unknown init"),
        (["train", "--train", "input,attn"], "not a group"),
        (["train", "--steps", "0"], "steps must be a positive integer"),
        (["train", "--task-option", "n_bits"], "KEY=VALUE"),
        (["train", "--task-option", "width=3"], "unknown option(s) width"),
        (["describe", "--backbone", "gpt2"], "not in the local Hugging Face cache"),
        (["eval", "/nonexistent/run"], "not a run directory"),
    ],
)
def test_bad_input_gives_one_clear_error(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err and err.startswith("fpt: error:")
    assert "Traceback" not in err


def test_unknown_config_key_is_named(capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("task: bit-xor\nlearning_rate: 0.01\n")
    code, _, err = run_cli(capsys, "train", "--config", str(config))
    assert code == 2 and "learning_rate" in err


def test_offline_backbone_fails_at_once(capsys):
    started = time.time()
    code, _, err = run_cli(capsys, "train", "--backbone", "some-org/some-model")
    assert code == 2 and time.time() - started < 10
    assert "minilm" in err and "--backbone /path/to/model" in err


def test_gpt2_random_init_works_offline(capsys):
    code, out, _ = run_cli(capsys, "describe", "--backbone", "gpt2", "--init", "random", "--task", "bit-memory")
    assert code == 0
    assert "GPT2Model" in out and "124,555,876" in out and "120 tokens of 50" in out


def test_flags_override_the_config_file_and_eval_reads_the_run(capsys, tmp_path, tiny_gpt2):
    config = tmp_path / "run.yaml"
    config.write_text(
        f"task: bit-xor\nbackbone: {tiny_gpt2}\nsteps: 50\neval_every: 2\n"
        "task_options: {val_size: 40, test_size: 60}\n"
    )
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "train", "--config", str(config), "--steps", "4", "--out", str(out), "--quiet")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["steps"] == 4 and summary["test_examples"] == 60
    code, stdout, _ = run_cli(capsys, "eval", str(out))
    assert code == 0 and json.loads(stdout)["accuracy"] == summary["test_accuracy"]


def test_entry_point_exits_non_zero_without_traceback():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "fpt.cli", "train", "--task", "nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Unknown task 'nope'" in result.stderr and "Traceback" not in result.stderr

"""The command line: clear one-paragraph errors with a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
        (["train", "--task-option", "width=3"], "unknown option(s) 'width'"),
        (["train", "--task", "bit-memory", "--task-option", "n_bit=3"], "'n_bit' (did you mean 'n_bits'?)"),
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


@pytest.mark.parametrize("offline, probes", [("1", 0), (None, 1)])
def test_offline_backbone_fails_at_once(capsys, monkeypatch, offline, probes):
    """At once: with HF_HUB_OFFLINE no connection is tried; without it and no network (refused here), one
    probe of the hub and no retries. Counted, not timed."""
    import socket

    attempts = []

    def refuse(*args):
        attempts.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", bool(offline))  # read at import, from the test session's env
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    code, _, err = run_cli(capsys, "train", "--backbone", "some-org/some-model")
    assert code == 2 and len(attempts) == probes
    assert "cannot be reached" in err
    assert "minilm" in err and "--backbone /path/to/model" in err


def test_gpt2_random_init_works_offline(capsys):
    code, out, _ = run_cli(capsys, "describe", "--backbone", "gpt2", "--init", "random", "--task", "bit-memory")
    assert code == 0
    assert "GPT2Model" in out and "124,555,876" in out and "120 tokens of 50" in out
    assert "Backbone: 12 blocks, width 768, causal decoder" in out


def test_flags_override_the_config_file_and_eval_reads_the_run(capsys, tmp_path, tiny_gpt2, monkeypatch):
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
    monkeypatch.setattr("fpt.training.progress.PHASE_DELAY", 0)  # every phase announced, however quick
    code, stdout, stderr = run_cli(capsys, "eval", str(out))
    assert code == 0 and json.loads(stdout)["accuracy"] == summary["test_accuracy"]
    phases = [line for line in stderr.splitlines() if line.endswith(" ...")]  # eval is never silent for minutes
    assert phases == [
        "loading task bit-xor ...",
        f"loading the best checkpoint of {out} ...",
        "test pass (60 examples) ...",
    ]


@pytest.mark.slow  # end to end in a fresh interpreter (torch and transformers imported again)
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


def test_train_flags_come_from_the_run_config(capsys):
    """Every scalar RunConfig field (its ModelConfig's too) is a flag showing its help and default; choices
    come from its type."""
    from fpt.fields import field_default, flat_fields
    from fpt.training.config import RunConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    squeezed = text.replace(" ", "")  # and breaks words at hyphens
    for f, _ in flat_fields(RunConfig):
        if f.name in ("task_options", "method_options", "imports"):  # repeatable --*-option KEY=VALUE, --import
            continue
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
        assert "".join(f.metadata["help"].split()) in squeezed, f.name
        default = field_default(f)
        shown = "unset" if default is None else str(default).lower() if isinstance(default, bool) else str(default)
        assert f"(default: {shown})" in text, f.name
    assert "--precision {fp32,bf16,fp16,auto}" in text and "--no-compile" in text
    assert "--architecture {transformer,lstm,lstm-paper}" in text and "--layers LAYERS" in text
    assert "--model" not in text  # the model's keys are flat flags


def test_flags_accept_underscores(capsys):
    code, _, err = run_cli(capsys, "train", "--batch_size", "0")
    assert code == 2 and "batch_size must be a positive integer" in err
    code, _, err = run_cli(capsys, "train", "--eval_batch_size=0")
    assert code == 2 and "eval_batch_size must be a positive integer" in err


def test_choices_and_bounds_are_checked_from_the_type_hints():
    from fpt import FPTError, RunConfig

    for values, message in (
        ({"precision": "fp64"}, "precision must be fp32, bf16, fp16 or auto"),
        ({"log": "mlflow"}, r"log must be tensorboard, wandb or none \(or null\)"),
        ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
        ({"target_accuracy": 0}, r"target_accuracy must be a number in \(0, 1\]"),
        ({"lr": -1}, "lr must be a positive number"),
        ({"keep_checkpoints": 0}, "keep_checkpoints must be a positive integer"),
        ({"steps": True}, "steps must be a positive integer .got True."),
        ({"layers": "2"}, "layers must be a positive integer or null .got .2..."),
    ):
        with pytest.raises(FPTError, match=message):
            RunConfig(**values)

"""No hang and no silent wait: a FIFO given as an input file is refused, not read; the first Ctrl-C
stops at once wherever nothing would be checkpointed (loading, aligning) and checkpoints once training
steps; sizes that cannot fit (an alignment's records, a LoRA of rank 100,000) are refused up front."""

from __future__ import annotations

import os
import signal
import time

import pytest

from fpt import FPTConfig, FPTError, FrozenPretrainedTransformer, RunConfig, train
from fpt.cli import main
from fpt.training import StopRequests
from fpt.training.align import align


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX only")
def test_a_fifo_as_an_input_file_is_refused_not_read(tmp_path, capsys):
    fifo = tmp_path / "data.npz"
    os.mkfifo(fifo)
    for argv in (
        ["train", "--task", "arrays", "--task-option", f"path={fifo}", "--steps", "1"],
        ["train", "--config", str(fifo)],
    ):
        assert main(argv) == 2  # before: blocked in open() until a second Ctrl-C
        assert "is a FIFO (named pipe), not a file" in capsys.readouterr().err


def test_the_first_signal_stops_at_once_unless_training_steps():
    with StopRequests.installed() as stop:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        with stop.checkpointing():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            assert stop.requested  # deferred: the loop checkpoints after this step
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)


def test_the_first_ctrl_c_during_alignment_stops_the_run(tmp_path, quiet_gpt2, monkeypatch):
    """The alignment ran before the training loop: the first Ctrl-C was only noted, and nothing read it."""

    def slow_alignment(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)
        raise AssertionError("the alignment went on after Ctrl-C")

    monkeypatch.setattr("fpt.training.loop.align_input", slow_alignment)
    config = RunConfig(backbone=quiet_gpt2, align="mmd", steps=2, batch_size=4, out=str(tmp_path / "run"))
    started = time.time()
    with StopRequests.installed() as stop, pytest.raises(KeyboardInterrupt):
        train(config, progress=False, log=lambda *a: None, stop=stop)
    assert time.time() - started < 20 and not (tmp_path / "run" / "config.yaml").exists()


def test_alignment_steps_beyond_memory_are_refused_before_any_work():
    with pytest.raises(FPTError, match="--align-steps 2,147,483,647 .a record of each step"):
        align(None, None, "mmd", 2**31 - 1, 1e-3, 0)


def test_a_lora_rank_above_the_matrices_or_beyond_memory_is_refused(tiny_gpt2, monkeypatch):
    def allocating(*args, **kwargs):
        raise AssertionError("peft was asked to allocate the adapter")

    monkeypatch.setattr("peft.inject_adapter_in_model", allocating)  # each refusal comes before it
    shape = dict(input_dim=1, max_length=8, num_classes=2)
    with pytest.raises(FPTError, match="LoRA rank 100,000 exceeds the rank any adapted matrix can take .32"):
        FrozenPretrainedTransformer(
            FPTConfig(**shape, backbone=tiny_gpt2, train="lora", method_options={"rank": 100_000})
        )
    monkeypatch.setattr("fpt.memory.available_bytes", lambda device=None: 1 << 16)
    with pytest.raises(FPTError, match="LoRA rank 32 on 2 matrices .* adapter parameters, trained with Adam"):
        FrozenPretrainedTransformer(FPTConfig(**shape, backbone=tiny_gpt2, train="lora", method_options={"rank": 32}))


@pytest.mark.parametrize("policy", ["lora", "fpt+lora"])
def test_a_lora_rank_given_on_the_command_line_is_refused_before_the_run_exists(tmp_path, tiny_gpt2, capsys, policy):
    """`--lora-rank 100000` on a 384-wide model built a 921M-parameter adapter and a 14 GB run directory; the rank
    is now a --method-option, checked the same way."""
    out = tmp_path / "run"
    argv = ["train", "--backbone", tiny_gpt2, "--train", policy, "--method-option", "rank=100000", "--steps", "1"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 2
    assert "LoRA rank 100,000 exceeds the rank any adapted matrix can take (32" in capsys.readouterr().err
    assert not out.exists()

"""Requests whose sizes cannot fit in memory are refused before anything is allocated (fpt.memory).

The available memory is mocked low, so each test asks for little and allocates nothing large: on
Linux a real oversized request is not refused by the allocator but grows until the OOM killer
ends the process (the long fuzz run, seed 1, case 846: `fpt reproduce --seeds 2147483648`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fpt import FPTError, RunConfig, TensorTask, train
from fpt.cli import main
from fpt.memory import available_bytes

MIB = 2**20


@pytest.fixture
def little_memory(monkeypatch):
    """Pretend this machine has `set(n)` bytes available."""

    def set_available(nbytes: int) -> None:
        monkeypatch.setattr("fpt.memory.available_bytes", lambda device=None: nbytes)

    return set_available


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="Linux only")
def test_available_memory_is_read_from_the_system():
    fields = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in open("/proc/meminfo"))}
    assert 0 < available_bytes() <= (fields["MemAvailable"] + fields.get("SwapFree", 0) + 1024) * 1024


def test_reproduce_seeds_beyond_memory_are_refused_before_the_lists_are_built(little_memory, tiny_gpt2):
    from fpt.experiments.reproduce import build

    little_memory(MIB)
    with pytest.raises(FPTError, match=r"--seeds 2,100: that needs at least .* Lower --seeds"):
        build("main", "smoke", ["bit-xor"], seeds=2100, backbone=tiny_gpt2)
    little_memory(64 * MIB)
    assert build("main", "smoke", ["bit-xor"], seeds=3, backbone=tiny_gpt2)[1]["seeds"] == [0, 1, 2]


def test_the_fuzz_finding_reproduce_seeds_2_to_the_31_exits_2(little_memory, tiny_gpt2, tmp_path, capsys):
    little_memory(8 * 2**30)  # an 8 GiB machine: 2^31 seeds would take ~100 GB before any run
    argv = ["reproduce", "main", "--tasks", "bit-xor", "--backbone", tiny_gpt2, "--out", str(tmp_path / "r")]
    assert main([*argv, "--seeds", "2147483648"]) == 2
    assert "--seeds 2,147,483,648" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_sweep_grid_whose_runs_exceed_memory_is_refused(little_memory, tiny_gpt2):
    from fpt.experiments.sweep import expand

    grid = {"tasks": ["bit-xor"], "lrs": [1e-3, 1e-4], "seeds": list(range(1500)), "settings": {"backbone": tiny_gpt2}}
    little_memory(MIB)
    with pytest.raises(FPTError, match="A grid of at least 3,000 runs"):
        expand(grid)


def test_a_training_batch_beyond_memory_is_refused_before_the_run_directory(little_memory, quiet_gpt2, tmp_path):
    little_memory(MIB)
    config = RunConfig(
        backbone=quiet_gpt2,
        task_options={"val_size": 8, "test_size": 8},
        steps=1,
        batch_size=4096,
        out=str(tmp_path / "r"),
    )
    with pytest.raises(FPTError, match=r"--batch-size 4,096 \(passes of 4,096 examples.*--micro-batch-size"):
        train(config, progress=False, log=lambda *a: None)
    assert not (tmp_path / "r").exists()
    # the advice works: small passes fit (128 examples: about 0.6 MiB by the floor), and an
    # evaluation batch larger than the split is only the split
    small = RunConfig(**{**config.__dict__, "micro_batch_size": 128, "eval_batch_size": 10**6})
    assert train(small, progress=False, log=lambda *a: None)["status"] == "finished"


def test_a_bench_batch_beyond_memory_is_refused_before_measuring(little_memory, quiet_gpt2):
    from fpt.bench import BenchCase, BenchSettings, run_bench

    case = BenchCase("tiny", "bit-xor", quiet_gpt2, "random", batch_size=4, task_options={"val_size": 8})
    little_memory(MIB)
    with pytest.raises(FPTError, match="--batch-size 4,096"):
        run_bench(["tiny"], BenchSettings(batch_size=4096, memory=False, device="cpu"), {"tiny": case})


def test_eval_and_predict_batches_beyond_memory_are_refused(little_memory, quiet_gpt2, tmp_path, capsys):
    run = tmp_path / "run"
    config = RunConfig(
        backbone=quiet_gpt2, task_options={"val_size": 8, "test_size": 8}, steps=1, batch_size=4, out=str(run)
    )
    train(config, progress=False, log=lambda *a: None)
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.ones((64, 10, 1), np.float32))
    little_memory(16 * 1024)
    assert main(["eval", str(run), "--device", "cpu"]) == 2
    assert "Lower the evaluation batch size" in capsys.readouterr().err
    assert main(["predict", str(run), "--input", str(inputs), "--device", "cpu"]) == 2
    assert "Prediction batches of 64 examples" in capsys.readouterr().err
    assert main(["predict", str(run), "--input", str(inputs), "--device", "cpu", "--batch-size", "2"]) == 0


def test_bit_task_splits_are_checked_against_available_memory(little_memory):
    from fpt.tasks import check_task_options

    little_memory(64 * MIB)  # 10^6 validation examples of bit-xor: ~115 MiB to generate
    with pytest.raises(
        FPTError, match="the validation and test sets: that needs at least 114.6 MiB of memory, and about 64.0 MiB"
    ):
        check_task_options("bit-xor", {"val_size": 10**6})
    assert check_task_options("bit-xor", {"val_size": 10**5})


def test_feature_cache_beyond_memory_is_refused(little_memory, quiet_gpt2, tmp_path):
    x, y = torch.randn(4000, 1, 1), torch.randint(0, 2, (4000,))
    task = TensorTask((x, y), (x[:8], y[:8]), (x[:8], y[:8]))
    config = RunConfig(backbone=quiet_gpt2, train="output", steps=1, batch_size=4, out=str(tmp_path / "r"))
    little_memory(MIB // 2)  # the cache: 4016 examples x 32 floats, held twice
    with pytest.raises(FPTError, match="Caching backbone features of 4,016 examples.*--no-feature-cache"):
        train(config, task=task, progress=False, log=lambda *a: None)


def test_a_position_table_beyond_memory_is_refused(little_memory, quiet_gpt2):
    from transformers import GPT2Model

    from fpt.backbones.positions import extend_positions

    little_memory(MIB)
    with pytest.raises(FPTError, match="Sequences of 100,000 tokens"):
        extend_positions(GPT2Model.from_pretrained(quiet_gpt2), 100_000)


def test_listops_padded_to_a_huge_max_length_is_refused(little_memory, tmp_path):
    from fpt.tasks import get_task
    from tests.datafiles import write_listops

    write_listops(tmp_path / "listops")
    little_memory(MIB)
    with pytest.raises(FPTError, match=r"listops: \d+ examples padded to 10,000,000 tokens"):
        get_task("listops", data_dir=str(tmp_path), tokenizer="paper", max_length=10_000_000)


def test_listops_generation_beyond_memory_is_refused_before_generating(little_memory, tmp_path):
    from fpt.data.listops import generate

    little_memory(MIB)  # 1,000 examples of over 500 tokens: at least ~2 MB of source text
    with pytest.raises(FPTError, match="Generating 1,000 ListOps examples of over 500 tokens"):
        generate(tmp_path / "listops", train=800, val=100, test=100)
    assert not (tmp_path / "listops").exists()


def _bert(backbone: str, tokens: int, **settings) -> torch.nn.Module:
    from fpt.model.fpt import FPTConfig, FrozenPretrainedTransformer

    config = FPTConfig(input_dim=16, max_length=tokens, num_classes=10, input_kind="discrete", backbone=backbone)
    return FrozenPretrainedTransformer(replace(config, **settings))


def test_attention_scores_count_where_the_attention_path_materializes_them(tiny_bert):
    from fpt.memory import pass_bytes

    fused = _bert(tiny_bert, 64)  # fpt_sdpa: unfused only for CPU training with attention dropout (BERT's 0.1)
    eager = _bert(tiny_bert, 64, attn_implementation="eager")

    def growth(model, training, device="cpu"):  # from 32 to 64 tokens
        return pass_bytes(model, 4, 64, 1, training, device) / pass_bytes(model, 4, 32, 1, training, device)

    assert growth(fused, training=True) > 3.5  # tokens^2: the score matrices dominate
    assert growth(fused, training=False) == 2  # tokens: one fused kernel
    assert growth(fused, training=True, device="cuda") == 2  # the GPU kernels drop out inside the kernel
    assert growth(eager, training=False) > 2.5  # eager attention materializes them in evaluation too
    fused.backbone.config.attention_probs_dropout_prob = 0.0
    assert growth(fused, training=True) == 2


@pytest.fixture(scope="session")
def minilm_shaped(tmp_path_factory) -> str:
    """MiniLM's depth and heads (which the attention term counts), narrow and with a long position table."""
    from transformers import BertConfig, BertModel

    path = tmp_path_factory.mktemp("minilm-shaped")
    shape = BertConfig(
        hidden_size=48,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=64,
        vocab_size=100,
        max_position_embeddings=2048,
    )
    BertModel(shape).save_pretrained(path)
    return str(path)


def test_listops_length_batches_are_refused_with_the_micro_batch_that_fits(little_memory, minilm_shaped, tmp_path):
    from fpt.training.loop import build_model, require_training_memory

    inputs, targets = torch.randint(1, 16, (16, 2000)), torch.randint(0, 10, (16,))
    mask = torch.arange(2000) < torch.randint(1000, 2000, (16, 1))
    task = TensorTask((inputs, targets, mask), (inputs, targets, mask), (inputs, targets, mask), num_classes=10)
    config = RunConfig(backbone=minilm_shaped, steps=1, batch_size=16, out=str(tmp_path / "r"))
    little_memory(20 * 2**30)  # 16 x 12 heads x 2000^2 scores per layer: ~40 GiB by the floor, ~2.6 GiB an example
    with pytest.raises(FPTError, match=r"--micro-batch-size 4 \(.*--eval-batch-size 256\) may need lowering"):
        train(config, task=task, progress=False, log=lambda *a: None)
    model = build_model(config, task)  # the advice passes the check (not run: it would take ~14 GB)
    require_training_memory(replace(config, micro_batch_size=4), task, model, 1, torch.device("cpu"))
    with pytest.raises(FPTError, match="--micro-batch-size 4"):
        require_training_memory(replace(config, micro_batch_size=8), task, model, 1, torch.device("cpu"))


def test_a_short_sequence_batch_fits(little_memory, minilm_shaped, tmp_path):
    x, y = torch.randint(1, 16, (16, 64)), torch.randint(0, 10, (16,))
    task = TensorTask((x, y), (x, y), (x, y), num_classes=10)
    little_memory(2**30)
    config = RunConfig(backbone=minilm_shaped, steps=1, batch_size=16, eval_batch_size=16, out=str(tmp_path / "r"))
    assert train(config, task=task, progress=False, log=lambda *a: None)["status"] == "finished"


def test_the_model_names_memory_repeats_match_fpt_model():
    """fpt.memory sits below fpt.model, so it repeats two of its names; they must not drift apart."""
    from fpt import memory
    from fpt.model.dropout import ATTENTION
    from fpt.model.fast_paths import READ_POSITIONS_ONLY

    assert memory.CPU_DROPOUT_ATTENTION == ATTENTION
    assert memory.LAST_BLOCK_READS_POSITIONS_ONLY == READ_POSITIONS_ONLY

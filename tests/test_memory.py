"""Requests whose sizes cannot fit in memory are refused before anything is allocated (fpt.memory).

The available memory is mocked low, so each test asks for little and allocates nothing large: on
Linux a real oversized request is not refused by the allocator but grows until the OOM killer
ends the process (the long fuzz run, seed 1, case 846: `fpt reproduce --seeds 2147483648`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fpt import FPTError, RunConfig, TensorTask, train
from fpt.cli import main
from fpt.memory import available_bytes
from fpt.runs.checkpoint import read_checkpoint, resolve

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


def test_a_split_the_user_forced_beyond_memory_is_refused_before_the_run_directory(little_memory, quiet_gpt2, tmp_path):
    little_memory(MIB)
    config = RunConfig(
        backbone=quiet_gpt2,
        task_options={"val_size": 8, "test_size": 8},
        steps=1,
        batch_size=4096,
        grad_accum=2,  # the user split the batch: no other split is chosen for them
        out=str(tmp_path / "r"),
    )
    with pytest.raises(FPTError, match=r"--batch-size 4,096 \(passes of 2,048 examples.*--micro-batch-size"):
        train(config, progress=False, log=lambda *a: None)
    assert not (tmp_path / "r").exists()
    # the advice works: small passes fit (128 examples: about 0.6 MiB by the floor), and an
    # evaluation batch larger than the split is only the split
    small = RunConfig(**{**config.__dict__, "grad_accum": 1, "micro_batch_size": 128, "eval_batch_size": 10**6})
    assert train(small, progress=False, log=lambda *a: None)["status"] == "finished"


def _long_task(examples: int = 32, tokens: int = 60) -> TensorTask:
    x, y = torch.randint(1, 16, (examples, tokens)), torch.randint(0, 4, (examples,))
    return TensorTask((x, y), (x, y), (x, y), num_classes=4)


def test_a_batch_beyond_memory_runs_in_the_micro_batches_that_fit(little_memory, quiet_gpt2, tmp_path, monkeypatch):
    """Chosen for the user: the largest micro-batch (a divisor of the batch) whose floor fits with its headroom,
    said in one line and recorded; the run equals one with that --micro-batch-size forced. Evaluation
    batches are lowered likewise."""
    from fpt.training import batch_memory
    from fpt.training.loop import build_model

    task = _long_task()
    config = RunConfig(backbone=quiet_gpt2, steps=2, eval_every=2, batch_size=16, out=str(tmp_path / "auto"))
    need = batch_memory._training_need(config, task, build_model(config, task), torch.device("cpu"))
    monkeypatch.setattr(batch_memory, "SLACK", 0)  # the floor alone: this model's passes are a few MiB
    little_memory(int(need(4) * batch_memory.HEADROOM))  # 4 fits with its headroom, 8 does not, 16 not even bare
    lines = []
    auto = train(config, task=task, progress=False, log=lines.append)
    assert (auto["micro_batch"], auto["accumulation"]) == (4, 4)
    assert [line for line in lines if "does not fit" in line][0].startswith(
        "--batch-size 16 does not fit in memory in one pass"
    )
    recorded = yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())
    assert recorded["micro_batch_size"] == 4 and recorded["distributed"]["accumulation"] == 4
    assert 1 <= recorded["eval_batch_size"] < 32 and any("--eval-batch-size 256 does not fit" in x for x in lines)
    forced = train(
        replace(config, micro_batch_size=4, eval_batch_size=recorded["eval_batch_size"], out=str(tmp_path / "forced")),
        task=task,
        progress=False,
        log=lambda *a: None,
    )
    assert auto["test_accuracy"] == forced["test_accuracy"]
    ours, theirs = (read_checkpoint(resolve(tmp_path / run, "last"))[0] for run in ("auto", "forced"))
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)


def test_several_processes_split_their_batches_alike(little_memory, quiet_gpt2, tmp_path, monkeypatch):
    """Free memory may differ between processes: each takes the smallest micro-batch and evaluation batch any
    of them chose (gathered), its own included, so every process splits its batches as config.yaml records."""
    import accelerate.utils

    from fpt.training import batch_memory
    from fpt.training.loop import build_model

    task = _long_task()
    config = RunConfig(backbone=quiet_gpt2, steps=2, batch_size=16, out=str(tmp_path / "r"))
    model = build_model(config, task)
    need = batch_memory._training_need(config, task, model, torch.device("cpu"))
    monkeypatch.setattr(batch_memory, "SLACK", 0)
    little_memory(int(need(4) * batch_memory.HEADROOM))  # this process fits passes of 4, not 8
    alone = batch_memory.fit_to_memory(config, task, model, 1, torch.device("cpu"), lambda line: None)
    assert alone.micro_batch_size == 4 and alone.eval_batch_size < 256  # what this process chooses
    for other, expected in (((None, 10**6), (4, None)), ((2, 1), (2, 1))):  # another process's choice
        monkeypatch.setattr(accelerate.utils, "gather_object", lambda mine, other=other: [*mine, other])
        fitted = batch_memory.fit_to_memory(config, task, model, 2, torch.device("cpu"), lambda line: None)
        assert fitted.micro_batch_size == expected[0]
        assert fitted.eval_batch_size == (expected[1] or alone.eval_batch_size)


def test_a_pass_of_one_example_beyond_memory_is_refused(little_memory, quiet_gpt2, tmp_path):
    little_memory(3000)  # the 16 validation and test examples fit; a training pass of one (~4.5 KB) does not
    config = RunConfig(
        backbone=quiet_gpt2, task_options={"val_size": 8, "test_size": 8}, steps=1, out=str(tmp_path / "r")
    )
    with pytest.raises(FPTError, match="Even a pass of one example does not fit"):
        train(config, progress=False, log=lambda *a: None)
    assert not (tmp_path / "r").exists()


def test_a_bench_batch_beyond_memory_is_refused_before_measuring(little_memory, quiet_gpt2):
    from fpt.bench import BenchCase, BenchSettings, run_bench

    case = BenchCase("tiny", "bit-xor", quiet_gpt2, "random", batch_size=4, task_options={"val_size": 8})
    little_memory(MIB)
    with pytest.raises(FPTError, match="--batch-size 4,096"):
        run_bench(["tiny"], BenchSettings(batch_size=4096, memory=False, device="cpu"), {"tiny": case})


def test_eval_batches_beyond_memory_are_lowered_and_predict_batches_refused(
    little_memory, quiet_gpt2, tmp_path, capsys
):
    run = tmp_path / "run"
    config = RunConfig(
        backbone=quiet_gpt2, task_options={"val_size": 8, "test_size": 8}, steps=1, batch_size=4, out=str(run)
    )
    train(config, progress=False, log=lambda *a: None)
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.ones((64, 10, 1), np.float32))
    little_memory(16 * 1024)
    assert main(["eval", str(run), "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert "evaluating in batches of" in err and json.loads(out)["examples"] == 8
    assert main(["predict", str(run), "--input", str(inputs), "--device", "cpu"]) == 2
    assert "Prediction batches of 64 examples" in capsys.readouterr().err
    assert main(["predict", str(run), "--input", str(inputs), "--device", "cpu", "--batch-size", "2"]) == 0
    from fpt.model import load_run_model
    from fpt.tasks import get_task
    from fpt.training.batch_memory import eval_batch_that_fits

    model, task = load_run_model(run), get_task("bit-xor", val_size=8, test_size=8)
    little_memory(64)  # not even one example
    with pytest.raises(FPTError, match="An evaluation pass of one test example"):
        eval_batch_that_fits(model, task, "test", 256, "cpu")


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


def test_listops_length_batches_get_the_micro_batch_that_fits(little_memory, minilm_shaped, tmp_path):
    """ListOps' default (batch 16 of ~2,000 tokens) where ~20 GiB is free: micro-batches of 4 are chosen
    (their floor, ~12 GiB, with its headroom); a forced 8 is refused, naming 4."""
    from fpt.training.batch_memory import fit_to_memory
    from fpt.training.loop import build_model, require_training_memory

    inputs, targets = torch.randint(1, 16, (16, 2000)), torch.randint(0, 10, (16,))
    mask = torch.arange(2000) < torch.randint(1000, 2000, (16, 1))
    task = TensorTask((inputs, targets, mask), (inputs, targets, mask), (inputs, targets, mask), num_classes=10)
    config = RunConfig(backbone=minilm_shaped, steps=1, batch_size=16, out=str(tmp_path / "r"))
    little_memory(20 * 2**30)  # 16 x 12 heads x 2000^2 scores per layer: ~40 GiB by the floor, ~2.6 GiB an example
    model = build_model(config, task)  # not trained here: it would take ~14 GB
    lines = []
    fitted = fit_to_memory(config, task, model, 1, torch.device("cpu"), lines.append)
    assert fitted.micro_batch_size == 4 and "4 micro-batches of 4" in lines[0]
    require_training_memory(fitted, task, model, 1, torch.device("cpu"))
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

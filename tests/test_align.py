"""ORCA-style alignment: offline English text, the two distances, the stage in a run (align.jsonl,
summary.json, resume without re-aligning) and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from fpt import FPTError, RunConfig, train
from fpt.data.english import largest_topics, prose_by_topic
from fpt.model import FPTConfig, FrozenPretrainedTransformer
from fpt.tasks import TensorTask, get_task
from fpt.training import resume_config
from fpt.training.align import Distance, align

QUIET = dict(progress=False, log=lambda *a: None)
SMALL = {"val_size": 32, "test_size": 32}


def test_english_prose_is_offline_running_text():
    texts = prose_by_topic()
    assert len(texts) > 50 and "assert_stmt ::=" not in texts["assert"] and "debugging assertions" in texts["assert"]
    assert len(largest_topics(10)) == 10 and all(len(t) > 3000 for t in largest_topics(10).values())


@pytest.mark.parametrize("method", ["mmd", "otdd"])
def test_distances_vanish_on_identical_sets_and_carry_gradients(method):
    torch.manual_seed(0)
    source, labels = torch.randn(40, 6), torch.arange(40) % 4
    distance = Distance(method, source, labels)
    assert distance(source.clone(), labels).item() == pytest.approx(0, abs=1e-5)
    moved = (source + 1).requires_grad_()
    value = distance(moved, labels)
    value.backward()
    assert value.item() > 0.1 and moved.grad.abs().sum() > 0


def test_otdd_lowers_its_distance_and_touches_only_the_input_layer():
    task = get_task("bit-xor", **SMALL)
    torch.manual_seed(0)
    model = FrozenPretrainedTransformer(FPTConfig(**task.spec.model_fields()))
    before = {n: p.clone() for n, p in model.named_parameters()}
    records = align(model, task, "otdd", 10, 1e-2, 0, log=lambda *a: None)
    assert records[0]["distance"] > records[-1]["distance"] and len(records) == 11
    assert records[0]["text"].startswith("pydoc_data.topics") and records[0]["chunks"] == 500
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("embedder.") for n in changed)


def test_a_run_records_the_alignment_and_a_resume_does_not_repeat_it(tmp_path):
    out = tmp_path / "run"
    config = RunConfig(
        task="bit-xor",
        task_options=SMALL,
        align="mmd",
        align_steps=3,
        steps=2,
        eval_every=2,
        device="cpu",
        out=str(out),
    )
    summary = train(config, **QUIET)
    lines = (out / "align.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 2, 3]
    assert summary["method"] == "mmd+fpt" and summary["align"]["steps"] == 3
    assert summary["align"]["distance_before"] == json.loads(lines[0])["distance"]
    resumed = train(resume_config(out, steps=4), resume=True, **QUIET)
    assert (out / "align.jsonl").read_text().splitlines() == lines
    assert resumed["align"] == summary["align"] and resumed["steps"] == 4


def test_alignment_errors_say_what_to_do(monkeypatch, tiny_gpt2):
    task = get_task("bit-xor", **SMALL)
    frozen_input = FrozenPretrainedTransformer(FPTConfig(**task.spec.model_fields(), train="output"))
    with pytest.raises(FPTError, match="keeps frozen at its random start"):
        align(frozen_input, task, "otdd", 1, 1e-3, 0)
    no_tokenizer = FrozenPretrainedTransformer(FPTConfig(**task.spec.model_fields(), backbone=tiny_gpt2))
    with pytest.raises(FPTError, match="own tokenizer"):
        align(no_tokenizer, task, "mmd", 1, 1e-3, 0)
    with pytest.raises(FPTError, match="align must be mmd or otdd"):
        RunConfig(align="wasserstein")
    monkeypatch.setitem(sys.modules, "ot", None)
    with pytest.raises(FPTError, match=r"pip install -e '\.\[align\]'. in fpt's source folder"):
        Distance("otdd", torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))
    few = TensorTask(*[(torch.randn(n, 4, 3), torch.randint(0, 2, (n,))) for n in (36, 8, 8)])
    small_split = FrozenPretrainedTransformer(FPTConfig(**few.spec.model_fields()))
    with pytest.raises(FPTError, match="batches of 64 training examples, more than this task's training split"):
        align(small_split, few, "otdd", 1, 1e-3, 0)


@pytest.mark.slow
@pytest.mark.parametrize("flags", [["--train", "lora"], ["--align", "otdd", "--align-steps", "20"]])
def test_the_done_when_commands_run_offline(tmp_path, flags):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "fpt.cli", "train", "--task", "bit-xor", *flags, "--steps", "20", "--out", str(out)]
        + ["--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] in ("lora", "otdd+fpt") and summary["trainable_params"] > 0
    if "--align" in flags:
        assert summary["align"]["distance_after"] < summary["align"]["distance_before"]

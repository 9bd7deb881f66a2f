"""ListOps and remote homology: per-batch padding with masks, length limits reported, end-to-end runs."""

from __future__ import annotations

import logging

import pytest
import torch

from fpt.data import listops as listops_data
from fpt.errors import FPTError
from fpt.tasks import get_task, run_defaults
from fpt.training import RunConfig, train
from tests.datafiles import write_homology, write_listops


@pytest.fixture
def data_root(tmp_path):
    write_listops(tmp_path / "listops")
    write_homology(tmp_path / "remote-homology")
    return str(tmp_path)


def test_listops_batches_are_padded_to_their_longest_example(data_root):
    task = get_task("listops", data_dir=data_root)
    longest = max(int(task.lengths[s].max()) for s in ("train", "val", "test"))
    assert task.spec.max_length == longest and task.spec.input_kind == "discrete"
    assert task.spec.input_dim == len(listops_data.VOCAB)
    batch = next(task.eval_batches("test", 4))
    lengths = task.lengths["test"][:4]
    assert batch.inputs.shape == (4, int(lengths.max())) and torch.equal(batch.mask.sum(1), lengths)
    assert (batch.inputs[~batch.mask] == 0).all() and (batch.inputs[batch.mask] != 0).all()
    assert listops_data.VOCAB.index("]") in batch.inputs[0]  # the brackets are in the vocabulary


def test_listops_shorter_max_length_is_explicit_and_reported(data_root, caplog):
    with caplog.at_level(logging.WARNING):
        task = get_task("listops", data_dir=data_root, max_length=30)
    assert "longer than max_length 30" in caplog.text and "clipped" in caplog.text
    assert task.spec.max_length == 30 and task.split_size("test") == 10
    with caplog.at_level(logging.WARNING):
        skipping = get_task("listops", data_dir=data_root, max_length=30, overlong="skip")
    assert skipping.split_size("train") < 40 and skipping.split_size("test") == 10  # test is never cut short


def test_listops_paper_tokenizer_drops_brackets_and_cuts_and_pads_to_512(data_root, tmp_path):
    task = get_task("listops", data_dir=data_root, tokenizer="paper")
    vocabulary = listops_data.paper_vocabulary(tmp_path / "listops" / "basic_train.tsv")
    assert not any(c in word for word in vocabulary for c in "[]()")  # `[MAX` became `MAX`; brackets vanished
    assert {"MAX", "MIN", "MED", "SM"} <= set(vocabulary) and set("0123456789") <= set(vocabulary)
    assert task.spec.max_length == 512 and task.spec.input_dim == len(vocabulary) + 2
    assert task.options()["tokenizer"] == "paper" and task.options()["max_length"] == 512
    batch = next(task.eval_batches("test", 4))
    assert batch.inputs.shape == (4, 512) and batch.mask.all()  # padded to 512, the padding read as input
    first = (tmp_path / "listops" / "basic_test.tsv").read_text().splitlines()[1].split("\t")[0]
    words = first.translate(str.maketrans("[]()", "    ")).split()  # e.g. `[MAX 2 9 ]` -> MAX 2 9
    assert batch.inputs[0, : len(words)].tolist() == [vocabulary[w] for w in words]
    assert (batch.inputs[0, len(words) :] == 0).all()


def test_listops_paper_vocabulary_comes_from_the_first_training_examples(tmp_path):
    path = tmp_path / "basic_train.tsv"
    path.write_text("Source\tTarget\n[MAX 1 2 ]\t2\n[MIN 3 4 ]\t3\n")
    assert listops_data.paper_vocabulary(path, examples=1) == {"1": 1, "2": 2, "MAX": 3}
    read = listops_data.read_tsv(path, vocabulary={"1": 1, "2": 2, "MAX": 3})
    assert read.tokens[1].tolist() == [4, 4, 4]  # MIN, 3 and 4 were not in the first example: unknown id
    with pytest.raises(FPTError, match="tokenizer must be one of lra, paper"):
        get_task("listops", data_dir=str(tmp_path), tokenizer="bpe")


def test_homology_splits_and_options(data_root, caplog):
    task = get_task("remote-homology", data_dir=data_root, test_split="family")
    assert task.spec.num_classes == 1195 and task.split_sources["test"] == "remote_homology_test_family_holdout.lmdb"
    assert run_defaults("remote-homology") == {"lr": 1e-4}
    with caplog.at_level(logging.WARNING):
        get_task("remote-homology", data_dir=data_root, max_length=10)
    assert "longer than max_length 10" in caplog.text
    with pytest.raises(FPTError, match="test_split must be one of"):
        get_task("remote-homology", data_dir=data_root, test_split="class")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["listops", "remote-homology"])
def test_sequence_tasks_train_end_to_end(data_root, tmp_path, tiny_gpt2, task):
    summary = train(
        RunConfig(
            task=task,
            backbone=tiny_gpt2,
            init="random",
            steps=3,
            batch_size=4,
            eval_every=3,
            out=str(tmp_path / "run"),
            data_dir=data_root,
            device="cpu",
        ),
        progress=False,
        log=lambda *a: None,
    )
    assert summary["test_examples"] == (10 if task == "listops" else 12)
    assert summary["test_split"].startswith("basic_test.tsv" if task == "listops" else "remote_homology_test_fold")


def test_cli_data_generate_list_and_verify(tmp_path, capsys, monkeypatch):
    from fpt.cli import main

    root = str(tmp_path / "data")
    monkeypatch.setattr("fpt.training.progress.PHASE_DELAY", 0)  # every phase announced, however quick
    monkeypatch.setattr("fpt.training.progress.HEARTBEAT", 0)  # and the count at every example
    assert main(["data", "generate", "listops", "--data-dir", root, "--train", "8", "--val", "4", "--test", "4"]) == 0
    out, err = capsys.readouterr()
    assert "8 train, 4 val, 4 test" in out
    lines = err.splitlines()  # generating LRA's 100,000 examples takes minutes: the count and an ETA are shown
    assert lines[0] == "generating listops (16 examples) ..." and "1/16 examples" in lines[1] and "ETA" in lines[1]
    assert f"Wrote listops (16 examples) to {root}/listops" in err
    assert main(["data", "list", "--data-dir", root]) == 0
    assert "present" in [line for line in capsys.readouterr().out.splitlines() if "listops" in line][0]
    assert main(["data", "verify", "mnist", "--data-dir", root]) == 2
    assert "fpt data download mnist" in capsys.readouterr().err


def test_training_split_smaller_than_a_batch_is_refused_before_training(tmp_path, capsys):
    """A generated dataset cut too small (3 examples, batch 16) is named as the problem, with the fix,
    instead of failing inside the step on a short batch; no run directory is left behind."""
    from fpt.cli import main

    root = str(tmp_path / "data")
    short = ["--min-length", "20", "--max-length", "50"]  # short examples: the memory check passes first
    assert (
        main(["data", "generate", "listops", "--data-dir", root, "--train", "3", "--val", "2", "--test", "2", *short])
        == 0
    )
    out = tmp_path / "run"
    argv = ["train", "--task", "listops", "--data-dir", root, "--steps", "2", "--out", str(out), "--backbone"]
    assert main([*argv, "minilm", "--batch-size", "16"]) == 2
    err = capsys.readouterr().err
    assert "training split has 3 examples, fewer than one batch of 16" in err
    assert "fpt data generate <name> --force" in err
    assert not out.exists()

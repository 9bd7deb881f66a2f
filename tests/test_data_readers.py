"""Readers for the real formats: round trips on tiny fixtures, and a clear error for each kind of bad file."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from fpt.data import cifar, idx, listops, tape
from fpt.errors import FPTError
from tests.datafiles import idx_bytes, write_cifar, write_lmdb


def test_idx_round_trip_gzipped_or_not(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(images))
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(images)))
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "a"), images)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "a.gz"), images)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: gzip.compress(b)[:-30], "damaged gzip"),
        (lambda b: b"\x12\x34" + b[2:], "magic number"),
        (lambda b: b[:-5], "truncated"),
    ],
)
def test_idx_bad_files_name_the_file(tmp_path, damage, message):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(damage(idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))))
    with pytest.raises(FPTError, match=message) as err:
        idx.read_idx(path)
    assert str(path) in str(err.value)


def test_cifar_batch_reads_and_rejects_other_pickles(tmp_path):
    write_cifar(tmp_path, per_batch=3)
    images, labels = cifar.read_split(tmp_path / "cifar-10-batches-py", cifar.TRAIN_BATCHES)
    assert images.shape == (15, 3, 32, 32) and images.dtype == np.uint8 and labels.shape == (15,)
    (tmp_path / "other").write_bytes(pickle.dumps({b"fine_labels": [1], b"data": np.zeros((1, 3072), np.uint8)}))
    with pytest.raises(FPTError, match="not a CIFAR-10 python batch"):
        cifar.read_batch(tmp_path / "other")
    (tmp_path / "evil").write_bytes(pickle.dumps(print))  # code, not data: never executed
    with pytest.raises(FPTError, match="refusing to load"):
        cifar.read_batch(tmp_path / "evil")
    (tmp_path / "labels").write_bytes(pickle.dumps({b"labels": [10], b"data": np.zeros((1, 3072), np.uint8)}))
    with pytest.raises(FPTError, match=r"labels must be in \[0, 10\)"):
        cifar.read_batch(tmp_path / "labels")


def test_listops_tokens_keep_the_brackets(tmp_path):
    path = tmp_path / "basic_train.tsv"
    path.write_text("Source\tTarget\n( ( ( [MAX 2 ) ( ( [SM 4 ) 9 ) ] ) ] )\t3\n")
    split = listops.read_tsv(path)
    assert [listops.VOCAB[i] for i in split.tokens[0]] == ["[MAX", "2", "[SM", "4", "9", "]", "]"]
    assert split.targets.tolist() == [3]
    with_parens = listops.read_tsv(path, parentheses=True)
    assert len(with_parens.tokens[0]) == 7 + 10


@pytest.mark.parametrize("line", ["[MAX 2 ]\t11", "[MAX 2 ]", "[MAX 2 x ]\t2", "[MAX 12 ]\t2"])
def test_listops_malformed_line_is_reported_with_its_number(tmp_path, line):
    path = tmp_path / "basic_val.tsv"
    path.write_text(f"Source\tTarget\n[MIN 1 ]\t1\n{line}\n")
    with pytest.raises(FPTError, match="line 3"):
        listops.read_tsv(path)


def test_listops_generator_follows_the_lra_recipe_and_is_deterministic(tmp_path):
    a = listops.generate(tmp_path / "a", seed=3, train=30, val=5, test=5, min_length=20, max_length=200)
    b = listops.generate(tmp_path / "b", seed=3, train=30, val=5, test=5, min_length=20, max_length=200)
    assert all(a[s].read_bytes() == b[s].read_bytes() for s in a)
    data = {s: listops.read_tsv(p) for s, p in a.items()}
    sources = set()
    for split in data.values():
        for ids, value in zip(split.tokens, split.targets, strict=False):
            assert 20 < len(ids) < 200
            assert _evaluate([listops.VOCAB[i] for i in ids]) == value
            sources.add(ids.tobytes())
    assert len(sources) == 40  # distinct across splits


def _evaluate(tokens: list[str]) -> int:
    """Reference evaluator of a bracketed expression (independent of the generator)."""
    ops = {"[MAX": max, "[MIN": min, "[MED": lambda v: int(np.median(v)), "[SM": lambda v: sum(v) % 10}
    stack: list = []
    for token in tokens:
        if token in ops:
            stack.append([token])
        elif token == "]":
            op, *args = stack.pop()
            value = ops[op](args)
            if stack:
                stack[-1].append(value)
            else:
                return value
        else:
            stack[-1].append(int(token)) if stack else stack.append(int(token))
    return stack[0]


def test_tape_lmdb_reads_and_reports_bad_records(tmp_path):
    good = write_lmdb(
        tmp_path / "good.lmdb", [{"primary": "MKTAYX", "fold_label": 7, "evolutionary": np.zeros((6, 2))}]
    )
    split = tape.read_lmdb(good)
    assert split.targets.tolist() == [7] and "".join(tape.VOCAB[i] for i in split.tokens[0]) == "MKTAYX"
    cases = {
        "nocount.lmdb": ([{"primary": "MK", "fold_label": 1}], False, "num_examples"),
        "short.lmdb": ([{"primary": "MK", "fold_label": 1}], 2, "no key"),
        "keys.lmdb": ([{"sequence": "MK", "fold_label": 1}], None, "'primary'"),
        "range.lmdb": ([{"primary": "MK", "fold_label": 1195}], None, r"outside \[0, 1195\)"),
        "letters.lmdb": ([{"primary": "MK1", "fold_label": 1}], None, "amino-acid alphabet"),
    }
    for name, (records, count, message) in cases.items():
        path = write_lmdb(tmp_path / name, records, count)
        with pytest.raises(FPTError, match=message) as err:
            tape.read_lmdb(path)
        assert name in str(err.value)

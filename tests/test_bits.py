"""The synthetic bit tasks: shapes, correctness of targets, determinism, fixed eval splits."""

from __future__ import annotations

import pytest
import torch

from fpt import FPTError, get_task


@pytest.mark.parametrize(("encoding", "values"), [(None, {0.0, 1.0}), ("01", {0.0, 1.0}), ("pm1", {-1.0, 1.0})])
def test_bit_xor_targets_are_the_xor_of_the_two_strings(encoding, values):
    task = get_task("bit-xor", **({"encoding": encoding} if encoding else {}))  # default 0/1, the authors' inputs
    assert (task.spec.max_length, task.spec.input_dim, task.spec.output_tokens) == (10, 1, 5)
    assert task.options()["encoding"] == (encoding or "01")
    batch = next(task.train_batches(64, seed=0))
    bits = batch.inputs.reshape(64, 10)
    assert set(bits.unique().tolist()) == values
    assert torch.equal(batch.targets.bool(), bits[:, :5] != bits[:, 5:])


def test_bit_xor_encodings_draw_the_same_bits():
    """The two encodings differ only in the input values: same stream, same targets."""
    a, b = (next(get_task("bit-xor", encoding=e).train_batches(8, seed=3)) for e in ("01", "pm1"))
    assert torch.equal(a.targets, b.targets) and torch.equal(a.inputs, (b.inputs > 0).float())


def test_bit_memory_query_is_a_masked_copy_of_one_string():
    task = get_task("bit-memory", n_strings=3, n_bits=40, bits_per_token=10, mask_prob=0.5)
    assert (task.spec.max_length, task.spec.output_tokens, task.spec.outputs_per_token) == (16, 4, 10)
    batch = next(task.train_batches(32, seed=1))
    flat = batch.inputs.reshape(32, 4, 40)
    strings, query = flat[:, :3], flat[:, 3]
    target = batch.targets.float() * 2 - 1
    for i in range(32):
        assert any(torch.equal(strings[i, j], target[i]) for j in range(3))
    shown = query != 0
    assert torch.equal(query[shown], target[shown])
    assert 0.35 < shown.float().mean() < 0.65


def test_default_bit_memory_matches_the_paper():
    task = get_task("bit-memory")
    assert (task.spec.max_length, task.spec.input_dim, task.spec.output_tokens) == (120, 50, 20)


def test_streams_are_seeded_and_eval_splits_fixed_and_distinct():
    task = get_task("bit-xor", n_bits=8, val_size=1000, test_size=1200)
    a = next(task.train_batches(16, seed=3)).inputs
    assert torch.equal(a, next(task.train_batches(16, seed=3)).inputs)
    assert not torch.equal(a, next(task.train_batches(16, seed=4)).inputs)
    val = torch.cat([b.inputs for b in task.eval_batches("val", 300)])
    test = torch.cat([b.inputs for b in get_task("bit-xor", n_bits=8, test_size=1200).eval_batches("test", 512)])
    assert len(val) == 1000 and len(test) == 1200
    assert not torch.equal(val[:10], test[:10])
    again = torch.cat([b.inputs for b in get_task("bit-xor", n_bits=8).eval_batches("val", 7)])
    assert torch.equal(val, again)


def test_bad_sizes_and_options():
    with pytest.raises(FPTError, match="multiple"):
        get_task("bit-memory", n_bits=1000, bits_per_token=33)
    with pytest.raises(FPTError, match="unknown option"):
        get_task("bit-xor", width=3)
    with pytest.raises(FPTError, match="encoding must be"):
        get_task("bit-xor", encoding="+-1")


def test_cli_reads_encoding_01_as_a_name_not_a_number():
    from fpt.cli import _parse_options

    assert _parse_options(["encoding=01", "n_bits=5", "val_size=0100"]) == {
        "encoding": "01",
        "n_bits": 5,
        "val_size": "0100",
    }

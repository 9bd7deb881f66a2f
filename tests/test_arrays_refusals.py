"""Own data that cannot work gets an FPTError naming what is wrong, before any model is built: arrays of
different lengths, token or class ids far beyond their count (2^40 asked for terabytes, reported as
"lower --batch-size"), a file that is not a .npz, and a model whose vocabulary a split's ids exceed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fpt import FPTConfig, FPTError, FrozenPretrainedTransformer, TensorTask, evaluate
from fpt.cli import main


def _train(tmp_path, tiny_gpt2, **arrays) -> list[str]:
    np.savez(tmp_path / "data.npz", **arrays)
    return ["train", "--task", "arrays", "--task-option", f"path={tmp_path / 'data.npz'}", "--backbone", tiny_gpt2]


def _ids(rng, largest: int | None = None) -> np.ndarray:
    ids = rng.integers(0, 10, (60, 8))
    if largest is not None:
        ids[-1, 0] = largest
    return ids


@pytest.mark.parametrize(
    ("arrays", "said"),
    [
        (dict(inputs=np.zeros((60, 8, 4), np.float32), targets=np.zeros(50, np.int64)), "inputs hold 60 examples and targets 50"),
        (dict(inputs=np.zeros((60, 8, 4), np.float32), targets=np.zeros(60, np.int64), mask=np.ones((59, 8), bool)), "inputs hold 60 examples and mask 59"),
        (dict(inputs="ids:2**40", targets=np.zeros(60, np.int64)), "An input embedding of 1,099,511,627,777 token ids x 32 .the largest token id is 1,099,511,627,776."),
        (dict(inputs="ids", targets=np.r_[np.zeros(59, np.int64), [2**40]]), "An output layer of 1 unit.s. x 1,099,511,627,777 classes"),
    ],
)  # fmt: skip
def test_impossible_arrays_are_refused_naming_what_is_wrong(tmp_path, tiny_gpt2, capsys, arrays, said):
    rng = np.random.default_rng(0)
    if isinstance(arrays["inputs"], str):
        arrays["inputs"] = _ids(rng, 2**40 if arrays["inputs"].endswith("40") else None)
    argv = _train(tmp_path, tiny_gpt2, **arrays)
    assert main([*argv, "--steps", "2", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert __import__("re").search(said, err), err
    assert "Out of memory" not in err and "Traceback" not in err


def test_a_text_file_named_npz_is_not_called_pickled(tmp_path, capsys):
    (tmp_path / "data.npz").write_text("inputs,targets\n1,0\n")
    assert main(["train", "--task", "arrays", "--task-option", f"path={tmp_path / 'data.npz'}", "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "is not a .npz archive" in err and "numpy.savez" in err and "pickle" not in err


def test_uint8_token_ids_train(tmp_path, tiny_gpt2, capsys):
    rng = np.random.default_rng(0)
    argv = _train(tmp_path, tiny_gpt2, inputs=_ids(rng).astype(np.uint8), targets=rng.integers(0, 2, 60))
    assert main([*argv, "--steps", "2", "--eval-every", "2", "--batch-size", "4", "--out", str(tmp_path / "r")]) == 0


def test_a_split_whose_ids_exceed_the_models_vocabulary_is_named(tiny_gpt2):
    """A model built from a task whose splits hold ids 0..9, evaluated on one whose test split reaches 50."""
    rng = np.random.default_rng(0)
    x, y = torch.from_numpy(_ids(rng)), torch.zeros(60, dtype=torch.long)
    seen = TensorTask((x[:40], y[:40]), (x[40:50], y[40:50]), (x[50:], y[50:]))
    model = FrozenPretrainedTransformer(FPTConfig(**seen.spec.model_fields(), backbone=tiny_gpt2))
    wider = x.clone()
    wider[55, 0] = 50
    other = TensorTask((x[:40], y[:40]), (x[40:50], y[40:50]), (wider[50:], y[50:]))
    with pytest.raises(
        FPTError, match="the test split holds token ids up to 50, and the model's input embedding has 10"
    ):
        evaluate(model, other, "test")


def test_a_continuous_input_width_beyond_memory_is_refused_before_allocating(tiny_gpt2):
    """Found by the fuzz run: from_pretrained of a config.json with input_dim 2^40 ended in torch's allocation error."""
    with pytest.raises(FPTError, match="An input layer of 1,099,511,627,776 values per token x 32"):
        FrozenPretrainedTransformer(FPTConfig(input_dim=2**40, max_length=4, num_classes=2, backbone=tiny_gpt2))

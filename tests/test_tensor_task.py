"""TensorTask refuses data that would train on something other than what the user meant, before any
step: fractional targets, splits that disagree with train, padding the head would read, empty splits."""

from __future__ import annotations

import pytest
import torch

from fpt import FPTError, RunConfig, TensorTask, train


def split(n=8, tokens=6, width=4, units=1, dtype=torch.float32):
    x = torch.randn(n, tokens, width).to(dtype)
    return x, torch.randint(0, 2, (n, units))


@pytest.mark.parametrize(
    "train_split, val_split, match",
    [
        ((torch.randn(8, 6, 4), torch.rand(8) * 0.9 + 0.05), split(), "fractional"),
        (split(), (torch.randn(8, 6, 4), torch.randint(0, 2, (8, 3))), "target unit"),
        (split(), split(width=5), "same tokens, width and units"),
        (split(), split(tokens=7), "same tokens, width and units"),
        (split(), (torch.randint(0, 5, (8, 6)), torch.zeros(8)), "same tokens"),
        (split(), split(n=0), "empty"),
        (split(n=0), split(), "empty"),
        ((torch.randint(-3, 5, (8, 6)), torch.zeros(8)), (torch.randint(0, 5, (8, 6)), torch.zeros(8)), "non-negative"),
        (split(), (torch.randn(8, 6, 4), -torch.ones(8)), "from 0"),
        (split(), (torch.randn(8, 6, 4), torch.zeros(8), torch.ones(8, 6)), None),
        (split(), (torch.randn(8, 6, 4), torch.zeros(8), torch.tensor([[0, 1, 1, 1, 1, 1]] * 8)), "right padding"),
        (split(), (torch.randn(8, 6, 4), torch.zeros(8), torch.zeros(8, 6, dtype=torch.bool)), "right padding"),
        (split(), (torch.randn(8, 6, 4), torch.zeros(8), torch.full((8, 6), 0.5)), "mask must be"),
        (split(), "not a split", "must be a tuple"),
        (split(), ([["a"]], [1]), "numeric"),
    ],
)
def test_bad_splits_are_refused_up_front(train_split, val_split, match):
    if match is None:
        TensorTask(train_split, val_split, split())
        return
    with pytest.raises(FPTError, match=match):
        TensorTask(train_split, val_split, split())


def test_whole_float_targets_and_float64_inputs_are_converted():
    x = torch.randn(8, 6, 4, dtype=torch.float64)
    task = TensorTask((x, torch.ones(8, dtype=torch.float64)), split(), split())
    inputs, targets, _ = task.data["train"]
    assert inputs.dtype == torch.float32 and targets.dtype == torch.long and targets.sum() == 8


def test_float64_inputs_train(tmp_path, quiet_gpt2):
    x = torch.randn(24, 6, 4, dtype=torch.float64)
    y = (x[:, :, 0].sum(1) > 0).long()
    task = TensorTask((x[:16], y[:16]), (x[16:20], y[16:20]), (x[20:], y[20:]))
    config = RunConfig(backbone=quiet_gpt2, steps=2, eval_every=1, batch_size=4, out=str(tmp_path / "r"))
    assert train(config, task=task, progress=False, log=lambda *a: None)["test_examples"] == 4

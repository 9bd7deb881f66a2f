"""What every task declares (`augment`, `split_sources`, `examples`) and the one way a `Batch` is cut."""

from __future__ import annotations

import pytest
import torch

from fpt.errors import FPTError
from fpt.tasks import Batch, Task, TaskSpec, TensorTask, get_task
from tests.datafiles import write_mnist


def test_batch_rows_cut_inputs_targets_and_mask_alike():
    batch = Batch(torch.arange(24.0).reshape(6, 2, 2), torch.arange(6).reshape(6, 1), torch.rand(6, 2) > 0.5)
    for index in (slice(1, 4), torch.tensor([5, 0, 3])):
        part = batch.rows(index)
        expected = index.tolist() if isinstance(index, torch.Tensor) else list(range(6))[index]
        assert part.targets.reshape(-1).tolist() == expected
        assert torch.equal(part.inputs, batch.inputs[expected]) and torch.equal(part.mask, batch.mask[expected])
    assert (
        batch.rows(slice(0, 2)).mask is not None and Batch(batch.inputs, batch.targets).rows(slice(0, 2)).mask is None
    )
    chunks = list(batch.chunks(4))
    assert [len(c) for c in chunks] == [4, 2]
    assert torch.equal(torch.cat([c.inputs for c in chunks]), batch.inputs)


class Generated(Task):
    """A task outside the package that sets only what the base class requires."""

    name = "generated"
    spec = TaskSpec("continuous", 2, 3, 2)

    def train_batches(self, batch_size, seed):
        while True:
            yield Batch(torch.rand(batch_size, 3, 2), torch.zeros(batch_size, 1, dtype=torch.long))

    def eval_batches(self, split, batch_size):
        yield Batch(torch.ones(batch_size, 3, 2), torch.zeros(batch_size, 1, dtype=torch.long))

    def split_size(self, split):
        return 4


def test_a_task_gets_the_declared_defaults():
    task = Generated()
    assert task.augment is False and dict(task.split_sources) == {}
    assert [len(b) for b in task.examples("val", 4)] == [4]  # the evaluation splits, as eval_batches gives them
    with pytest.raises(FPTError, match="generated stream"):
        task.examples("train", 4)
    with pytest.raises(TypeError):  # the shared default cannot be changed by accident
        task.split_sources["val"] = "x"  # type: ignore[index]


def test_tensor_task_examples_list_every_split_in_order():
    x = torch.arange(10 * 3 * 2, dtype=torch.float32).reshape(10, 3, 2)
    y = torch.arange(10) % 2
    task = TensorTask((x[:6], y[:6]), (x[6:8], y[6:8]), (x[8:], y[8:]))
    train = list(task.examples("train", 4))
    assert [len(b) for b in train] == [4, 2] and torch.equal(torch.cat([b.inputs for b in train]), x[:6])
    assert torch.equal(torch.cat([b.inputs for b in task.examples("test", 4)]), x[8:])


def test_image_examples_are_the_training_tokens_without_augmentation(tmp_path):
    write_mnist(tmp_path / "mnist", n_train=30, n_test=10)
    task = get_task("mnist", data_dir=str(tmp_path), val_size=10)
    assert task.augment is False and "of train, seed" in task.split_sources["val"]
    listed = torch.cat([b.inputs for b in task.examples("train", 8)])
    streamed = next(task.train_batches(20, seed=0))  # one epoch, shuffled
    order = torch.randperm(20, generator=torch.Generator().manual_seed(0))
    assert listed.shape == (20, 49, 16) and torch.equal(streamed.inputs, listed[order])

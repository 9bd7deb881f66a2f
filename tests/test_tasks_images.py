"""Image tasks: patches, normalisation, augmentation, splits, and short end-to-end runs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fpt.errors import FPTError
from fpt.tasks import get_task
from fpt.tasks.images import augment, carve_validation, patchify
from fpt.training import RunConfig, train
from tests.datafiles import debian_fashion_mnist, write_cifar, write_mnist


def test_patchify_is_row_major_patches():
    images = torch.arange(2 * 3 * 8 * 8).float().reshape(2, 3, 8, 8)
    tokens = patchify(images, 4)
    assert tokens.shape == (2, 4, 48)
    # token 1 is the top-right patch; its values are (row, col, channel) ordered
    expected = images[0, :, 0:4, 4:8].permute(1, 2, 0).reshape(-1)
    assert torch.equal(tokens[0, 1], expected)


def test_augmentation_is_a_crop_flip_or_rotation_of_the_image():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(64, 3, 8, 8)
    # no rotation: every output is the image shifted by at most 4 pixels (zero fill), maybe flipped
    out = augment(images, generator, pad=4, max_degrees=0.0)
    padded = F.pad(images, (4, 4, 4, 4))
    for x, y in zip(padded, out, strict=False):
        candidates = [x[:, i : i + 8, j : j + 8] for i in range(9) for j in range(9)]
        candidates += [c.flip(-1) for c in candidates]
        assert min((c - y).abs().max().item() for c in candidates) < 1e-5
    # with rotation: a centred square rotates, pixel mass stays roughly the same
    square = torch.zeros(16, 1, 32, 32)
    square[:, :, 12:20, 12:20] = 1
    rotated = augment(square, generator, pad=0, max_degrees=20.0)
    assert (rotated.sum(dim=(1, 2, 3)) - 64).abs().max() < 6
    assert not torch.equal(rotated, square) and math.isfinite(rotated.sum().item())


def test_mnist_task_splits_shapes_and_normalisation(tmp_path):
    write_mnist(tmp_path / "mnist", n_train=60, n_test=20)
    task = get_task("mnist", data_dir=str(tmp_path), val_size=10)
    assert task.spec.input_dim == 16 and task.spec.max_length == 49 and task.spec.num_classes == 10
    assert {s: task.split_size(s) for s in ("train", "val", "test")} == {"train": 50, "val": 10, "test": 20}
    batch = next(task.train_batches(50, seed=0))  # one epoch: every training image once
    assert batch.inputs.shape == (50, 49, 16) and batch.mask is None
    assert abs(batch.inputs.mean().item()) < 1e-4 and abs(batch.inputs.std().item() - 1) < 1e-2
    assert sum(len(b) for b in task.eval_batches("test", 7)) == 20  # full pass, nothing dropped
    train_idx, val_idx = carve_validation(60, 10)
    assert set(train_idx.tolist()).isdisjoint(val_idx.tolist()) and torch.equal(val_idx, carve_validation(60, 10)[1])
    assert get_task("mnist", data_dir=str(tmp_path), val_size=10, patch_size=7).spec.max_length == 16
    with pytest.raises(FPTError, match=r"patch_size \(5\) must divide"):
        get_task("mnist", data_dir=str(tmp_path), val_size=10, patch_size=5)


def test_test_size_takes_a_fixed_subset_of_the_test_split_and_says_so(tmp_path):
    write_mnist(tmp_path / "mnist", n_train=60, n_test=20)
    full = get_task("mnist", data_dir=str(tmp_path), val_size=10)
    quick = get_task("mnist", data_dir=str(tmp_path), val_size=10, test_size=8)
    assert quick.split_size("test") == 8 and quick.options()["test_size"] == 8 and full.options()["test_size"] is None
    assert "8 of t10k" in quick.split_sources["test"] and "official test, 20" in full.split_sources["test"]
    images = lambda task: next(task.eval_batches("test", 100)).inputs
    subset = images(quick)
    assert torch.equal(subset, images(get_task("mnist", data_dir=str(tmp_path), val_size=10, test_size=8)))  # fixed
    assert all(any(torch.equal(x, y) for y in images(full)) for x in subset)  # drawn from the official split
    with pytest.raises(FPTError, match="test_size"):
        get_task("mnist", data_dir=str(tmp_path), val_size=10, test_size=0)


def test_cifar_tasks_shapes(tmp_path):
    write_cifar(tmp_path / "cifar10", per_batch=4)
    colour = get_task("cifar10", data_dir=str(tmp_path), val_size=4)
    gray = get_task("cifar10-lra", data_dir=str(tmp_path), val_size=4)
    assert (colour.spec.max_length, colour.spec.input_dim) == (64, 48)
    assert (gray.spec.max_length, gray.spec.input_dim) == (1024, 1)
    assert colour.augment and not gray.augment
    first = next(colour.train_batches(8, seed=1))
    assert first.inputs.shape == (8, 64, 48)
    assert torch.equal(first.inputs, next(colour.train_batches(8, seed=1)).inputs)  # seeded, augmentation included
    assert next(gray.eval_batches("test", 4)).inputs.shape == (4, 1024, 1)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["mnist", "cifar10", "cifar10-lra"])
def test_image_tasks_train_end_to_end(tmp_path, tiny_gpt2, task):
    write_mnist(tmp_path / "mnist", n_train=40, n_test=12)
    write_cifar(tmp_path / "cifar10", per_batch=6)
    summary = train(
        RunConfig(
            task=task,
            task_options={"val_size": 8},
            backbone=tiny_gpt2,
            init="random",
            steps=3,
            batch_size=4,
            eval_every=3,
            out=str(tmp_path / "run"),
            data_dir=str(tmp_path),
            device="cpu",
        ),
        progress=False,
        log=lambda *a: None,
    )
    assert summary["test_examples"] == (12 if task == "mnist" else 6)
    assert "official test" in summary["test_split"] and "seed" in summary["val_split"]


@pytest.mark.slow
@debian_fashion_mnist
def test_real_fashion_mnist_end_to_end(tmp_path, tiny_gpt2):
    summary = train(
        RunConfig(
            task="fashion-mnist",
            backbone=tiny_gpt2,
            init="random",
            steps=4,
            batch_size=8,
            eval_every=4,
            out=str(tmp_path / "run"),
            device="cpu",
            data_dir=str(tmp_path),
        ),
        progress=False,
        log=lambda *a: None,
    )
    assert summary["test_examples"] == 10000 and summary["test_split"].startswith("t10k")

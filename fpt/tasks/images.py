"""Image classification as a token sequence: MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-10 LRA.

An image becomes a sequence of non-overlapping patches, each flattened to one token (4x4 patches:
MNIST 28x28 -> 49 tokens of 16 values, CIFAR-10 -> 64 tokens of 48); CIFAR-10 LRA is grayscale,
one pixel per token (1024 tokens). Images stay in memory as uint8; each batch is normalised with
the training split's per-channel mean and std and cut into patches by tensor reshapes.

CIFAR-10 training batches are augmented as in the paper, in one vectorised `grid_sample` per batch:
random crop with 4 pixels of zero padding, horizontal flip and rotation up to 20 degrees.
Validation is carved from the training split with a fixed seed (these datasets have none); test is
the official test split, evaluated in full unless `test_size` asks for a fixed random subset of it
(for quick runs; the subset is named in the run's summary).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from fpt.data import cifar
from fpt.data.catalog import read_idx_pair
from fpt.data.registry import require
from fpt.errors import FPTError
from fpt.tasks.base import Batch, TaskSpec
from fpt.tasks.stream import StreamCursor
from fpt.tasks.tensors import TensorTask

VAL_SPLIT_SEED = 1_000_003
TEST_SUBSET_SEED = 1_000_033
# A full validation pass costs as much as ~100 training steps of batch 16: validate every 500 steps.
RUN_DEFAULTS = {"eval_every": 500}
GRAY = torch.tensor([0.2989, 0.5870, 0.1140])  # ITU-R 601 luma, as tf.image.rgb_to_grayscale (LRA)


def carve_validation(n: int, val_size: int, seed: int = VAL_SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) of a fixed random split of n training examples."""
    if not 0 < val_size < n:
        raise FPTError(f"val_size must be between 1 and {n - 1} (the training split has {n} examples); got {val_size}.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[val_size:].sort().values, order[:val_size].sort().values


def test_subset(images: torch.Tensor, labels: torch.Tensor, test_size: int | None, official: str):
    """The official test split, or a fixed random subset of `test_size` of it; and its description."""
    if test_size is None:
        return (images, labels), f"{official} (official test, {len(labels)})"
    if not 0 < test_size <= len(labels):
        raise FPTError(f"test_size must be between 1 and {len(labels)} (the official test split); got {test_size}.")
    keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(TEST_SUBSET_SEED))[:test_size]
    keep = keep.sort().values
    return (images[keep], labels[keep]), f"{test_size} of {official}, seed {TEST_SUBSET_SEED} (not the full test split)"


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut images into the paper's patch tokens: (b, c, h, w) -> (b, h/p * w/p, p * p * c), patches in
    row-major order, each flattened as (rows, cols, channels). `p` must divide h and w. Public: what the
    image tasks feed the model; `image_tokens` takes numpy-style (n, h, w[, c]) images."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // patch) * (w // patch), patch * patch * c)


def image_tokens(images: np.ndarray, patch_size: int) -> torch.Tensor:
    """Images (n, h, w) or channels-last (n, h, w, c), uint8 (scaled to [0, 1]) or float, as patch tokens
    (n, h/p * w/p, p * p * c): how to feed your own images to a TensorTask (normalise them as you like)."""
    x = torch.as_tensor(np.asarray(images))
    if x.dim() not in (3, 4):
        raise FPTError(f"Images must be (n, h, w) or (n, h, w, channels); got shape {tuple(x.shape)}.")
    x = (x.float() / 255 if x.dtype == torch.uint8 else x.float()).reshape(*x.shape[:3], -1).permute(0, 3, 1, 2)
    if x.shape[2] % patch_size or x.shape[3] % patch_size:
        raise FPTError(f"patch_size {patch_size} must divide the image size {x.shape[2]}x{x.shape[3]}.")
    return patchify(x, patch_size)


def augment(images: torch.Tensor, generator: torch.Generator, pad: int = 4, max_degrees: float = 20.0) -> torch.Tensor:
    """Random crop (zero padding `pad`), horizontal flip and rotation, one affine warp for the batch.

    Sampling output pixel p reads the input at shift(flip(rotate(p))); pixels that land outside the
    image are zero, exactly as padding-then-cropping and zero-filled rotation would give.
    """
    b, _, h, w = images.shape
    angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(max_degrees)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    shift = torch.randint(-pad, pad + 1, (b, 2), generator=generator).float()
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(b, 2, 3)
    # grid coordinates are in [-1, 1]; a shift of s pixels is 2s / size in those units
    theta[:, 0, 0], theta[:, 0, 1] = flip * cos, -flip * sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    theta[:, 0, 2], theta[:, 1, 2] = 2 * shift[:, 0] / w, 2 * shift[:, 1] / h
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images scaled to [0, 1], shaped (1, c, 1, 1) to broadcast."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].double().div_(255)
        total += x.sum(dim=(0, 2, 3))
        squares += x.square().sum(dim=(0, 2, 3))
    count = images.numel() / images.shape[1]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(1e-12).sqrt()
    return mean.float().reshape(1, -1, 1, 1), std.float().reshape(1, -1, 1, 1)


class ImageTask(TensorTask):
    """Classify uint8 images (n, c, h, w) given per split, as patch tokens."""

    def __init__(
        self,
        name: str,
        train: tuple,
        val: tuple,
        test: tuple,
        patch_size: int,
        augment: bool,
        options: dict,
        split_sources: dict[str, str],
    ):
        self.name, self.patch_size, self.augment, self._options = name, patch_size, augment, options
        self.split_sources = split_sources
        self.data = {}
        for split, (images, labels) in (("train", train), ("val", val), ("test", test)):
            self.data[split] = (torch.as_tensor(images), torch.as_tensor(labels).long().reshape(-1, 1), None)
        images = self.data["train"][0]
        c, h, w = images.shape[1:]
        if patch_size < 1 or h % patch_size or w % patch_size:
            raise FPTError(f"{name}: patch_size {patch_size} must divide the image size {h}x{w}.")
        self.mean, self.std = channel_stats(images)
        self.spec = TaskSpec("continuous", patch_size * patch_size * c, (h // patch_size) * (w // patch_size), 10)

    def options(self) -> dict:
        return dict(self._options)

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1] -> normalised patch tokens."""
        return patchify((images - self.mean) / self.std, self.patch_size)

    def _pixels(self, split: str, index: torch.Tensor | slice) -> Batch:
        """The images at `index` as floats in [0, 1], not yet cut into tokens."""
        batch = Batch(*self.data[split]).rows(index)
        return Batch(batch.inputs.float().div_(255), batch.targets)

    def _take(self, split: str, index: torch.Tensor | slice) -> Batch:
        batch = self._pixels(split, index)
        return Batch(self.tokens(batch.inputs), batch.targets)

    def train_batches(self, batch_size: int, seed: int, cursor: StreamCursor | None = None) -> Iterator[Batch]:
        cursor = cursor or StreamCursor()
        generator = cursor.generator("augment", seed + 7919)  # augmentation stream, apart from the shuffling
        for index in self.train_order(batch_size, seed, cursor):
            batch = self._pixels("train", index)
            pixels = augment(batch.inputs, generator) if self.augment else batch.inputs
            yield Batch(self.tokens(pixels), batch.targets)


def _split_with_validation(images: np.ndarray, labels: np.ndarray, val_size: int):
    train_idx, val_idx = carve_validation(len(labels), val_size)
    pixels, classes = torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)
    return (pixels[train_idx], classes[train_idx]), (pixels[val_idx], classes[val_idx])


def _idx_task(
    dataset: str, data_dir: str | None, patch_size: int, augment: bool, val_size: int, test_size: int | None
) -> ImageTask:
    directory = require(dataset, data_dir)
    train_images, train_labels = read_idx_pair(directory, "train")
    train, val = _split_with_validation(train_images, train_labels, val_size)
    test_images, test_labels = read_idx_pair(directory, "t10k")
    test, test_source = test_subset(
        torch.from_numpy(test_images.copy()), torch.from_numpy(test_labels), test_size, "t10k"
    )
    sources = {
        "train": f"train minus val ({dataset} {directory})",
        "val": f"{val_size} of train, seed {VAL_SPLIT_SEED}",
        "test": test_source,
    }
    return ImageTask(
        dataset,
        train,
        val,
        test,
        patch_size,
        augment,
        dict(patch_size=patch_size, augment=augment, val_size=val_size, test_size=test_size),
        sources,
    )


def mnist(
    data_dir: str | None = None,
    patch_size: int = 4,
    augment: bool = False,
    val_size: int = 2000,
    test_size: int | None = None,
) -> ImageTask:
    return _idx_task("mnist", data_dir, patch_size, augment, val_size, test_size)


def fashion_mnist(
    data_dir: str | None = None,
    patch_size: int = 4,
    augment: bool = False,
    val_size: int = 2000,
    test_size: int | None = None,
) -> ImageTask:
    return _idx_task("fashion-mnist", data_dir, patch_size, augment, val_size, test_size)


def _cifar_task(
    name: str,
    data_dir: str | None,
    patch_size: int,
    augment: bool,
    val_size: int,
    test_size: int | None,
    grayscale: bool,
) -> ImageTask:
    base = require("cifar10", data_dir) / "cifar-10-batches-py"
    train, val = _split_with_validation(*cifar.read_split(base, cifar.TRAIN_BATCHES), val_size)
    test_images, test_labels = cifar.read_split(base, (cifar.TEST_BATCH,))
    test, test_source = test_subset(
        torch.from_numpy(test_images), torch.from_numpy(test_labels), test_size, "test_batch"
    )
    if grayscale:  # rounded back to uint8, as LRA's tf.image.rgb_to_grayscale on uint8 images
        to_gray = lambda x: (x.float() * GRAY.reshape(1, 3, 1, 1)).sum(1, keepdim=True).round().to(torch.uint8)
        train, val, test = ((to_gray(x), y) for x, y in (train, val, test))
    sources = {
        "train": "data_batch_1-5 minus val",
        "val": f"{val_size} of data_batch_1-5, seed {VAL_SPLIT_SEED}",
        "test": test_source,
    }
    return ImageTask(
        name,
        train,
        val,
        test,
        patch_size,
        augment,
        dict(patch_size=patch_size, augment=augment, val_size=val_size, test_size=test_size),
        sources,
    )


def cifar10(
    data_dir: str | None = None,
    patch_size: int = 4,
    augment: bool = True,
    val_size: int = 2000,
    test_size: int | None = None,
) -> ImageTask:
    return _cifar_task("cifar10", data_dir, patch_size, augment, val_size, test_size, grayscale=False)


def cifar10_lra(
    data_dir: str | None = None,
    patch_size: int = 1,
    augment: bool = False,
    val_size: int = 2000,
    test_size: int | None = None,
) -> ImageTask:
    return _cifar_task("cifar10-lra", data_dir, patch_size, augment, val_size, test_size, grayscale=True)


def options(side: int, train_examples: int) -> tuple[dict, tuple]:
    """(refinements, rules) of the image tasks' options, for `side`-pixel images."""

    def patch_divides(values: dict) -> str | None:
        if side % values["patch_size"]:
            return f"patch_size ({values['patch_size']}) must divide the image side ({side} pixels)"
        return None

    return (
        {
            "patch_size": {"min": 1, "max": side, "help": "side of the square patches that become tokens"},
            "augment": {"help": "random crop, flip and rotation of training images"},
            "val_size": {
                "min": 1,
                "max": train_examples - 1,
                "help": "validation examples carved from the training split (fixed seed)",
            },
            "test_size": {
                "type": int,
                "min": 1,
                "max": 10_000,
                "help": "a fixed random subset of the official test split, for quick runs (default: all of it)",
            },
        },
        (patch_divides,),
    )

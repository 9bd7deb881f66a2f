"""Output-only training on cached backbone features.

When nothing below the output head trains (the paper's output-only ablation, `--train output`),
the frozen input layer and backbone compute the same features for an example at every epoch. So
they run once per example: the hidden states the head reads are stored, and the head trains on
them as a task of its own (`FeatureTask`), in the same example order as the uncached run.

One difference from training through the backbone: the cache is computed in eval mode, so the
dropout of the frozen input layer and backbone is off (the head's own input is what it would see at
evaluation). Only tasks whose examples never change can be cached: in-memory datasets
(`TensorTask`) without augmentation; generated streams (the bit tasks) and augmented images are not.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import fields
from typing import cast

import torch
from torch import nn

from fpt.memory import require
from fpt.model.fpt import FrozenPretrainedTransformer
from fpt.tasks import Batch, Task, TensorTask
from fpt.training.precision import Precision
from fpt.training.progress import Reporter


def output_only(model: nn.Module) -> bool:
    """True when the head trains and nothing else does."""
    if not isinstance(model, FrozenPretrainedTransformer):
        return False
    trained = [name for name, p in model.named_parameters() if p.requires_grad]
    return bool(trained) and all(name.startswith("head.") for name in trained)


def cacheable(task: Task) -> bool:
    """Whether every epoch shows the model the same examples (a finite, unaugmented dataset)."""
    return isinstance(task, TensorTask) and not task.augment


@torch.inference_mode()
def head_inputs(model: FrozenPretrainedTransformer, batch: Batch, precision: Precision | None = None) -> torch.Tensor:
    """What the head reads for `batch` (`OutputHead.read`): (batch, output_tokens, hidden), in fp32."""
    captured = []
    hook = model.head.register_forward_pre_hook(lambda module, args: captured.append(module.read(*args)))
    try:
        with precision.autocast() if precision else torch.autocast("cpu", enabled=False):
            model(batch.inputs, batch.mask)
    finally:
        hook.remove()
    return captured[0].float()


class FeatureTask(TensorTask):
    """The original task with each example replaced by its cached head inputs."""

    def __init__(
        self,
        task: TensorTask,
        model: FrozenPretrainedTransformer,
        batch_size: int = 256,
        device: torch.device | str = "cpu",
        precision: Precision | None = None,
    ):
        was_training = model.training
        model.eval()
        splits = {}
        for split in ("train", "val", "test"):
            batches = []
            for batch in task.examples(split, batch_size):
                features = head_inputs(model, batch.to(device), precision).cpu()
                batches.append(Batch(features, batch.targets, None, batch.output_loc, batch.output_scale))
            inputs, targets, _, loc, scale = (_cat([getattr(b, f.name) for b in batches]) for f in fields(Batch))
            splits[split] = Batch(cast(torch.Tensor, inputs), cast(torch.Tensor, targets), None, loc, scale)
        model.train(was_training)
        super().__init__(
            splits["train"],
            splits["val"],
            splits["test"],
            output_tokens=task.spec.output_tokens,
            name=task.name,
            outputs=task.spec.output_kind,
            head=task.spec.head,
        )
        self.split_sources = task.split_sources
        self.data_fingerprint = task.data_fingerprint
        self.baselines = task.baselines  # type: ignore[method-assign]


def _cat(tensors: list) -> torch.Tensor | None:
    return None if tensors[0] is None else torch.cat(tensors)


class HeadOnFeatures(nn.Module):
    """The model's own head (shared parameters) applied to cached features."""

    def __init__(self, model: FrozenPretrainedTransformer):
        super().__init__()
        self.head = model.head

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head.project(features)  # features hold exactly the positions the head reads


def cache_if_output_only(
    model: nn.Module,
    task: Task,
    batch_size: int,
    device: torch.device,
    precision: Precision,
    log=print,
    progress: Reporter | None = None,
) -> tuple[nn.Module, Task] | None:
    """(head, feature task) to train on instead of (model, task) when that is the same training."""
    if not (output_only(model) and cacheable(task)):
        return None
    model, task = cast(FrozenPretrainedTransformer, model), cast(TensorTask, task)
    total = sum(task.split_size(s) for s in ("train", "val", "test"))
    require(  # each split's features are held twice while they are concatenated
        f"Caching backbone features of {total:,} examples",
        8.0 * total * task.spec.output_tokens * model.head.hidden,
        "Pass --no-feature-cache to train through the backbone instead.",
    )
    started = time.perf_counter()
    with progress.phase("caching backbone features") if progress else nullcontext():
        features = FeatureTask(task, model.to(device), batch_size, device, precision)
    log(
        f"Output-only training: backbone features of {sum(features.split_size(s) for s in features.data)} examples "
        f"cached in {time.perf_counter() - started:.1f} s; the head trains on the cache (backbone dropout off)."
    )
    return HeadOnFeatures(model), features

"""Output-only training (`--train output`): one epoch through the frozen backbone vs one on cached features.

MiniLM x Fashion-MNIST (4x4 patches, 49 tokens of 16), batch 16, the default precision, on a training
set of the first --examples Fashion-MNIST training images: each figure is a complete, timed epoch of
that set (with --full, the cached epoch is also timed on the whole training split). Both epochs run the training
loop's own `training_step`; the cached one trains the same head on `FeatureTask` features.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/feature_cache_epoch.py --out benchmarks/results/feature_cache_epoch.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import torch

from fpt.bench import machine
from fpt.tasks import TensorTask, get_task
from fpt.training import RunConfig
from fpt.training.distributed import make_accelerator
from fpt.training.feature_cache import FeatureTask, HeadOnFeatures
from fpt.training.loop import build_model, prepare_training, training_step


def epoch_seconds(trainer, task, batch_size: int, seed: int) -> float:
    steps = task.split_size("train") // batch_size
    stream = task.train_batches(batch_size, seed)
    total = torch.zeros(())
    start = time.perf_counter()
    for _ in range(steps):
        total += training_step(trainer, next(stream))
    total.item()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--full", action="store_true", help="also cache every split and time a cached full epoch")
    parser.add_argument("--out")
    args = parser.parse_args()
    full = get_task("fashion-mnist")
    first = lambda split, n: next(full.examples(split, n))
    train, val = first("train", args.examples), first("val", 256)
    task = TensorTask(
        (train.inputs, train.targets), (val.inputs, val.targets), (val.inputs, val.targets), name="fashion-mnist"
    )
    config = RunConfig(
        task="fashion-mnist", backbone="minilm", train="output", batch_size=args.batch_size, device="cpu"
    )
    load_before, started = os.getloadavg(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory() as workdir:
        accelerator = make_accelerator("cpu", None, workdir)
        torch.manual_seed(0)
        through = prepare_training(config, task, build_model(config, task), accelerator)
        torch.manual_seed(0)
        model = build_model(config, task)
        start = time.perf_counter()
        features = FeatureTask(task, model, 256, "cpu", through.precision)
        build_seconds = time.perf_counter() - start
        cached = prepare_training(config, features, HeadOnFeatures(model), accelerator)
        epoch_seconds(cached, features, args.batch_size, 1)  # warm-up epoch
        cached_before = epoch_seconds(cached, features, args.batch_size, 2)
        uncached = epoch_seconds(through, task, args.batch_size, 0)
        cached_after = epoch_seconds(cached, features, args.batch_size, 3)
        full = full if args.full else None
        if full:
            start = time.perf_counter()
            full_features = FeatureTask(full, model, 256, "cpu", through.precision)
            full_build_seconds = time.perf_counter() - start
            full_cached = prepare_training(config, full_features, HeadOnFeatures(model), accelerator)
            full_epoch = epoch_seconds(full_cached, full_features, args.batch_size, 0)
    cached_epoch = (cached_before + cached_after) / 2
    result = {
        "what": "output-only training, MiniLM x Fashion-MNIST 4x4 patches, one epoch through the backbone vs on cached features",
        "precision": through.precision.name,
        "batch_size": args.batch_size,
        "epoch_examples": args.examples,
        "uncached_epoch_s": round(uncached, 3),
        "cached_epoch_s": round(cached_epoch, 5),
        "cached_epoch_s_before_after": [round(cached_before, 5), round(cached_after, 5)],
        "speedup_per_epoch": round(uncached / cached_epoch, 1),
        "cache_build_s": round(build_seconds, 3),
        "full_train_split": {
            "examples": full_features.split_size("train"),
            "cached_epoch_s": round(full_epoch, 3),
            "cache_build_s_all_splits": round(full_build_seconds, 1),
        }
        if full
        else None,
        "machine": machine(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "started": started,
        "command": " ".join(sys.argv),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")
        print(f"Written: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

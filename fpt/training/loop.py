"""The training loop: Adam on the trained groups, periodic validation, best-checkpoint test pass."""
from __future__ import annotations

import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fpt.errors import FPTError
from fpt.model.fpt import FPTConfig, FrozenPretrainedTransformer
from fpt.tasks import Scores, Task, get_task
from fpt.training.checkpoint import load_trained, save_checkpoint
from fpt.training.config import RunConfig
from fpt.training.rundir import RunDir, default_run_dir


class TrainingDiverged(FPTError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise FPTError(f"Unknown device {name!r}: use auto, cpu, cuda or cuda:N.") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FPTError(f"Device {name!r} was asked for but no CUDA GPU is available; use --device cpu or auto.")
    return device


def build_model(config: RunConfig, task: Task) -> FrozenPretrainedTransformer:
    return FrozenPretrainedTransformer(FPTConfig(
        **task.spec.model_fields(), backbone=config.backbone, init=config.init, init_seed=config.seed,
        train=config.train, dropout=config.dropout, attn_implementation=config.attn_implementation,
    ))


@torch.inference_mode()
def evaluate(model: FrozenPretrainedTransformer, task: Task, split: str, batch_size: int = 256,
             device: torch.device | str = "cpu") -> dict[str, float]:
    """One full pass over `split`: unit accuracy, exact match and the number of examples."""
    was_training = model.training
    model.eval()
    scores = Scores()
    for batch in task.eval_batches(split, batch_size):
        batch = batch.to(device)
        scores.add(model(batch.inputs, batch.mask), batch.targets)
    model.train(was_training)
    result = scores.result()
    if result["examples"] != task.split_size(split):
        raise RuntimeError(f"evaluated {result['examples']} of {task.split_size(split)} {split} examples")
    return result


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def train(config: RunConfig, task: Task | None = None, model: FrozenPretrainedTransformer | None = None,
          progress: bool = True, log=print) -> dict:
    """Train per `config` and return the summary (also written to the run directory's summary.json).

    `task` and `model` default to the ones `config` names; pass your own to train on your own data.
    """
    started = time.time()
    task = task or get_task(config.task, **config.task_options)
    config.task_options = task.options()
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    model = model or build_model(config, task)
    device = resolve_device(config.device)
    out = Path(config.out) if config.out else default_run_dir(task.name, config.backbone, config.init, config.seed)
    config.out = str(out)
    run = RunDir.create(out, {**config.to_dict(), "task": task.name}, model.config_dict())
    log(model.freeze_report())
    log(f"Run directory: {out}")

    model.to(device).train()
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trained, lr=config.lr)
    stream = task.train_batches(config.batch_size, config.seed)
    counts = model.group_counts()
    n_trained, n_total = sum(p.numel() for p in trained), sum(c for c, _ in counts.values())

    best = {"step": 0, "accuracy": -1.0}
    steps_to_100, status, step = None, "finished", 0
    running_loss, running_n = torch.zeros((), device=device), 0
    window_start, window_samples = time.time(), 0
    bar = tqdm(total=config.steps, disable=not progress, desc=f"{task.name} {config.init}", file=sys.stderr)
    for step in range(1, config.steps + 1):
        batch = next(stream).to(device)
        for inputs, targets, mask in _micro_batches(batch, config.grad_accum):
            loss = task.loss(model(inputs, mask), targets) / config.grad_accum
            loss.backward()
            running_loss += loss.detach()
        torch.nn.utils.clip_grad_norm_(trained, config.clip_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        running_n += 1
        window_samples += len(batch)
        bar.update()

        if step % config.eval_every and step != config.steps:
            continue
        train_loss = running_loss.item() / running_n  # the only host sync: once per evaluation
        if not math.isfinite(train_loss):
            status = "diverged"
            break
        samples_per_s = window_samples / max(time.time() - window_start, 1e-9)
        val = evaluate(model, task, "val", config.eval_batch_size, device)
        record = {"step": step, "train_loss": train_loss, "val_accuracy": val["accuracy"],
                  "val_exact_match": val["exact_match"], "elapsed_s": round(time.time() - started, 3),
                  "samples_per_s": round(samples_per_s, 2)}
        run.append_metrics(record)
        bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{val['accuracy']:.4f}")
        save_checkpoint(run.checkpoints / "last", model, step,
                        state={"optimizer": optimizer.state_dict(), "rng": _rng_state(), "batches_drawn": step})
        if val["accuracy"] > best["accuracy"]:
            best = {"step": step, "accuracy": val["accuracy"]}
            save_checkpoint(run.checkpoints / "best", model, step, extra={"val": val})
        if steps_to_100 is None and val["accuracy"] >= 1.0:
            steps_to_100 = step
        running_loss.zero_()
        running_n, window_start, window_samples = 0, time.time(), 0
        if config.target_accuracy is not None and val["accuracy"] >= config.target_accuracy:
            status = "early-stopped"
            break
    bar.close()

    summary = {
        "task": task.name, "backbone": config.backbone, "init": config.init, "train": config.train,
        "seed": config.seed, "steps": step, "status": status, "best_step": best["step"],
        "best_val_accuracy": best["accuracy"] if best["step"] else None,
        "steps_to_100": steps_to_100,
        "trainable_params": n_trained, "total_params": n_total,
        "metric_names": task.metric_names,
    }
    if status == "diverged":
        summary["wall_seconds"] = round(time.time() - started, 2)
        summary["test_accuracy"] = None
        run.write_summary(summary)
        kept = f"the last good checkpoint (step {best['step']}) is kept in {run.checkpoints}" if best["step"] else "no checkpoint had been written yet"
        raise TrainingDiverged(
            f"Training diverged: the loss became non-finite before step {step}; stopped, and {kept}. "
            f"Try a lower --lr (now {config.lr}) or a smaller clip norm."
        )
    load_trained(model, out, "best")
    test = evaluate(model, task, "test", config.eval_batch_size, device)
    summary.update({
        "test_split": "test", "test_examples": test["examples"], "test_accuracy": test["accuracy"],
        "test_exact_match": test["exact_match"], "wall_seconds": round(time.time() - started, 2),
    })
    run.write_summary(summary)
    log(f"{task.name}: test {task.metric_names['accuracy']} {test['accuracy']:.4f}, "
        f"{task.metric_names['exact_match']} {test['exact_match']:.4f} "
        f"(best val step {best['step']}, {test['examples']} test examples)")
    return summary


def _micro_batches(batch, parts: int):
    """Split a batch into `parts` equal micro-batches for gradient accumulation."""
    if parts == 1:
        yield batch.inputs, batch.targets, batch.mask
        return
    masks = batch.mask.chunk(parts) if batch.mask is not None else [None] * parts
    yield from zip(batch.inputs.chunk(parts), batch.targets.chunk(parts), masks)

"""Batch sizes that fit in memory: the training step's micro-batch and the evaluation batch.

A step whose whole batch does not fit in one pass by fpt.memory's floor runs as several micro-batches
with gradient accumulation (the same optimizer steps as `--micro-batch-size`), chosen here unless the
user split the batch (`--micro-batch-size`, `--grad-accum`); evaluation batches are lowered the same
way. Only a pass of one example that does not fit is refused. The floor is what a pass needs at the
least, so a chosen size leaves room above it (HEADROOM, SLACK): measured passes needed 1.2-1.4 times
the floor at long sequences and up to ~3 times on passes of a few hundred MiB
(benchmarks/results/design_figures.md, "Memory of a training pass").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from fpt import memory
from fpt.tasks import Task
from fpt.training.config import RunConfig
from fpt.training.distributed import plan_batches

HEADROOM, SLACK = 1.5, 0.5 * 2**30  # a chosen size's floor x HEADROOM + SLACK bytes must be available


def _input_width(task: Task) -> int:
    return task.spec.input_dim if task.spec.input_kind == "continuous" else 1


def _eval_bytes(model: torch.nn.Module, task: Task, examples: int, device: torch.device | str) -> float:
    return memory.pass_bytes(model, examples, task.spec.max_length, _input_width(task), False, torch.device(device))


def _largest_that_fits(need: Callable[[int], float], most: int, device: torch.device | str) -> int:
    """The largest n up to `most` whose floor fits with room to spare, else the largest whose floor fits
    at all (0: not even one)."""
    device = torch.device(device)
    roomy = memory.most_that_fit(lambda n: need(n) * HEADROOM + SLACK, most, device)
    return roomy or memory.most_that_fit(need, most, device)


def eval_batch_that_fits(
    model: torch.nn.Module, task: Task, split: str, batch_size: int, device: torch.device | str
) -> int:
    """`batch_size`, or the largest evaluation batch below it that fits in memory; an FPTError when not
    even one example of `split` does."""
    examples = min(batch_size, task.split_size(split))
    if memory.memory_problem("", _eval_bytes(model, task, examples, device), torch.device(device)) is None:
        return batch_size
    fits = _largest_that_fits(lambda n: _eval_bytes(model, task, n, device), examples, device)
    if not fits:
        memory.require(
            f"An evaluation pass of one {split} example of up to {task.spec.max_length:,} tokens",
            _eval_bytes(model, task, 1, device),
            "Shorten the sequences, or use a machine with more memory.",
            torch.device(device),
        )
    return fits


def _training_need(config: RunConfig, task: Task, model: torch.nn.Module, device: torch.device) -> Callable:
    """Bytes by micro-batch size: the pass, and the step's whole batch of inputs."""
    tokens, width = task.spec.max_length, _input_width(task)
    return lambda micro_batch: (
        memory.pass_bytes(model, micro_batch, tokens, width, True, device) + 4.0 * config.batch_size * tokens * width
    )


def require_training_memory(
    config: RunConfig, task: Task, model: torch.nn.Module, processes: int, device: torch.device
) -> None:
    """Refuse batch sizes whose passes cannot fit in memory, before the run directory or any batch exists;
    the message names the largest --micro-batch-size that fits."""
    _require_training_pass(config, task, model, processes, device)
    for split in task.splits:
        eval_batch_that_fits(model, task, split, config.eval_batch_size, device)  # refuses if one example does not


def _require_training_pass(
    config: RunConfig, task: Task, model: torch.nn.Module, processes: int, device: torch.device
) -> None:
    plan = plan_batches(config.batch_size, processes, config.grad_accum, config.micro_batch_size)
    need = _training_need(config, task, model, device)
    share = plan.micro_batch * plan.accumulation  # this process's examples per step
    fits = memory.most_that_fit(need, plan.micro_batch, device)
    micro_batch = plan_batches(config.batch_size, processes, config.grad_accum, fits).micro_batch if fits else 0
    if micro_batch:
        lower = (
            f"Pass --micro-batch-size {micro_batch} (each step's {share:,} examples in {share // micro_batch} "
            "passes, gradients accumulated: the same optimizer steps), or lower --batch-size."
        )
    else:
        lower = "Even a pass of one example does not fit: shorten the sequences, or use a machine with more memory."
    memory.require(
        f"--batch-size {config.batch_size:,} (passes of {plan.micro_batch:,} examples of up to "
        f"{task.spec.max_length:,} tokens)",
        need(plan.micro_batch),
        lower,
        device,
    )


def fit_to_memory(
    config: RunConfig, task: Task, model: torch.nn.Module, processes: int, device: torch.device, log=print
) -> RunConfig:
    """`config` with a micro-batch (when the user split no batch) and an evaluation batch that fit in memory,
    each change said in one line; the values stand in config.yaml, so a resume computes the same way."""
    plan = plan_batches(config.batch_size, processes, config.grad_accum, config.micro_batch_size)
    need = _training_need(config, task, model, device)
    split_by_user = config.micro_batch_size is not None or config.grad_accum != 1
    if not split_by_user and memory.memory_problem("", need(plan.micro_batch), device):
        fits = _largest_that_fits(need, plan.micro_batch, device)
        if fits:
            chosen = plan_batches(config.batch_size, processes, 1, fits)
            log(
                f"--batch-size {config.batch_size:,} does not fit in memory in one pass (at least "
                f"{memory.size(need(plan.micro_batch))}; about {memory.size(memory.available_bytes(device))} "
                f"available): each step runs {chosen.accumulation} micro-batches of {chosen.micro_batch} per process, "
                f"gradients accumulated (the same optimizer steps); micro_batch_size {chosen.micro_batch} is recorded "
                "in config.yaml. --micro-batch-size N chooses it yourself."
            )
            config = replace(config, micro_batch_size=chosen.micro_batch)
    _require_training_pass(config, task, model, processes, device)  # refused: not even one example fits
    largest_split = max(task.splits, key=task.split_size)
    evaluation = eval_batch_that_fits(model, task, largest_split, config.eval_batch_size, device)
    if evaluation < config.eval_batch_size:
        log(
            f"--eval-batch-size {config.eval_batch_size:,} does not fit in memory: evaluation runs in batches of "
            f"{evaluation:,} (the same results), recorded in config.yaml."
        )
        config = replace(config, eval_batch_size=evaluation)
    return _agreed(config, processes)


def _agreed(config: RunConfig, processes: int) -> RunConfig:
    """With several processes, the smallest micro-batch and evaluation batch any of them chose (their free
    memory may differ): every process splits its batches alike, as config.yaml records."""
    if processes == 1:
        return config
    from accelerate.utils import gather_object

    chosen = gather_object([(config.micro_batch_size, config.eval_batch_size)])
    micro = [m for m, _ in chosen if m is not None]
    return replace(config, micro_batch_size=min(micro, default=None), eval_batch_size=min(e for _, e in chosen))

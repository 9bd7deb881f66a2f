"""The training loop: Adam on the trained groups, periodic validation, resumable checkpoints, and a
test pass with the best checkpoint.

One code path from a laptop CPU to several machines: Accelerate starts the processes (`accelerate
launch`, `torchrun`, or none), every process computes its slice of each global batch
(fpt.training.distributed), and only the main process writes run files. `training_step` is the
whole per-step hot path; it never waits on the device, so the loss is read only at evaluations.
"""

from __future__ import annotations

import math
import os
import random
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import broadcast_object_list, gather_object
from tqdm.auto import tqdm

from fpt.errors import FPTError
from fpt.importing import import_modules
from fpt.model.activations import fuse_activations
from fpt.model.dropout import use_cpu_dropout
from fpt.model.fpt import FPTConfig, FrozenPretrainedTransformer
from fpt.model.lstm import LSTMBaseline, LSTMConfig
from fpt.model.unread import skip_unread_positions
from fpt.plugins import recorded_imports
from fpt.runs.checkpoint import (
    load_trained,
    prune,
    read_checkpoint,
    read_training_state,
    resolve,
    save_checkpoint,
    step_name,
)
from fpt.runs.record import RunDir, default_run_dir, read_run_record, read_summary
from fpt.tasks import Batch, Scores, Task, get_task
from fpt.tasks.arrays import task_record
from fpt.training.config import RunConfig
from fpt.training.distributed import BatchPlan, local_micro_batches, make_accelerator, plan_batches, process_seed
from fpt.training.feature_cache import cache_if_output_only
from fpt.training.precision import Precision

# Config keys that may differ when a run is resumed: where and how it runs, not what it computes.
RESUME_OVERRIDABLE = ("steps", "device", "log", "checkpoint_every", "keep_checkpoints", "data_dir", "compile")
STOP_CHECK_EVERY = 10  # with several processes, steps between collective checks for Ctrl-C/SIGTERM


class TrainingDiverged(FPTError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(FPTError):
    """SIGINT/SIGTERM: a resumable checkpoint was written and training stopped."""


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


def build_model(config: RunConfig, task: Task) -> FrozenPretrainedTransformer | LSTMBaseline:
    if config.architecture == "lstm":
        if config.init != "random":
            raise FPTError(f"The LSTM baseline has no pretrained weights (init {config.init!r}); pass --init random.")
        return LSTMBaseline(
            LSTMConfig(
                **task.spec.model_fields(),
                layers=config.layers or 3,
                train=config.train,
                init_seed=config.seed,
                dropout=config.dropout,
            )
        )
    return FrozenPretrainedTransformer(
        FPTConfig(
            **task.spec.model_fields(),
            backbone=config.backbone,
            init=config.init,
            init_seed=config.seed,
            train=config.train,
            dropout=config.dropout,
            attn_implementation=config.attn_implementation,
            layers=config.layers,
        )
    )


@torch.inference_mode()
def evaluate(
    model: FrozenPretrainedTransformer,
    task: Task,
    split: str,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    accelerator: Accelerator | None = None,
    precision: Precision | None = None,
) -> dict[str, float]:
    """One full pass over `split`: unit accuracy, exact match and the number of examples.

    With an `accelerator`, process r scores batches r, r + n, r + 2n, ... and the counts are summed,
    so every example counts exactly once, with no padding duplicates.
    """
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    was_training = model.training
    model.eval()
    scores = Scores()
    with precision.autocast() if precision else nullcontext():
        for index, batch in enumerate(task.eval_batches(split, batch_size)):
            if index % world == rank:
                batch = batch.to(device)
                scores.add(model(batch.inputs, batch.mask), batch.targets)
    model.train(was_training)
    counts = torch.tensor(
        [scores.correct_units.item(), scores.units, scores.correct_examples.item(), scores.examples], device=device
    )
    if world > 1:
        counts = accelerator.reduce(counts, "sum")
    correct_units, units, correct_examples, examples = counts.tolist()
    result = Scores(torch.tensor(correct_units), units, torch.tensor(correct_examples), examples).result()
    if result["examples"] != task.split_size(split):
        raise RuntimeError(f"evaluated {result['examples']} of {task.split_size(split)} {split} examples")
    return result


@dataclass
class Trainer:
    """What an optimizer step needs. `model` is DDP-wrapped with several processes; `module` never is."""

    accelerator: Accelerator
    model: torch.nn.Module
    module: FrozenPretrainedTransformer
    optimizer: torch.optim.Optimizer
    task: Task
    plan: BatchPlan
    precision: Precision
    clip_norm: float
    trained: list[torch.nn.Parameter] = field(default_factory=list)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device


def prepare_training(
    config: RunConfig, task: Task, model: FrozenPretrainedTransformer, accelerator: Accelerator
) -> Trainer:
    """Place `model` on this process's device, wrap it for data parallelism, and make the optimizer."""
    plan = plan_batches(config.batch_size, accelerator.num_processes, config.grad_accum, config.micro_batch_size)
    precision = Precision.create(config.precision, accelerator.device)
    trained = [p for p in model.parameters() if p.requires_grad]
    wrapped = accelerator.prepare(model.train())
    precision.store_frozen_matrices(model)  # after the DDP wrap: it broadcasts fp32 weights
    fuse_activations(model)  # GPT-2's Python tanh-GELU -> the same function in one kernel
    skip_unread_positions(model)  # causal backbones: the last block computes only the positions the head reads
    if accelerator.device.type == "cpu" and not config.compile:  # compiled graphs make their own dropout masks
        use_cpu_dropout(model)  # dropout masks without the single-threaded Bernoulli sampler
    if config.compile:
        wrapped = torch.compile(wrapped)
    optimizer = torch.optim.Adam(trained, lr=config.lr)
    return Trainer(accelerator, wrapped, model, optimizer, task, plan, precision, config.clip_norm, trained)


def training_step(trainer: Trainer, batch: Batch) -> torch.Tensor:
    """One optimizer step on the global `batch`; this process computes its own slice of it.

    Returns this process's mean loss as a device tensor (no host sync)."""
    parts = local_micro_batches(batch, trainer.plan, trainer.accelerator.process_index)
    total = torch.zeros((), device=trainer.device)
    for index, part in enumerate(parts):
        part = part.to(trainer.device)
        last = index == len(parts) - 1
        with nullcontext() if last else trainer.accelerator.no_sync(trainer.model):  # all-reduce once per step
            with trainer.precision.autocast():
                loss = trainer.task.loss(trainer.model(part.inputs, part.mask), part.targets) / len(parts)
            trainer.precision.backward(loss)
        total += loss.detach()
    trainer.precision.unscale(trainer.optimizer)
    torch.nn.utils.clip_grad_norm_(trainer.trained, trainer.clip_norm)
    trainer.precision.step(trainer.optimizer)
    trainer.optimizer.zero_grad(set_to_none=True)
    return total


@dataclass
class Progress:
    """Loop counters a resumable checkpoint restores, besides parameters, optimizer and RNG."""

    step: int = 0
    best_step: int = 0
    best_accuracy: float = -1.0
    steps_to_100: int | None = None
    loss_steps: int = 0  # steps summed in the running loss since the last evaluation

    def to_dict(self) -> dict:
        return dict(vars(self))


class StopRequests:
    """The first SIGINT/SIGTERM asks training to checkpoint and stop; a second one stops at once."""

    def __init__(self, accelerator: Accelerator):
        self.accelerator, self.requested, self.previous = accelerator, False, {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def agreed(self, step: int) -> bool:
        """Whether all processes stop after `step` (they must agree, so several processes check together)."""
        if self.accelerator.num_processes == 1:
            return self.requested
        if step % STOP_CHECK_EVERY:
            return False
        flag = torch.tensor(float(self.requested), device=self.accelerator.device)
        return self.accelerator.reduce(flag, "sum").item() > 0


def _rng_state() -> dict:
    """This process's RNG states, as tensors and plain values (loadable with weights_only)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def _resumed_config(config: RunConfig) -> dict:
    return {k: v for k, v in config.to_dict().items() if k not in (*RESUME_OVERRIDABLE, "out")}


def resume_config(run_dir: str | Path, **overrides) -> RunConfig:
    """The config of the run in `run_dir`, with the few keys a resume may change (e.g. more steps)."""
    fixed = sorted(set(overrides) - set(RESUME_OVERRIDABLE))
    if fixed:
        raise FPTError(
            f"--resume continues a run with the config it started with; {', '.join(fixed)} cannot change "
            f"(only {', '.join(RESUME_OVERRIDABLE)} can). Start a new run to train with other settings."
        )
    record = read_run_record(run_dir)
    return RunConfig.from_dict({**record.config, **overrides, "out": str(run_dir)}, source=f"{run_dir}/config.yaml")


def _open_for_resume(run_dir: Path, config: RunConfig, model, accelerator: Accelerator, log) -> dict:
    """Check the newest checkpoint of `run_dir` against the model and config, load its parameters,
    and return its training state. Refuses (FPTError) before anything is written."""
    summary = read_summary(run_dir)
    checkpoint = resolve(run_dir, "last")
    state = read_training_state(checkpoint)
    load_trained(model, run_dir, checkpoint.name)
    if summary and summary.get("status") == "diverged":
        raise FPTError(
            f"{run_dir} diverged (see summary.json); resuming would repeat it exactly. Start a new run with a lower --lr."
        )
    if summary and summary.get("status") == "early-stopped":
        raise FPTError(
            f"{run_dir} stopped early on reaching target_accuracy at step {state['step']}; there is nothing to resume."
        )
    if summary and summary.get("status") == "finished" and state["step"] >= config.steps:
        raise FPTError(
            f"{run_dir} already finished at step {state['step']}; pass a larger --steps to train it further."
        )
    saved, now = state["config"], _resumed_config(config)
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if changed:
        raise FPTError(
            f"{run_dir}/config.yaml no longer matches checkpoint {checkpoint.name} (changed: {', '.join(changed)}); "
            "resuming would not continue the same run. Restore config.yaml or start a new run."
        )
    if state["plan"]["processes"] != accelerator.num_processes:
        log(
            f"Note: checkpoint written by {state['plan']['processes']} process(es), resumed on "
            f"{accelerator.num_processes}: the same batches are seen, but dropout streams differ, so the result "
            "is not bit-identical to an uninterrupted run."
        )
    log(f"Resuming {run_dir} from {checkpoint.name} (step {state['step']})")
    return state


def _finish_trackers(accelerator: Accelerator) -> None:
    """Close TensorBoard/W&B (Accelerator.end_training would also end the process group)."""
    for tracker in accelerator.trackers:
        tracker.finish()


def _run_path(config: RunConfig, task: Task, state: PartialState) -> Path:
    """The run directory, chosen once by the main process (its default name holds the time)."""
    out = [config.out or str(default_run_dir(task.name, config.backbone, config.init, config.seed))]
    if state.num_processes > 1:
        broadcast_object_list(out)
    return Path(out[0])


def train(
    config: RunConfig,
    task: Task | None = None,
    model: FrozenPretrainedTransformer | None = None,
    progress: bool = True,
    log=print,
    resume: bool = False,
) -> dict:
    """Train per `config` and return the summary (also written to the run directory's summary.json).

    `task` and `model` default to the ones `config` names; pass your own to train on your own data.
    `resume=True` continues the run in `config.out` from its newest checkpoint (see `resume_config`).
    With bf16/fp16 the model's frozen weight matrices are left stored in that precision.
    """
    started = time.time()
    import_modules(config.imports)  # modules that register the user's tasks and backbones
    task = task or get_task(config.task, data_dir=config.data_dir, **config.task_options)
    device = resolve_device(config.device)
    if device.index is not None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise FPTError(
                f"--device {config.device} names one GPU, but several processes were launched; use --device "
                "cuda (or auto) and each process takes its own local GPU."
            )
        torch.cuda.set_device(device)
    out = _run_path(config, task, PartialState(cpu=device.type == "cpu"))
    config.out = str(out)
    if not resume and (out / "config.yaml").exists():
        raise FPTError(
            f"{out} already holds a run; choose another --out so its results are not overwritten, "
            f"or continue it with `fpt train --resume {out}`."
        )
    # what rebuilds the task in a new process (fpt eval, --resume): in-memory data is saved in the run
    config.task, config.task_options = task_record(task, out, write=PartialState().is_main_process)
    config.imports = recorded_imports(config.imports, config.task)
    accelerator = make_accelerator(config.device, config.log, out)
    main = accelerator.is_main_process
    log = log if main else (lambda *a: None)
    _seed(config.seed)
    model = model or build_model(config, task)
    config.init = getattr(model.config, "init", config.init)  # a from: init as the model resolved it (absolute)
    saved = _open_for_resume(out, config, model, accelerator, log) if resume else None
    cached = (
        cache_if_output_only(
            model,
            task,
            config.eval_batch_size,
            accelerator.device,
            Precision.create(config.precision, accelerator.device),
            log,
        )
        if config.feature_cache
        else None
    )
    step_model, step_task = cached or (model, task)  # output-only: the head trains on cached backbone features
    trainer = prepare_training(config, step_task, step_model, accelerator)
    plan, precision, run = trainer.plan, trainer.precision, RunDir(out)
    layout = {**plan.to_dict(), "precision": precision.name}
    accelerator.wait_for_everyone()  # every process has checked the run directory before it changes
    if main and saved:
        run.truncate_metrics(saved["step"])
    elif main:
        RunDir.create(out, {**config.to_dict(), "distributed": layout}, model.config_dict())
    log(model.freeze_report())
    log(f"Run directory: {out}")
    log(
        f"{plan.processes} process(es) on {accelerator.device} x {plan.accumulation} micro-batch(es) of "
        f"{plan.micro_batch} = batch {plan.batch_size} per step; precision {precision.name}"
    )

    p = Progress()
    loss_sum = torch.zeros((), device=accelerator.device)
    best_params = {n: t.clone() for n, t in model.trained_state().items()}
    if saved:
        trainer.optimizer.load_state_dict(saved["optimizer"])
        precision.load_state_dict(saved["precision"])
        p = Progress(**saved["progress"])
        ranks = saved["ranks"]
        mine = ranks[accelerator.process_index] if len(ranks) == accelerator.num_processes else None
        if mine:
            _set_rng_state(mine["rng"])
        else:
            torch.manual_seed(process_seed(config.seed + p.step, accelerator.process_index))
        loss_sum += (mine["loss_sum"] if mine else torch.stack([r["loss_sum"] for r in ranks]).mean()).to(
            loss_sum.device
        )
        if p.best_step:
            best_params = read_checkpoint(run.checkpoints / "best")[0]
    else:
        torch.manual_seed(process_seed(config.seed, accelerator.process_index))  # each process its own dropout
    if config.log:
        scalars = {
            k: v if isinstance(v, (int, float, str, bool)) else str(v)
            for k, v in {**config.to_dict(), **layout}.items()
        }
        accelerator.init_trackers(
            "tensorboard" if config.log == "tensorboard" else "fpt",
            scalars,
            {"wandb": {"name": out.name, "dir": str(out)}},
        )
    counts = model.group_counts()
    n_trained, n_total = sum(t.numel() for t in trainer.trained), sum(c for c, _ in counts.values())
    checkpoint_every = config.checkpoint_every or config.eval_every

    def save_resumable(step: int) -> None:
        ranks = gather_object([{"rng": _rng_state(), "loss_sum": loss_sum.detach().cpu()}])
        if main:
            state = {
                "optimizer": trainer.optimizer.state_dict(),
                "precision": precision.state_dict(),
                "progress": p.to_dict(),
                "ranks": ranks,
                "plan": plan.to_dict(),
                "config": _resumed_config(config),
            }
            save_checkpoint(run.checkpoints / step_name(step), model, step, state=state)
            prune(run.checkpoints, config.keep_checkpoints)

    stream = step_task.train_batches(config.batch_size, config.seed)
    for _ in range(p.step):  # replay the stream to where the checkpoint left it
        next(stream)
    status, resumed_from = "finished", p.step if saved else None
    window_start, window_samples = time.time(), 0
    bar = tqdm(
        initial=p.step,
        total=config.steps,
        disable=not (progress and main),
        desc=f"{task.name} {config.init}",
        file=sys.stderr,
    )
    with StopRequests(accelerator) as stop:
        for step in range(p.step + 1, config.steps + 1):
            loss_sum += training_step(trainer, next(stream))
            p.step, p.loss_steps = step, p.loss_steps + 1
            window_samples += config.batch_size
            bar.update()
            if step % config.eval_every == 0 or step == config.steps:
                train_loss = accelerator.reduce(loss_sum, "mean").item() / p.loss_steps  # host sync: evaluations only
                if not math.isfinite(train_loss):
                    status = "diverged"
                    break
                samples_per_s = window_samples / max(time.time() - window_start, 1e-9)
                val = evaluate(
                    step_model, step_task, "val", config.eval_batch_size, accelerator.device, accelerator, precision
                )
                record = {
                    "step": step,
                    "train_loss": train_loss,
                    "val_accuracy": val["accuracy"],
                    "val_exact_match": val["exact_match"],
                    "elapsed_s": round(time.time() - started, 3),
                    "samples_per_s": round(samples_per_s, 2),
                }
                if main:
                    run.append_metrics(record)
                accelerator.log(record, step=step)
                bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{val['accuracy']:.4f}")
                if val["accuracy"] > p.best_accuracy:
                    p.best_step, p.best_accuracy = step, val["accuracy"]
                    best_params = {n: t.clone() for n, t in model.trained_state().items()}
                    if main:
                        save_checkpoint(run.checkpoints / "best", model, step, extra={"val": val})
                if p.steps_to_100 is None and val["accuracy"] >= 1.0:
                    p.steps_to_100 = step
                loss_sum.zero_()
                p.loss_steps, window_start, window_samples = 0, time.time(), 0
                if config.target_accuracy is not None and val["accuracy"] >= config.target_accuracy:
                    status = "early-stopped"
            interrupted = stop.agreed(step)
            if interrupted or status == "early-stopped" or step == config.steps or step % checkpoint_every == 0:
                save_resumable(step)
            if interrupted:
                status = "interrupted"
            if status != "finished":
                break
    bar.close()

    summary = {
        "task": task.name,
        "backbone": config.backbone,
        "init": config.init,
        "init_fingerprint": getattr(model.config, "init_fingerprint", None),
        "train": config.train,
        "seed": config.seed,
        "steps": p.step,
        "status": status,
        "best_step": p.best_step,
        "best_val_accuracy": p.best_accuracy if p.best_step else None,
        "steps_to_100": p.steps_to_100,
        "trainable_params": n_trained,
        "total_params": n_total,
        "metric_names": task.metric_names,
        **layout,
        "resumed_from_step": resumed_from,
    }
    if status in ("diverged", "interrupted"):
        summary["wall_seconds"] = round(time.time() - started, 2)
        summary["test_accuracy"] = None
        if main:
            run.write_summary(summary)
        _finish_trackers(accelerator)
        if status == "interrupted":
            raise TrainingInterrupted(
                f"Interrupted at step {p.step} of {config.steps}; a checkpoint was saved in "
                f"{run.checkpoints / step_name(p.step)}. Continue with `fpt train --resume {out}`."
            )
        kept = (
            f"the last good checkpoint (step {p.best_step}) is kept in {run.checkpoints}"
            if p.best_step
            else "no checkpoint had been written yet"
        )
        raise TrainingDiverged(
            f"Training diverged: the loss became non-finite before step {p.step}; stopped, and {kept}. "
            f"Try a lower --lr (now {config.lr}) or a smaller clip norm."
        )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in best_params:
                param.copy_(best_params[name])
    test = evaluate(step_model, step_task, "test", config.eval_batch_size, accelerator.device, accelerator, precision)
    summary.update(
        {
            "test_split": getattr(task, "split_sources", {}).get("test", "test"),
            "val_split": getattr(task, "split_sources", {}).get("val", "val"),
            "test_examples": test["examples"],
            "test_accuracy": test["accuracy"],
            "test_exact_match": test["exact_match"],
            "wall_seconds": round(time.time() - started, 2),
        }
    )
    if main:
        run.write_summary(summary)
    _finish_trackers(accelerator)
    log(
        f"{task.name}: test {task.metric_names['accuracy']} {test['accuracy']:.4f}, "
        f"{task.metric_names['exact_match']} {test['exact_match']:.4f} "
        f"(best val step {p.best_step}, {test['examples']} test examples)"
    )
    return summary

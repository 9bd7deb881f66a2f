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
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import cast

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import broadcast_object_list, gather_object

from fpt.data.fingerprint import check_unchanged
from fpt.errors import OUT_OF_MEMORY, FPTError, is_out_of_memory
from fpt.files import atomic_write
from fpt.importing import import_modules
from fpt.model.fast_paths import drop_cpu_fast_paths
from fpt.model.fpt import FPTConfig, FrozenPretrainedTransformer
from fpt.model.lstm import LSTMBaseline, LSTMConfig
from fpt.model.methods import registering_module as method_module
from fpt.plugins import recorded_imports
from fpt.runs.checkpoint import TrainedModel, prune, read_checkpoint, save_checkpoint, step_checkpoints, step_name
from fpt.runs.lock import RunLock
from fpt.runs.record import RunDir, default_run_dir, enclosing_run, read_run_record
from fpt.tasks import Batch, Task, get_task, registering_module
from fpt.tasks.arrays import DATA_FILE, task_record
from fpt.tasks.base import check_model_fits
from fpt.tasks.outputs import Classification
from fpt.tasks.stream import StreamCursor, takes_cursor
from fpt.training.align import ALIGN_FILE, align_input, read_alignment, write_records
from fpt.training.batch_memory import eval_batch_that_fits, fit_to_memory, require_training_memory
from fpt.training.compiler import compiler_missing, maybe_compile
from fpt.training.config import RunConfig
from fpt.training.distributed import (
    BatchPlan,
    local_micro_batches,
    make_accelerator,
    plan_batches,
    process_seed,
    resolve_tracker,
    shared_gpu_backend,
)
from fpt.training.feature_cache import cache_if_output_only
from fpt.training.optimizer import clip_gradients, make_optimizer
from fpt.training.options_used import check_options_used, given_in_python
from fpt.training.precision import Precision
from fpt.training.progress import Reporter, reporter
from fpt.training.resume import open_for_resume, resumed_config, rng_state, seed_everything, set_rng_state
from fpt.training.signals import StopRequests


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
    """The model `config.model` names, shaped for `task`; random inits drawn with the run's seed."""
    model = config.model
    if model.is_lstm:
        if model.init != "random":
            raise FPTError(f"The LSTM baseline has no pretrained weights (init {model.init!r}); pass --init random.")
        return LSTMBaseline(
            LSTMConfig(
                **task.spec.model_fields(),
                layers=model.layers or 3,
                train=model.train,
                init_seed=config.seed,
                dropout=model.dropout,
                architecture=model.architecture,
            )
        )
    return FrozenPretrainedTransformer(FPTConfig(**task.spec.model_fields(), **asdict(model), init_seed=config.seed))


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    task: Task,
    split: str,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    accelerator: Accelerator | None = None,
    precision: Precision | None = None,
    progress: Reporter | None = None,
) -> dict[str, float]:
    """One full pass over `split`: the task's output kind's metrics (unit accuracy and exact match, or
    MSE and MAE) of the restored outputs (`Batch.restore`), and the number of examples.

    With an `accelerator`, process r scores batches r, r + n, r + 2n, ... and the counts are summed,
    so every example counts exactly once, with no padding duplicates. `progress` reports the pass.
    """
    check_model_fits(task, getattr(model, "config", None), (split,))
    batch_size = eval_batch_that_fits(model, task, split, batch_size, device)  # lowered where it does not fit
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    was_training = model.training
    model.eval()
    scores = task.spec.output_kind.scores()
    batches = task.eval_batches(split, batch_size)
    if progress is not None:
        n = task.split_size(split)
        batches = progress.track(batches, f"{split} pass ({n} examples)", total=math.ceil(n / batch_size))
    with precision.autocast() if precision else nullcontext():
        for index, batch in enumerate(batches):
            if index % world == rank:
                batch = batch.to(device)
                scores.add(batch.restore(model(batch.inputs, batch.mask)), batch.targets)
    model.train(was_training)
    counts = scores.totals(device)
    if accelerator is not None and world > 1:
        counts = accelerator.reduce(counts, "sum")
    result = scores.from_totals(counts).result()
    if result["examples"] != task.split_size(split):
        raise RuntimeError(f"evaluated {result['examples']} of {task.split_size(split)} {split} examples")
    return result


@dataclass
class Progress:
    """Loop counters a resumable checkpoint restores, besides parameters, optimizer and RNG."""

    step: int = 0
    best_step: int = 0
    best_metric: float | None = None  # the selection metric's best validation value (fpt.tasks.outputs)
    steps_to_100: int | None = None  # classification: the first evaluation at 100% validation accuracy
    loss_steps: int = 0  # steps summed in the running loss since the last evaluation

    def to_dict(self) -> dict:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, values: dict) -> Progress:
        """From a checkpoint; one written before output kinds holds `best_accuracy` (-1: none yet)."""
        values = dict(values)
        if "best_accuracy" in values:
            legacy = values.pop("best_accuracy")
            values["best_metric"] = legacy if values.get("best_step") else None
        return cls(**values)


def _baselines(task: Task) -> dict:
    """{"baselines": {split: {name: metrics}}} for a task that has reference predictions (a forecast's last
    value), else nothing: summaries of other tasks stay as they were."""
    found = {split: task.baselines(split) for split in ("val", "test")}
    return {"baselines": found} if any(found.values()) else {}


@dataclass(kw_only=True)
class Trainer:
    """What an optimizer step needs (`prepare_training`, `training_step`) and, in `train`, the loop's
    state with its phases: `begin`, `restore`, `step`, `validate`, `save`, `finish`.

    `model` is DDP-wrapped with several processes; `module` never is. `source` is the whole model,
    whose trained parameters are checkpointed (on cached features `module` is only its head)."""

    accelerator: Accelerator
    model: torch.nn.Module
    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    task: Task
    plan: BatchPlan
    precision: Precision
    clip_norm: float
    trained: list[torch.nn.Parameter]
    config: RunConfig
    source: TrainedModel
    progress: Progress = field(default_factory=Progress)
    loss_sum: torch.Tensor = field(default_factory=lambda: torch.zeros(()))  # since the last evaluation
    best: dict[str, torch.Tensor] = field(default_factory=dict)  # the trained parameters of the best evaluation
    run: RunDir = field(default_factory=lambda: RunDir(Path()))  # set by `begin`
    lock: RunLock | None = None  # the main process's lock on the run directory, from `begin` to `release`
    started: float = 0.0
    log: Callable[..., None] = print
    resumed_from: int | None = None
    window: tuple[float, int] = (0.0, 0)  # (start time, samples) of the throughput window
    report: Reporter = field(default_factory=lambda: Reporter("quiet"))  # progress lines, bar or JSON
    callbacks: Sequence = ()  # objects with on_eval(step, record) -> stop?, or such callables
    validated: bool = False  # a validation pass ran in this process (the first is announced: it can take minutes)
    cursor: StreamCursor = field(default_factory=StreamCursor)  # where the training stream stands (checkpointed)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def layout(self) -> dict:
        return {**self.plan.to_dict(), "precision": self.precision.name}

    def begin(self, out: Path, started: float, log: Callable[..., None], resuming_at: int | None) -> None:
        """Create the run directory (resuming: drop the metrics written after the checkpoint) and report."""
        self.run, self.started, self.log = RunDir(out), started, log
        refused: list[str | None] = [None]
        if self.main:
            try:
                self.lock = claim_run_dir(out, resuming_at)
            except FPTError as err:
                refused[0] = str(err)
        if self.accelerator.num_processes > 1:
            broadcast_object_list(refused)
        if refused[0]:
            raise FPTError(refused[0])
        self.accelerator.wait_for_everyone()  # every process has checked the run directory before it changes
        if self.main and resuming_at is not None:
            self.run.truncate_metrics(resuming_at)
        elif self.main:
            derived = {
                "distributed": self.layout,
                "fast_paths_applied": self.source.fast_paths,
                "data": self.task.data_fingerprint,  # checked by --resume and fpt eval (fpt.data.fingerprint)
            }
            RunDir.create(out, {**self.config.to_dict(), **derived}, self.source.config_dict())
            atomic_write(out / "freeze_report.txt", (self.source.freeze_report() + "\n").encode())
        tracker_name = resolve_tracker(self.config.log)
        if tracker_name:
            scalars = {
                k: v if isinstance(v, (int, float, str, bool)) else str(v)
                for k, v in {**self.config.to_dict(), **self.layout}.items()
            }
            tracker = "tensorboard" if tracker_name == "tensorboard" else "fpt"
            self.accelerator.init_trackers(tracker, scalars, {"wandb": {"name": out.name, "dir": str(out)}})
        log(self.source.freeze_report())
        log(f"Run directory: {out}")
        log(
            f"{self.plan.processes} process(es) on {self.device} x {self.plan.accumulation} micro-batch(es) of "
            f"{self.plan.micro_batch} = batch {self.plan.batch_size} per step; precision {self.precision.name}"
        )

    def release(self) -> None:
        """Let go of the run directory (the OS also does, should the process die)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def restore(self, saved: dict | None) -> None:
        """Optimizer, loss scale, counters, RNG and running loss from a checkpoint, or a fresh start."""
        self.best = {n: t.clone() for n, t in self.source.trained_state().items()}
        if saved:
            self.optimizer.load_state_dict(saved["optimizer"])
            self.precision.load_state_dict(saved["precision"])
            self.progress = Progress.from_dict(saved["progress"])
            self.cursor = StreamCursor(saved.get("stream"))  # none in checkpoints from before cursors: replayed
            ranks = saved["ranks"]
            mine = ranks[self.accelerator.process_index] if len(ranks) == self.accelerator.num_processes else None
            if mine:
                set_rng_state(mine["rng"])
            else:
                torch.manual_seed(process_seed(self.config.seed + self.progress.step, self.accelerator.process_index))
            loss_sum = mine["loss_sum"] if mine else torch.stack([r["loss_sum"] for r in ranks]).mean()
            self.loss_sum += loss_sum.to(self.loss_sum.device)
            if self.progress.best_step:
                self.best = read_checkpoint(self.run.checkpoints / "best")[0]
            self.resumed_from = self.progress.step
            self.started -= saved.get("elapsed_s", 0.0)  # elapsed_s and wall_seconds go on from the checkpoint
        else:
            torch.manual_seed(process_seed(self.config.seed, self.accelerator.process_index))  # own dropout stream
        self.window = (time.time(), 0)

    def train_batches(self) -> Iterator[Batch]:
        """The training stream from where the restored progress left it: at once from the checkpoint's
        cursor where the task keeps one, else by drawing and dropping the batches before (fpt.tasks.stream)."""
        batch_size, seed = self.config.batch_size, self.config.seed
        if takes_cursor(self.task):
            stream = self.task.train_batches(batch_size, seed, cursor=self.cursor)
            if self.cursor.restored:
                return stream
        else:
            stream = self.task.train_batches(batch_size, seed)
        for _ in range(self.progress.step):
            next(stream)
        return stream

    def step(self, batch: Batch) -> None:
        self.loss_sum += training_step(self, batch)
        self.progress.step, self.progress.loss_steps = self.progress.step + 1, self.progress.loss_steps + 1
        self.window = (self.window[0], self.window[1] + self.config.batch_size)

    def validate(self) -> tuple[str, dict | None]:
        """Evaluate on validation, record the metrics, keep the best parameters.

        Returns the run's status (`finished` to go on, `diverged`, `early-stopped`, `pruned`) and the record."""
        p, config = self.progress, self.config
        train_loss = self.accelerator.reduce(self.loss_sum, "mean").item() / p.loss_steps  # host sync: evaluations only
        if not math.isfinite(train_loss):
            return "diverged", None
        samples_per_s = self.window[1] / max(time.time() - self.window[0], 1e-9)
        first = None if self.validated else self.report  # later passes are like it: the eval lines give the pace
        val = evaluate(
            self.module, self.task, "val", config.eval_batch_size, self.device, self.accelerator, self.precision, first
        )
        self.validated = True
        kind = self.task.spec.output_kind
        record = {
            "step": p.step,
            "train_loss": train_loss,
            **{f"val_{name}": val[name] for name in kind.headline},
            "elapsed_s": round(time.time() - self.started, 3),
            "samples_per_s": round(samples_per_s, 2),
        }
        if self.main:
            self.run.append_metrics(record)
        self.accelerator.log(record, step=p.step)
        if kind.selection.better(val[kind.selection.metric], p.best_metric):
            p.best_step, p.best_metric = p.step, val[kind.selection.metric]
            self.best = {n: t.clone() for n, t in self.source.trained_state().items()}
            if self.main:
                save_checkpoint(self.run.checkpoints / "best", self.source, p.step, extra={"val": val})
        if p.steps_to_100 is None and val.get("accuracy", 0.0) >= 1.0:
            p.steps_to_100 = p.step
        self.loss_sum.zero_()
        p.loss_steps, self.window = 0, (time.time(), 0)
        self.report.evaluation(record)
        early = config.target_accuracy is not None and val.get("accuracy", 0.0) >= config.target_accuracy
        early = early or (config.patience is not None and p.step - p.best_step >= config.patience * config.eval_every)
        if early:
            return "early-stopped", record
        return ("pruned" if self._callbacks_stop(record) else "finished"), record

    def _callbacks_stop(self, record: dict) -> bool:
        """Run the callbacks on the main process (e.g. Optuna pruning); True when one asks to stop: the run
        is pruned, and its test pass skipped (a pruned trial is not the one chosen; the pass can take minutes)."""
        stop = [False]
        if self.main:
            for callback in self.callbacks:
                if getattr(callback, "on_eval", callback)(record["step"], dict(record)):
                    self.log(f"Pruned at step {record['step']} by callback {callback!r}: no test pass.")
                    stop[0] = True
        if self.accelerator.num_processes > 1:
            broadcast_object_list(stop)  # every process stops at the same step
        return stop[0]

    def save(self) -> None:
        """A resumable checkpoint at the current step (every process's RNG; written by the main one)."""
        ranks = gather_object([{"rng": rng_state(), "loss_sum": self.loss_sum.detach().cpu()}])
        if self.main:
            state = {
                "optimizer": self.optimizer.state_dict(),
                "precision": self.precision.state_dict(),
                "progress": self.progress.to_dict(),
                "ranks": ranks,
                "stream": self.cursor.state_dict(),
                "plan": self.plan.to_dict(),
                "config": resumed_config(self.config),
                "elapsed_s": time.time() - self.started,
            }
            step = self.progress.step
            save_checkpoint(self.run.checkpoints / step_name(step), self.source, step, state=state)
            prune(self.run.checkpoints, self.config.keep_checkpoints)

    def finish(self, status: str) -> dict:
        """Write summary.json and end the run: the test pass of the best parameters when it finished,
        else the error saying what happened and what was kept."""
        summary = self.run_facts(status)
        test = self.test_best() if status not in ("diverged", "interrupted", "pruned") else {}
        if test:
            sources = self.task.split_sources
            summary.update(test_split=sources.get("test", "test"), val_split=sources.get("val", "val"))
            summary["test_examples"] = test["examples"]
        # every metric of the output kind: test_accuracy, test_exact_match, test_prediction_share (1.0: one
        # class predicted everywhere), test_majority_share; or test_mse, test_mae
        selection = self.task.spec.output_kind.selection
        metrics: dict[str, float | None] = {f"test_{k}": v for k, v in test.items() if k != "examples"}
        summary.update(metrics or {f"test_{selection.metric}": None})
        summary["test_metric"] = test[selection.metric] if test else None  # of any kind: see summary["selection"]
        summary["wall_seconds"] = round(time.time() - self.started, 2)
        if self.main:
            self.run.write_summary(summary)
        for tracker in self.accelerator.trackers:  # Accelerator.end_training would also end the process group
            tracker.finish()
        self.raise_unless_finished(status)
        if status == "pruned":
            return summary
        names = self.task.metric_names
        shown = ", ".join(f"{names.get(k, k)} {test[k]:.4f}" for k in self.task.spec.output_kind.headline)
        self.log(
            f"{self.task.name}: test {shown} (best val step {self.progress.best_step}, {test['examples']} test examples)"
        )
        return summary

    def run_facts(self, status: str) -> dict:
        """What summary.json records before the test pass: the run's settings, counters, data and layout."""
        p, config, model = self.progress, self.config, self.config.model
        counts, kind = self.source.group_counts(), self.task.spec.output_kind
        return {
            "task": self.task.name,
            "task_options": config.task_options,
            "architecture": model.architecture,
            "backbone": model.backbone,
            "init": model.init,
            "init_fingerprint": getattr(self.source.config, "init_fingerprint", None),
            "train": model.train,
            "method": f"{config.align}+{model.train}" if config.align else model.train,
            "align": read_alignment(self.run.path) if config.align else None,
            "seed": config.seed,
            "steps": p.step,
            "status": status,
            "best_step": p.best_step,
            f"best_val_{kind.selection.metric}": p.best_metric if p.best_step else None,
            "selection": kind.selection.to_dict(),  # the metric that chose the best step (fpt.tasks.outputs)
            "best_val_metric": p.best_metric if p.best_step else None,
            "steps_to_100": p.steps_to_100,
            "trainable_params": sum(t.numel() for t in self.trained),
            "total_params": sum(c for c, _ in counts.values()),
            "metric_names": self.task.metric_names,
            "fast_paths_applied": self.source.fast_paths,
            "data": self.task.data_fingerprint,
            **_baselines(self.task),
            "position_table": getattr(self.source, "position_table", None),  # {interpolated_from, to} when stretched
            "features_cached": self.module is not self.source,  # output-only on cached features: no backbone dropout
            **self.layout,
            "resumed_from_step": self.resumed_from,
        }

    def test_best(self) -> dict[str, float]:
        """Load the best validation step's trained parameters and evaluate them on the test split."""
        with torch.no_grad():
            for name, param in self.source.named_parameters():
                if name in self.best:
                    param.copy_(self.best[name])
        return evaluate(
            self.module,
            self.task,
            "test",
            self.config.eval_batch_size,
            self.device,
            self.accelerator,
            self.precision,
            self.report,
        )

    def raise_unless_finished(self, status: str) -> None:
        """An interrupted or diverged run ends in an error saying what was kept and what to do."""
        p, run = self.progress, self.run
        if status == "interrupted":
            raise TrainingInterrupted(
                f"Interrupted at step {p.step} of {self.config.steps}; a checkpoint was saved in "
                f"{run.checkpoints / step_name(p.step)}. Continue with `fpt train --resume {run.path}`."
            )
        if status == "diverged":
            kept = (
                f"the last good checkpoint (step {p.best_step}) is kept in {run.checkpoints}"
                if p.best_step
                else "no checkpoint had been written yet"
            )
            raise TrainingDiverged(
                f"Training diverged: the loss became non-finite before step {p.step}; stopped, and {kept}. "
                f"Try a lower --lr (now {self.config.lr}) or a smaller clip norm."
            )


def prepare_training(
    config: RunConfig,
    task: Task,
    model: torch.nn.Module,
    accelerator: Accelerator,
    source: TrainedModel | None = None,
) -> Trainer:
    """Place `model` on this process's device, wrap it for data parallelism, and make the optimizer.

    `source`: the whole model when `model` is only its head on cached features (see `train`)."""
    plan = plan_batches(config.batch_size, accelerator.num_processes, config.grad_accum, config.micro_batch_size)
    precision = Precision.create(config.precision, accelerator.device)
    trained = [p for p in model.parameters() if p.requires_grad]
    wrapped = accelerator.prepare(model.train())
    precision.store_frozen_matrices(model)  # after the DDP wrap: it broadcasts fp32 weights
    compiled = config.compile and compiler_missing(accelerator.device) is None  # no compiler: eager, CPU dropout kept
    if accelerator.device.type != "cpu" or compiled:  # fused GPU kernels; compiled graphs make their own masks
        drop_cpu_fast_paths(source if source is not None else model)
    if config.compile:
        wrapped = maybe_compile(wrapped, accelerator.device)  # eager, with a warning, where no compiler exists
    optimizer = make_optimizer(trained, config.lr, accelerator.device)  # fused: one kernel over the trained tensors
    return Trainer(
        accelerator=accelerator,
        model=wrapped,
        module=model,
        optimizer=optimizer,
        task=task,
        plan=plan,
        precision=precision,
        clip_norm=config.clip_norm,
        trained=trained,
        config=config,
        source=source if source is not None else cast(TrainedModel, model),
        loss_sum=torch.zeros((), device=accelerator.device),
    )


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
                outputs = part.restore(trainer.model(part.inputs, part.mask))
                loss = trainer.task.loss(outputs, part.targets) / len(parts)
            trainer.precision.backward(loss)
        total += loss.detach()
    trainer.precision.unscale(trainer.optimizer)
    clip_gradients(trainer.trained, trainer.clip_norm)
    trainer.precision.step(trainer.optimizer)
    trainer.optimizer.zero_grad(set_to_none=True)
    return total


def claim_run_dir(out: Path, resuming_at: int | None) -> RunLock:
    """Create `out` and take its lock (one writer per run directory), then check under the lock that it
    holds no run (a new run) or still the checkpoint being resumed: two writers started together cannot
    both pass."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FPTError(f"Cannot create the run directory {out} ({err.strerror or err}); choose another --out.") from err
    lock = RunLock(out).acquire()
    newest = step_checkpoints(out / "checkpoints")
    problem = None
    if resuming_at is None and (out / "config.yaml").exists():
        problem = f"{out} already holds a run; choose another --out so its results are not overwritten."
    elif resuming_at and (not newest or newest[-1].name != step_name(resuming_at)):
        problem = f"{out} changed while this resume was starting (another run wrote it); try again."
    if problem:
        lock.release()
        raise FPTError(problem)
    return lock


def check_stopping(config: RunConfig, task: Task) -> None:
    """Refuse a stopping rule the task's output kind has no metric for, before anything is written."""
    kind = task.spec.output_kind
    if config.target_accuracy is not None and not isinstance(kind, Classification):
        raise FPTError(
            f"target_accuracy stops a classification run at a validation accuracy; {task.name} is a "
            f"{kind.name} task, which has no accuracy. Use patience instead (stop after that many evaluations "
            f"without a new best validation {kind.selection.metric})."
        )


def _placed(
    config: RunConfig, task: Task | None, resume: bool, report: Reporter
) -> tuple[RunConfig, Task, torch.device]:
    """The task; a copy of `config` that records how to rebuild it and names the run directory; the device."""
    import_modules(config.imports)  # modules that register the user's tasks and backbones
    given = None  # the options a registered factory was called with (None: the task was passed in)
    if task is None:
        with report.phase(f"loading task {config.task}"):
            task, given = get_task(config.task, data_dir=config.data_dir, **config.task_options), config.task_options
    check_stopping(config, task)
    device = resolve_device(config.device)
    if device.index is not None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise FPTError(
                f"--device {config.device} names one GPU, but several processes were launched; use --device "
                "cuda (or auto) and each process takes its own local GPU."
            )
        torch.cuda.set_device(device)
    state = PartialState(cpu=device.type == "cpu", **shared_gpu_backend(device))  # gloo when processes share a GPU
    model = config.model.architecture if config.model.is_lstm else config.model.backbone  # an LSTM has no backbone
    out = [config.out or str(default_run_dir(task.name, model, config.model.init, config.seed))]
    if state.num_processes > 1:  # the main process names the run directory (its default name holds the time)
        broadcast_object_list(out)
    if Path(out[0]).exists() and not Path(out[0]).is_dir():
        raise FPTError(f"--out {out[0]} is a file; a run writes a directory there. Choose another --out.")
    markers = ("config.yaml", "checkpoints", "metrics.jsonl", ".lock", DATA_FILE)
    if not resume and Path(out[0]).is_dir() and any(Path(out[0]).iterdir()):
        if not any((Path(out[0]) / m).exists() for m in markers):
            raise FPTError(
                f"--out {out[0]} holds other files (not a run's); choose a new or empty directory so nothing in it "
                "is mixed with the run's files."
            )
    if enclosing_run(out[0]) is not None:
        raise FPTError(
            f"--out {out[0]} lies inside the run directory {enclosing_run(out[0])}; choose a place outside it."
        )
    if not resume and (Path(out[0]) / "config.yaml").exists():
        raise FPTError(
            f"{out[0]} already holds a run; choose another --out so its results are not overwritten, "
            f"or continue it with `fpt train --resume {out[0]}`."
        )
    if resume:  # the same examples as before, or a refusal that says what changed
        check_unchanged(read_run_record(out[0]).data, task.data_fingerprint, out[0], "resume")
    # what rebuilds the task in a new process (fpt eval, --resume): in-memory data is saved in the run
    name, options = task_record(task, Path(out[0]), write=state.is_main_process, given=given)
    modules = [registering_module(name), method_module(config.model.train)]
    imports = recorded_imports(config.imports, modules)
    return replace(config, task=name, task_options=options, imports=imports, out=out[0]), task, device


def _prepare(
    config: RunConfig, task: Task, model, accelerator: Accelerator, log, report: Reporter, callbacks: Sequence
) -> Trainer:
    """The Trainer; output-only runs on fixed data train the head on cached backbone features."""
    precision = Precision.create(config.precision, accelerator.device)
    cached = (
        cache_if_output_only(model, task, config.eval_batch_size, accelerator.device, precision, log, report)
        if config.feature_cache
        else None
    )
    step_model, step_task = cached or (model, task)
    trainer = prepare_training(config, step_task, step_model, accelerator, source=model)
    trainer.report, trainer.callbacks = report, callbacks
    return trainer


def _align(config: RunConfig, task: Task, model, saved: dict | None, log, report: Reporter) -> list | None:
    """ORCA's first stage, the input layer fitted to the backbone's embedded text (`--align`); its
    records. A resumed run has its aligned input layer in the checkpoint."""
    if not config.align or saved:
        return None
    with report.counting(f"aligning the input layer ({config.align})", config.align_steps, "steps") as advance:
        return align_input(model, task, config, log, advance)


def train(
    config: RunConfig,
    task: Task | None = None,
    model: torch.nn.Module | None = None,
    progress: bool | str | Reporter = True,
    log: Callable[..., None] = print,
    resume: bool = False,
    stop: StopRequests | None = None,
    callbacks: Sequence = (),
) -> dict:
    """Train per `config` and return the summary (also written to the run directory's summary.json).

    `task` and `model` default to the ones `config` names; pass your own to train on your own data
    (the model ends holding its best-on-validation trained parameters; with bf16/fp16 its frozen
    matrices are stored in that precision). `config` itself is not changed. `resume=True` continues
    the run in `config.out` from its newest checkpoint (see `resume_config`). `stop`: pass
    `StopRequests.installed()` to turn Ctrl-C/SIGTERM into a checkpoint and `TrainingInterrupted`.
    `progress`: True (a bar on a terminal, else one line per evaluation), False, or a style of
    fpt.training.progress (`text`, `json`, ...). `callbacks`: objects with `on_eval(step, record)`
    (or plain callables) called after every evaluation with its metrics record; one returning True
    stops the run there (status `pruned`, a resumable checkpoint, no test pass): Optuna/Ray Tune pruning.
    """
    started = time.time()
    if not resume:  # options the method would ignore (a resume keeps the run's own config)
        import_modules(config.imports)  # a method a module registers is looked up here
        check_options_used(config, given_in_python(config))
    main_process = int(os.environ.get("RANK", "0")) == 0  # launchers set RANK; the accelerator comes later
    report = reporter(progress if main_process else False)
    config, task, device = _placed(config, task, resume, report)
    accelerator = make_accelerator(config.device, config.log, config.out)
    log = log if accelerator.is_main_process else (lambda *a: None)
    seed_everything(config.seed)
    model = model or build_model(config, task)
    check_model_fits(task, getattr(model, "config", None), ("train", *task.splits))
    config = fit_to_memory(config, task, model, accelerator.num_processes, accelerator.device, log)
    require_training_memory(config, task, model, accelerator.num_processes, accelerator.device)
    task.require_full_batches(config.batch_size)
    # a from: init made absolute
    config = replace(config, model=replace(config.model, init=getattr(model.config, "init", config.model.init)))
    out = Path(str(config.out))  # _placed always names it
    saved = open_for_resume(out, config, model, accelerator, log) if resume else None
    aligned = _align(config, task, model, saved, log, report)
    trainer = _prepare(config, task, model, accelerator, log, report, callbacks)
    try:
        trainer.begin(out, started, log, saved["step"] if saved else (0 if resume else None))
        if aligned and trainer.main:
            write_records(out / ALIGN_FILE, aligned)
        return _loop(trainer, saved, report, stop)
    except (MemoryError, RuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        raise FPTError(f"{OUT_OF_MEMORY} (At step {trainer.progress.step}.)") from err
    finally:
        trainer.release()


def _loop(trainer: Trainer, saved: dict | None, report: Reporter, stop: StopRequests | None) -> dict:
    """Restore (or start) the run, train to config.steps with evaluations and checkpoints, finish."""
    config, task, accelerator = trainer.config, trainer.task, trainer.accelerator
    trainer.restore(saved)
    stream = trainer.train_batches()
    stop, status = stop or StopRequests(), "finished"
    checkpoint_every = config.checkpoint_every or config.eval_every
    report.start(config.steps, trainer.progress.step, f"{task.name} {config.model.init}", time.time() - trainer.started)
    with stop.checkpointing():  # from here a first Ctrl-C/SIGTERM checkpoints (fpt.training.signals)
        for step in range(trainer.progress.step + 1, config.steps + 1):
            trainer.step(next(stream))
            report.step()
            if step % config.eval_every == 0 or step == config.steps:
                status, _ = trainer.validate()
                if status == "diverged":
                    break
            interrupted = stop.agreed(step, accelerator)
            if (
                interrupted
                or status in ("early-stopped", "pruned")
                or step == config.steps
                or step % checkpoint_every == 0
            ):
                trainer.save()
            status = "interrupted" if interrupted else status
            if status != "finished":
                break
    report.end(status, trainer.progress.step, time.time() - trainer.started)
    return trainer.finish(status)

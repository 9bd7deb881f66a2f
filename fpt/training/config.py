"""The run configuration: one flat, typed object; YAML files and CLI flags both fill it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import get_args, get_type_hints

from fpt.errors import FPTError
from fpt.yamlsafe import read_yaml_mapping, short

# Upper bounds of the counts (steps up to 2^31; examples per batch up to 2^24).
LIMITS = {
    "steps": 2**31 - 1,
    "align_steps": 2**31 - 1,
    "eval_every": 2**31 - 1,
    "checkpoint_every": 2**31 - 1,
    "keep_checkpoints": 10_000,
    "batch_size": 2**24,
    "grad_accum": 2**24,
    "micro_batch_size": 2**24,
    "eval_batch_size": 2**24,
    "layers": 10_000,
}


@dataclass
class RunConfig:
    task: str = "bit-xor"
    task_options: dict = field(default_factory=dict)  # e.g. {n_bits: 5} (see the task's class)
    backbone: str = "minilm"
    init: str = "pretrained"  # pretrained | random | stats | from:FILE.safetensors | from:RUN_DIR
    # freeze policy: preset or trained groups (fpt.model.freeze); None: fpt for the transformer, all for the LSTMs
    train: str = None  # type: ignore[assignment]  # never None after __post_init__
    dropout: float = 0.1
    steps: int = 1000  # optimizer steps
    batch_size: int = 16  # examples per optimizer step
    grad_accum: int = 1  # micro-batches the batch is split into (same result, less memory)
    lr: float = None  # type: ignore[assignment]  # None: 1e-3 for the transformer, 3e-4 for the LSTMs (the paper's)
    clip_norm: float = 1.0
    eval_every: int = 50
    eval_batch_size: int = 256
    seed: int = 0  # training stream, dropout and random/stats backbone inits
    target_accuracy: float | None = None  # stop early once validation accuracy reaches it
    out: str | None = None  # run directory; default runs/<task>-<backbone>-<init>-s<seed>-<time>
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    attn_implementation: str = "sdpa"
    data_dir: str | None = None  # data root for file-backed tasks; default $FPT_DATA, else ~/.cache/fpt (fpt.data)
    architecture: str = "transformer"  # transformer (the FPT) | lstm (strong LN-LSTM) | lstm-paper (the authors' cell)
    layers: int | None = None  # transformer: keep the first N blocks; lstm: depth (default 3)
    precision: str = (
        "auto"  # fp32 | bf16 | fp16 | auto (bf16 where the GPU or CPU has native bf16, else fp16 on GPU, fp32 on CPU)
    )
    compile: bool = False  # torch.compile the model (the first steps are slow while it compiles)
    feature_cache: bool = True  # output-only runs on fixed datasets: the head trains on backbone features computed once (eval mode: no backbone dropout)
    micro_batch_size: int | None = None  # max examples per forward pass per process; sets grad_accum
    checkpoint_every: int | None = None  # steps between resumable checkpoints (default: every evaluation)
    keep_checkpoints: int = 2  # resumable checkpoints kept (plus `best`)
    log: str | None = None  # tensorboard | wandb, besides metrics.jsonl
    imports: list = field(default_factory=list)  # modules imported first: tasks/backbones they register (fpt.plugins)
    lora_rank: int = 8  # LoRA rank (--train lora, fpt+lora)
    lora_alpha: float = 16.0  # LoRA updates are scaled by lora_alpha / lora_rank
    adapter_targets: str | None = None  # modules the adapter wraps, comma-separated (default: peft's per architecture)
    align: str | None = None  # mmd | otdd: fit the input layer to the backbone's embedded English text first (ORCA)
    align_steps: int = 100  # alignment steps (batches of 64 target examples)
    align_lr: float = 1e-3  # alignment Adam learning rate

    def __post_init__(self) -> None:
        lstm = self.architecture in ("lstm", "lstm-paper")  # the paper's LSTM baselines are trained fully
        if self.train is None:
            self.train = "all" if lstm else "fpt"
        if self.lr is None:
            self.lr = 3e-4 if lstm else 1e-3
        problems = self._type_problems()
        if problems:  # the checks below assume the right types
            raise FPTError("Invalid run config: " + "; ".join(problems) + ".")
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "eval_batch_size", "lora_rank", "align_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive integer (got {short(repr(value))})")
        for name, limit in LIMITS.items():  # far beyond any real run; larger values only fail later, obscurely
            value = getattr(self, name)
            if isinstance(value, int) and value > limit:
                problems.append(f"{name} must be at most {limit:,} (got {short(repr(value))})")
        if self.batch_size % max(self.grad_accum, 1):
            problems.append(f"batch_size ({self.batch_size}) must be a multiple of grad_accum ({self.grad_accum})")
        for name in ("lr", "clip_norm", "lora_alpha", "align_lr"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                problems.append(f"{name} must be a positive number (got {short(repr(value))})")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1) (got {short(repr(self.dropout))})")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            problems.append(f"target_accuracy must be in (0, 1] (got {short(repr(self.target_accuracy))})")
        if self.architecture not in ("transformer", "lstm", "lstm-paper"):
            problems.append(
                f"architecture must be transformer, lstm or lstm-paper (got {short(repr(self.architecture))})"
            )
        if self.layers is not None and (not isinstance(self.layers, int) or self.layers < 1):
            problems.append(f"layers must be a positive integer (got {short(repr(self.layers))})")
        if not isinstance(self.task_options, dict):
            problems.append("task_options must be a mapping of option names to values")
        for name in ("micro_batch_size", "checkpoint_every", "keep_checkpoints"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name} must be a positive integer (got {short(repr(value))})")
        if self.micro_batch_size is not None and self.grad_accum != 1:
            problems.append("set either grad_accum or micro_batch_size (which computes the accumulation), not both")
        if self.precision not in ("fp32", "bf16", "fp16", "auto"):
            problems.append(f"precision must be fp32, bf16, fp16 or auto (got {short(repr(self.precision))})")
        if not all(isinstance(name, str) and name for name in self.imports):
            problems.append(f"imports must be a list of module names (got {short(repr(self.imports))})")
        if self.align not in (None, "mmd", "otdd"):
            problems.append(f"align must be mmd or otdd (got {short(repr(self.align))})")
        if self.log not in (None, "tensorboard", "wandb"):
            problems.append(f"log must be tensorboard or wandb (got {short(repr(self.log))})")
        if problems:
            raise FPTError("Invalid run config: " + "; ".join(problems) + ".")

    def _type_problems(self) -> list[str]:
        problems = []
        hints = get_type_hints(type(self))
        for f in fields(self):
            value, allowed = getattr(self, f.name), get_args(hints[f.name]) or (hints[f.name],)
            ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
            ok = ok or (float in allowed and isinstance(value, int) and not isinstance(value, bool))
            if not ok:
                names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
                problems.append(f"{f.name} must be {names} (got {short(repr(value))})")
        return problems

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> RunConfig:
        known = {f.name for f in fields(cls)}
        # `model` and `distributed` are derived, written for reference
        values = {k: v for k, v in values.items() if k not in ("model", "distributed")}
        unknown = sorted(map(str, set(values) - known))
        if unknown:
            raise FPTError(
                f"Unknown key(s) in {source}: {short(', '.join(unknown))}. Known keys: {', '.join(sorted(known))}."
            )
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> RunConfig:
        """Read `path`, then apply `overrides` (CLI flags win over the file)."""
        values = read_yaml_mapping(path, "Config file", "keys to values")
        return cls.from_dict({**values, **overrides}, source=str(path))

    def to_dict(self) -> dict:
        return asdict(self)

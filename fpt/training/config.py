"""The run configuration: one flat, typed object; YAML files, CLI flags and Python all fill it.

Each field carries its help text and bounds in its metadata and its choices in its type (`Literal`),
once: `fpt train`'s flags are generated from these fields (fpt.cli), and `__post_init__` checks
every value against its type hint and bounds, so a new field needs no code elsewhere.
"""

from __future__ import annotations

import math
import types
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from fpt.errors import FPTError, unknown_keys
from fpt.yamlsafe import read_yaml_mapping, short

Precision = Literal["fp32", "bf16", "fp16", "auto"]
Architecture = Literal["transformer", "lstm", "lstm-paper"]
Tracker = Literal["tensorboard", "wandb", "none"]
Alignment = Literal["mmd", "otdd"]
DERIVED_KEYS = ("model", "distributed", "fast_paths_applied", "data")  # config.yaml keys a run writes, not settings
STEPS, EXAMPLES = 2**31 - 1, 2**24  # upper bounds of counts: far beyond any real run, larger fail later, obscurely


def option(default: Any, help: str, *, min: float | None = None, max: float | None = None, **bounds: float) -> Any:
    """A RunConfig field: its default, one line of help, and inclusive bounds `min`/`max` (or
    exclusive ones: `above`, `below`)."""
    metadata = {"help": help, "min": min, "max": max, **bounds}
    if isinstance(default, (dict, list)):
        return field(default_factory=type(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunConfig:
    task: str = option("bit-xor", "task name, e.g. bit-xor, bit-memory (`fpt list tasks`)")
    task_options: dict = option({}, "task options, e.g. {n_bits: 5} (`fpt list tasks` shows each task's)")
    backbone: str = option("minilm", "named backbone (minilm, gpt2, ...), hub id or local directory")
    init: str = option("pretrained", "pretrained | random | stats | from:FILE.safetensors | from:RUN_DIR")
    train: str = option(
        None,
        "freeze policy: a preset (fpt, output, all, ...) or trained groups, e.g. input,output,norm; "
        "unset: fpt for the transformer, all for the LSTMs",
    )
    dropout: float = option(0.1, "dropout of the input layer and the backbone", min=0, below=1)
    steps: int = option(1000, "optimizer steps", min=1, max=STEPS)
    batch_size: int = option(16, "examples per optimizer step, over all processes", min=1, max=EXAMPLES)
    grad_accum: int = option(1, "micro-batches each step is split into (same result, less memory)", min=1, max=EXAMPLES)
    lr: float = option(
        None, "Adam learning rate; unset: 1e-3 for the transformer, 3e-4 for the LSTMs (the paper's)", above=0
    )
    clip_norm: float = option(1.0, "gradient norm clip", above=0)
    eval_every: int = option(50, "steps between validation passes", min=1, max=STEPS)
    eval_batch_size: int = option(256, "examples per evaluation batch (lowered to fit in memory)", min=1, max=EXAMPLES)
    seed: int = option(0, "seed of the training stream, dropout and random/stats backbone inits", min=0, max=2**32 - 1)
    target_accuracy: float | None = option(None, "stop once validation accuracy reaches this", above=0, max=1)
    patience: int | None = option(
        None,
        "stop once this many evaluations in a row brought no new best validation accuracy (a plateau)",
        min=1,
        max=STEPS,
    )
    out: str | None = option(None, "run directory; unset: runs/<task>-<backbone>-<init>-s<seed>-<time>")
    device: str = option("auto", "auto | cpu | cuda | cuda:N")
    attn_implementation: str = option("sdpa", "attention kernel: sdpa, or eager (slow; returns attention maps)")
    data_dir: str | None = option(None, "data root for dataset tasks; unset: $FPT_DATA, else ~/.cache/fpt")
    architecture: Architecture = option(
        "transformer",
        "transformer (the FPT), lstm (a strong 3-layer layer-norm LSTM) or lstm-paper (the authors' layer-norm "
        "LSTM cell, the paper's LSTM row); the LSTMs need --init random",
    )
    layers: int | None = option(
        None, "transformer: keep only the first N blocks; lstm: number of layers (3 if unset)", min=1, max=10_000
    )
    precision: Precision = option(
        "auto", "autocast precision; auto: bf16 where the GPU or CPU has it natively, else fp16 on GPU, fp32 on CPU"
    )
    compile: bool = option(
        False, "torch.compile the model (faster steps after a slow first one; CPU needs a C++ compiler)"
    )
    fast_paths: bool = option(
        True, "build the model with the exact CPU fast paths (fused GELU, CPU dropout, last block on read positions)"
    )
    feature_cache: bool = option(
        True,
        "output-only runs on fixed datasets: train the head on backbone features computed once (no backbone dropout)",
    )
    micro_batch_size: int | None = option(
        None,
        "max examples per forward pass per process; gradient accumulation is computed from it; unset: the whole "
        "batch, or the largest micro-batch that fits in memory",
        min=1,
        max=EXAMPLES,
    )
    checkpoint_every: int | None = option(
        None, "steps between resumable checkpoints (every evaluation if unset)", min=1, max=STEPS
    )
    keep_checkpoints: int = option(2, "resumable checkpoints kept besides `best`", min=1, max=10_000)
    log: Tracker | None = option(
        None, "also log metrics to TensorBoard or W&B, or none; unset: TensorBoard where it is installed"
    )
    imports: list = option(
        [], "modules to import first: the tasks and backbones they register become usable (fpt.plugins)"
    )
    method_options: dict = option(
        {}, "options of the method's tuner, e.g. {rank: 4} for lora (`fpt list methods` shows each method's)"
    )
    align: Alignment | None = option(
        None,
        "first fit the input layer so the data's embedded tokens match the backbone's embedded English text (ORCA)",
    )
    align_steps: int = option(100, "alignment steps of 64 examples", min=1, max=STEPS)
    align_lr: float = option(1e-3, "alignment learning rate", above=0)

    def __post_init__(self) -> None:
        lstm = self.architecture in ("lstm", "lstm-paper")  # the paper's LSTM baselines are trained fully
        if self.train is None:
            self.train = "all" if lstm else "fpt"
        if self.lr is None:
            self.lr = 3e-4 if lstm else 1e-3
        problems = self._type_problems()
        if problems:  # the checks below assume the right types
            raise FPTError("Invalid run config: " + "; ".join(problems) + ".")
        problems = [p for f in fields(self) if (p := _bounds_problem(f, getattr(self, f.name)))]
        if self.batch_size % max(self.grad_accum, 1):
            problems.append(f"batch_size ({self.batch_size}) must be a multiple of grad_accum ({self.grad_accum})")
        if self.micro_batch_size is not None and self.grad_accum != 1:
            problems.append("set either grad_accum or micro_batch_size (which computes the accumulation), not both")
        if not all(isinstance(name, str) and name for name in self.imports):
            problems.append(f"imports must be a list of module names (got {short(repr(self.imports))})")
        if problems:
            raise FPTError("Invalid run config: " + "; ".join(problems) + ".")

    def _type_problems(self) -> list[str]:
        problems = []
        kinds = field_kinds(type(self))
        for f in fields(self):
            value, allowed = getattr(self, f.name), kinds[f.name]
            types_ = tuple(t for t in allowed if isinstance(t, type))
            choices = [c for c in allowed if not isinstance(c, type)]
            ok = value in choices if choices and not isinstance(value, bool) else False
            ok = ok or (isinstance(value, types_) and not (isinstance(value, bool) and bool not in types_))
            ok = ok or (float in types_ and isinstance(value, int) and not isinstance(value, bool))
            if not ok:
                names = " or ".join("null" if t is type(None) else t.__name__ for t in types_)
                if choices:  # "fp32, bf16, fp16 or auto", "(or null)" where None is allowed too
                    names = ", ".join(choices[:-1]) + f" or {choices[-1]}" + (f" (or {names})" if names else "")
                problems.append(f"{f.name} must be {names} (got {short(repr(value))})")
        return problems

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> RunConfig:
        from fpt.model.methods import upgrade_legacy_options  # lora_rank & co. of configs written before

        values = upgrade_legacy_options(values)
        known = [f.name for f in fields(cls)]
        # `model`, `distributed`, `fast_paths_applied` and `data` are derived, written for reference
        values = {k: v for k, v in values.items() if k not in DERIVED_KEYS}
        unknown = sorted(map(str, set(values) - set(known)))
        if unknown:
            raise unknown_keys(source, unknown, known)
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> RunConfig:
        """Read `path`, then apply `overrides` (CLI flags win over the file)."""
        values = read_yaml_mapping(path, "Config file", "keys to values")
        return cls.from_dict({**values, **overrides}, source=str(path))

    def to_dict(self) -> dict:
        return asdict(self)


_KINDS: dict[Any, dict[str, tuple]] = {}


def field_kinds(config_class: Any) -> dict[str, tuple]:
    """Each field's allowed types and values (`allowed_values` of its hint), worked out once per class:
    resolving the hints took milliseconds a config, minutes for a grid of 20,000 runs."""
    if config_class not in _KINDS:
        hints = get_type_hints(config_class)
        _KINDS[config_class] = {f.name: allowed_values(hints[f.name]) for f in fields(config_class)}
    return _KINDS[config_class]


def allowed_values(hint: Any) -> tuple:
    """The types a hint admits, with a Literal's values in their place: `Literal["a"] | None` -> ("a", NoneType)."""
    if get_origin(hint) is Literal:
        return get_args(hint)
    if get_origin(hint) in (Union, types.UnionType):
        return tuple(v for arg in get_args(hint) for v in allowed_values(arg))
    return (get_origin(hint) or hint,)


def field_default(f: Field) -> Any:
    return f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default


def _bounds_problem(f: Field, value: Any) -> str | None:
    """The message for a number outside the field's metadata bounds (None and non-numbers pass)."""
    low, high, above, below = (f.metadata.get(k) for k in ("min", "max", "above", "below"))
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{f.name} must be a finite number (got {short(repr(value))})"
    if low == 1 and value < 1:
        return f"{f.name} must be a positive integer (got {short(repr(value))})"
    if above == 0 and below is None and high is None and value <= 0:
        return f"{f.name} must be a positive number (got {short(repr(value))})"
    if high is not None and value > high and low is not None:
        return f"{f.name} must be at most {high:,} (got {short(repr(value))})"
    too_low = (low is not None and value < low) or (above is not None and value <= above)
    too_high = (high is not None and value > high) or (below is not None and value >= below)
    if too_low or too_high:
        opening = f"[{low}" if low is not None else f"({above}"
        closing = f"{below})" if below is not None else f"{high}]"
        return f"{f.name} must be in {opening}, {closing} (got {short(repr(value))})"
    return None

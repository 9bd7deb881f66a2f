"""The run configuration: one typed object; YAML files, CLI flags and Python all fill it.

Each field carries its help text and bounds in its metadata and its choices in its type (`Literal`),
once (fpt.fields): `fpt train`'s flags are generated from these fields (fpt.cli), and `__post_init__`
checks every value against its type hint and bounds, so a new field needs no code elsewhere. What
model to build is its own config, `model` (fpt.model.config.ModelConfig), whose keys stay flat in
YAML files, flags and `to_dict()`: `backbone: gpt2`, `--backbone gpt2`, `RunConfig(backbone="gpt2")`.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from fpt.errors import FPTError, unknown_keys
from fpt.fields import nested, option, problems
from fpt.model.config import ModelConfig, model_keys
from fpt.yamlsafe import read_yaml_mapping, short

Precision = Literal["fp32", "bf16", "fp16", "auto"]
Tracker = Literal["tensorboard", "wandb", "none"]
Alignment = Literal["mmd", "otdd"]
STEPS, EXAMPLES = 2**31 - 1, 2**24  # upper bounds of counts: far beyond any real run, larger fail later, obscurely
# Keys config.yaml holds besides the run config's, derived from it and written for reference (and `model`).
DERIVED = ("distributed", "fast_paths_applied", "data")


@dataclass
class RunConfig:
    task: str = option("bit-xor", "task name, e.g. bit-xor, bit-memory (`fpt list tasks`)")
    task_options: dict = option({}, "task options, e.g. {n_bits: 5} (`fpt list tasks` shows each task's)")
    model: ModelConfig = nested(ModelConfig, "what model to build (backbone, init, train, ...; flat keys)")
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
    data_dir: str | None = option(None, "data root for dataset tasks; unset: $FPT_DATA, else ~/.cache/fpt")
    precision: Precision = option(
        "auto", "autocast precision; auto: bf16 where the GPU or CPU has it natively, else fp16 on GPU, fp32 on CPU"
    )
    compile: bool = option(
        False, "torch.compile the model (faster steps after a slow first one; CPU needs a C++ compiler)"
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
    align: Alignment | None = option(
        None,
        "first fit the input layer so the data's embedded tokens match the backbone's embedded English text (ORCA)",
    )
    align_steps: int = option(100, "alignment steps of 64 examples", min=1, max=STEPS)
    align_lr: float = option(1e-3, "alignment learning rate", above=0)

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise FPTError(f"Invalid run config: model must be a ModelConfig (got {short(repr(self.model))}).")
        if self.lr is None:
            self.lr = 3e-4 if self.model.is_lstm else 1e-3
        found = problems(self)
        if not found:  # the checks below assume the right types
            if self.batch_size % max(self.grad_accum, 1):
                found.append(f"batch_size ({self.batch_size}) must be a multiple of grad_accum ({self.grad_accum})")
            if self.micro_batch_size is not None and self.grad_accum != 1:
                found.append("set either grad_accum or micro_batch_size (which computes the accumulation), not both")
            if not all(isinstance(name, str) and name for name in self.imports):
                found.append(f"imports must be a list of module names (got {short(repr(self.imports))})")
        if found:
            raise FPTError("Invalid run config: " + "; ".join(found) + ".")

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> RunConfig:
        """A run config from flat keys (a YAML file's, config.yaml's or flags'); config.yaml's derived
        keys (its `model` section, the process layout) are skipped, and the options of configs written
        before the method registry (lora_rank & co.) upgraded."""
        from fpt.model.methods import upgrade_legacy_options  # deferred: loads torch

        values = upgrade_legacy_options({k: v for k, v in values.items() if k not in DERIVED})
        section = values.pop("model", None)
        if isinstance(section, dict) and "input_dim" not in section:  # model keys given as a section
            twice = sorted(set(section) & set(values))
            if twice:
                raise FPTError(f"{source} gives {', '.join(map(str, twice))} both in `model:` and at the top level.")
            values.update(section)
        known = [f.name for f in fields(cls) if f.name != "model"] + model_keys()
        unknown = sorted(map(str, set(values) - set(known)))
        if unknown:
            raise unknown_keys(source, unknown, known)
        model = ModelConfig(**{k: values.pop(k) for k in model_keys() if k in values})
        return cls(model=model, **values)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> RunConfig:
        """Read `path`, then apply `overrides` (CLI flags win over the file)."""
        values = read_yaml_mapping(path, "Config file", "keys to values")
        return cls.from_dict({**values, **overrides}, source=str(path))

    def to_dict(self) -> dict:
        """Flat keys, as YAML files and flags name them (config.yaml, checkpoints, sweep records)."""
        values = asdict(self)
        return {"task": values.pop("task"), "task_options": values.pop("task_options"), **values.pop("model"), **values}


def _flat_model_keys(generated: Any) -> Any:
    """`RunConfig(backbone="gpt2", steps=10)`: model keys may be given flat, as YAML files and flags give
    them; they fill (or, with `model=`, change) the run's ModelConfig."""

    @functools.wraps(generated)
    def __init__(self, *args, **values) -> None:
        flat = {k: values.pop(k) for k in model_keys() if k in values}
        if flat:
            given = values.get("model")
            values["model"] = replace(given, **flat) if isinstance(given, ModelConfig) else ModelConfig(**flat)
        generated(self, *args, **values)

    return __init__


RunConfig.__init__ = _flat_model_keys(RunConfig.__init__)  # type: ignore[method-assign]

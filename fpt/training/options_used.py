"""Options only some methods read (LoRA's rank, an adapter's targets, the alignment's steps) are
refused where the chosen method would ignore them: config.yaml records every option, so an ignored
`--lora-rank 4` on an `fpt` run would read as if it had mattered.

Only options the user gave count: flags and config-file keys on the command line, a grid run's own
keys, and in Python every field that differs from its default (a default is never "given").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields

from fpt.errors import FPTError
from fpt.training.config import RunConfig, field_default

READERS = {  # option -> which runs read it
    "lora_rank": "the lora and fpt+lora policies",
    "lora_alpha": "the lora and fpt+lora policies",
    "adapter_targets": "the adapter policies (lora, fpt+lora, ia3, ln-tuning)",
    "align_steps": "runs with --align (mmd or otdd)",
    "align_lr": "runs with --align (mmd or otdd)",
}


def unused_options(config: RunConfig, given: Iterable[str]) -> list[str]:
    """The options among `given` that the run `config` describes would not read."""
    from fpt.model.freeze import FreezePolicy  # deferred: loads torch

    adapter = FreezePolicy.parse(config.train).adapter
    reads = {
        "lora_rank": adapter == "lora",
        "lora_alpha": adapter == "lora",
        "adapter_targets": adapter is not None,
        "align_steps": config.align is not None,
        "align_lr": config.align is not None,
    }
    return [name for name in READERS if name in set(given) and not reads[name]]


def given_in_python(config: RunConfig) -> set[str]:
    """The options a RunConfig built in Python sets: those that differ from their defaults."""
    return {f.name for f in fields(config) if f.name in READERS and getattr(config, f.name) != field_default(f)}


def check_options_used(config: RunConfig, given: Iterable[str]) -> None:
    """Refuse a new run given options its method ignores, or adapter targets that name no module."""
    given = set(given)
    targets = config.adapter_targets
    if "adapter_targets" in given and targets is not None and not any(t.strip() for t in targets.split(",")):
        raise FPTError(
            f"--adapter-targets {targets!r} names no module; give module names such as q_proj,v_proj (matched at the "
            "end of each module's name), or leave it out for peft's defaults."
        )
    unused = unused_options(config, given)
    if unused:
        ignored = [
            f"--{name.replace('_', '-')} is read only by {READERS[name]}, and "
            + ("a run without --align" if name.startswith("align") else f"--train {config.train}")
            + " ignores it"
            for name in unused
        ]
        raise FPTError(
            "; ".join(ignored) + ". config.yaml records every option as if it mattered, so an ignored one is "
            "refused: drop it, or choose the method that uses it."
        )

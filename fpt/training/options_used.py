"""Options only some methods read (a tuner's options such as LoRA's rank, the alignment's steps) are
refused where the chosen method would ignore them: config.yaml records every option, so an ignored
`--method-option rank=4` on an `fpt` run would read as if it had mattered.

Only options the user gave count: flags and config-file keys on the command line, a grid run's own
keys, and in Python every field that differs from its default (a default is never "given").
"""

from __future__ import annotations

from collections.abc import Iterable

from fpt.errors import FPTError
from fpt.fields import field_default, flat_fields
from fpt.training.config import RunConfig

READERS = {  # option -> which runs read it
    "method_options": "methods that add a tuner (lora, fpt+lora, ia3, ln-tuning, prompt-tuning, ...: `fpt list methods`)",
    "align_steps": "runs with --align (mmd or otdd)",
    "align_lr": "runs with --align (mmd or otdd)",
}
FLAGS = {"method_options": "--method-option"}  # the others' flags are their names with dashes


def unused_options(config: RunConfig, given: Iterable[str]) -> list[str]:
    """The options among `given` that the run `config` describes would not read."""
    from fpt.model.freeze import FreezePolicy  # deferred: loads torch

    reads = {
        "method_options": FreezePolicy.parse(config.model.train).tuner is not None,
        "align_steps": config.align is not None,
        "align_lr": config.align is not None,
    }
    return [name for name in READERS if name in set(given) and not reads[name]]


def given_in_python(config: RunConfig) -> set[str]:
    """The options a RunConfig built in Python sets: those that differ from their defaults."""
    values = config.to_dict()
    return {f.name for f, _ in flat_fields(RunConfig) if f.name in READERS and values[f.name] != field_default(f)}


def check_options_used(config: RunConfig, given: Iterable[str]) -> None:
    """Refuse a new run given options its method ignores (a tuner's own options are checked by the tuner)."""
    unused = unused_options(config, given)
    if unused:
        ignored = [
            f"{FLAGS.get(name, '--' + name.replace('_', '-'))} is read only by {READERS[name]}, and "
            + ("a run without --align" if name.startswith("align") else f"--train {config.model.train}")
            + " ignores it"
            for name in unused
        ]
        raise FPTError(
            "; ".join(ignored) + ". config.yaml records every option as if it mattered, so an ignored one is "
            "refused: drop it, or choose the method that uses it."
        )

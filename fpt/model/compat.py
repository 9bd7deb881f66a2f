"""Which fast paths and backbone adapters the installed transformers is tested with.

The fast paths (fpt.model.fast_paths) rewrite or copy Hugging Face internals, so each is exact only
for the transformers versions its test passed with: the last-block copy takes the block's forward
arguments by name, and 5.0-5.23 name them differently. Outside its tested range a fast path is off,
said once in one line, and the run's recorded `fast_paths` lists only those applied. The ranges come
from the minimum-version search (benchmarks/results/min_versions.md); pyproject.toml declares the
package's own range, which is wider where only a fast path needs more.

A backbone adapter that drives a model's modules one by one (ViT's) has no slower path to fall back
on: outside its range, building such a backbone is refused with an FPTError that says which
transformers it needs.
"""

from __future__ import annotations

import logging
from importlib.metadata import version

from packaging.specifiers import SpecifierSet

# fast path -> the transformers versions its test passed with (fpt.model.fast_paths names them)
TESTED = {
    "fused-gelu": ">=5.0,<6",
    "cpu-dropout": ">=5.0,<6",
    "last-block-read-positions-only": ">=5.24,<6",  # 5.24 renamed the blocks' past_key_values to cache
    "packed-frozen-matrices": ">=5.0,<6",
    "native-kernels": ">=5.0,<6",  # swaps BertSelfOutput/BertOutput, whose forward is the same in 5.0.0 and 5.25.0  # tests/test_packed.py on 5.0.0 and 5.25.0 (GPT-2's Conv1D: x @ W + b)
}
# backbone adapter -> the transformers versions whose modules it drives (fpt.backbones.vit)
ADAPTERS = {
    "vit": ">=5.9,<6",  # 5.9 rewrote ViT and DeiT: blocks under `layers`, attention masks, q/k/v projections
}
_said: set[str] = set()


def _outside(ranges: dict[str, str], name: str) -> str | None:
    """The installed transformers version where it is outside `ranges[name]`, else None (also for a name
    with no range)."""
    installed = version("transformers")
    if name not in ranges or SpecifierSet(ranges[name]).contains(installed, prereleases=True):
        return None
    return installed


def fast_path_off(name: str) -> str | None:
    """Why fast path `name` is off with the installed transformers, or None where it is tested."""
    installed = _outside(TESTED, name)
    if installed is None:
        return None
    return f"fast path {name} is off: tested with transformers {TESTED[name]}, installed {installed}"


def adapter_unsupported(name: str) -> str | None:
    """Why backbone adapter `name` cannot drive the installed transformers' modules, or None where it can."""
    installed = _outside(ADAPTERS, name)
    if installed is None:
        return None
    return f"the {name} backbone adapter drives the modules of transformers {ADAPTERS[name]}; installed {installed}"


def fast_path_supported(name: str) -> bool:
    """Whether fast path `name` may apply here; where not, says why (once per process)."""
    why = fast_path_off(name)
    if why is not None and name not in _said:
        _said.add(name)
        logging.getLogger("fpt").warning(why)
    return why is None

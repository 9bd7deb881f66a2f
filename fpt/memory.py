"""Refuse a request whose sizes cannot fit in memory, before allocating anything for it.

Catching MemoryError is not enough on Linux: the kernel overcommits, so an allocation a little
larger than the free memory (or many small ones, like a list of 2^31 seeds) succeeds, the process
grows until the machine runs out, and the OOM killer ends it (or another process) without a word.
So the places that turn a requested size into an allocation first ask `require` with an estimate.
Estimates are floors (what the request needs at the very least), compared with the memory the
system says is available: a run they refuse could not have fit, and no legitimate run is refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fpt.errors import FPTError

UNKNOWN = 1 << 50  # no way to tell: assume plenty, and rely on catching allocation failures
# fpt.model's names for its attention with CPU dropout and its last-block fast path, repeated here because
# this module sits below fpt.model (tests/test_memory.py checks that they match).
CPU_DROPOUT_ATTENTION = "fpt_sdpa"
LAST_BLOCK_READS_POSITIONS_ONLY = "last-block-read-positions-only"
DROPOUT_KEYS = ("attention_probs_dropout_prob", "attn_pdrop", "attention_dropout")  # BERT, GPT-2, Llama and most


def available_bytes(device: object = None) -> int:
    """Memory this process can still get on `device` (a torch device; None: the CPU). A GPU's free memory;
    on the CPU Linux's MemAvailable (plus free swap), capped by a cgroup limit (containers) and an
    address-space limit (`ulimit -v`); elsewhere, free physical pages."""
    if getattr(device, "type", device) == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0]  # type: ignore[arg-type]
    if getattr(device, "type", device) not in (None, "cpu"):  # mps, xpu, ...: not reported the same way
        return UNKNOWN
    have = _meminfo_available()
    if have is None:
        try:
            have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        except (ValueError, OSError, AttributeError):  # not POSIX (Windows), or not reported (macOS)
            have = UNKNOWN
    return min(have, _cgroup_room(), _address_space_room())


def _meminfo_available() -> int | None:
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        return (int(fields["MemAvailable"].split()[0]) + int(fields.get("SwapFree", "0 kB").split()[0])) * 1024
    except (OSError, KeyError, ValueError, IndexError):
        return None


def _cgroup_room() -> int:
    """What the cgroup v2 memory limit leaves (UNKNOWN without one)."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        return max(int(limit) - used, 0) if limit != "max" else UNKNOWN
    except (OSError, ValueError):
        return UNKNOWN


def _address_space_room() -> int:
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return UNKNOWN
        used = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        return max(limit - used, 0)
    except (ImportError, OSError, ValueError, AttributeError):
        return UNKNOWN


def size(nbytes: float) -> str:
    if nbytes >= 2**70:
        return "far more than any machine has"
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:,.1f} MiB"


def memory_problem(asked: str, need: float, device: object = None) -> str | None:
    """Why `asked` (a phrase naming the request) cannot fit in `need` bytes on `device`, or None when it may."""
    have = available_bytes(device)
    if need <= have:
        return None
    where = f"on {device}" if getattr(device, "type", device) not in (None, "cpu") else "on this machine"
    return f"{asked}: that needs at least {size(need)} of memory, and about {size(have)} is available {where}"


def require(asked: str, need: float, lower: str, device: object = None) -> None:
    """An FPTError, before anything is allocated, when `need` bytes exceed the memory available on
    `device` (None: the CPU); `lower` says what to lower."""
    problem = memory_problem(asked, need, device)
    if problem:
        raise FPTError(f"{problem}; refused before allocating it. {lower}")


def most_that_fit(need: Callable[[int], float], most: int, device: object = None) -> int:
    """The largest n from 0 to `most` whose `need(n)` bytes (growing with n) fit on `device` (None: the CPU)."""
    have = available_bytes(device)
    low, high = 0, most
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if need(middle) <= have else (low, middle - 1)
    return low


def pass_bytes(
    model: object, examples: int, tokens: int, input_width: int, training: bool, device: object = None
) -> float:
    """A floor of the memory one pass of `model` over `examples` examples of `tokens` tokens needs on
    `device` (None: the CPU): the inputs; per position the backbone computes (the tokens and any
    `model.prefix_tokens` put before them), one float per hidden unit of every layer (kept
    for the backward pass when training; two live layers when evaluating); and where the attention
    path materializes the score matrices (`_score_bytes`), examples x heads x tokens^2 scores per
    layer, which dominate at long sequences. Real passes need more (measured on MiniLM:
    benchmarks/results/design_figures.md, "Memory of a training pass")."""
    head = getattr(model, "head", None)
    hidden = getattr(head, "hidden", 0)
    backbone = getattr(model, "backbone", None)
    if backbone is not None:  # a Hugging Face model, possibly multimodal (its text part is what runs)
        config = getattr(backbone, "config", None)
        text_config = getattr(config, "get_text_config", None)
        config = text_config() if callable(text_config) else config
        layers = getattr(config, "num_hidden_layers", None)
    else:  # the LSTM baselines: no attention
        config, layers = None, getattr(getattr(model, "config", None), "layers", None)
    layers = layers if isinstance(layers, int) and layers > 0 else 1
    prefix = getattr(model, "prefix_tokens", 0)  # put before the inputs by the backbone or method ([CLS], a prompt)
    states = tokens + (prefix if isinstance(prefix, int) else 0)  # positions the backbone computes
    per_state = hidden * ((layers + 1) if training else 2)
    heads = getattr(config, "num_attention_heads", 0)
    heads = heads if isinstance(heads, int) else 0
    scores = _score_bytes(config, layers, training, device, getattr(model, "fast_paths", []))
    return 4.0 * examples * (tokens * input_width + states * per_state) + float(examples * heads * states**2) * scores


def _score_bytes(config: object, layers: int, training: bool, device: object, fast_paths: list[str]) -> float:
    """Bytes per attention score (one example, head, query and key) that a pass holds at its peak at
    least: 0 where the attention is one fused kernel (sdpa without dropout, or on a GPU), else the
    score-sized tensors each layer keeps for the backward pass and those of the layer running."""
    implementation = getattr(config, "_attn_implementation", None)
    dropout = next((getattr(config, name) for name in DROPOUT_KEYS if hasattr(config, name)), 0.0)
    dropping = training and isinstance(dropout, (int, float)) and dropout > 0
    on_cpu = getattr(device, "type", device) in (None, "cpu")
    if LAST_BLOCK_READS_POSITIONS_ONLY in fast_paths:  # the last block may attend from the read positions only
        layers -= 1
    if layers < 1:
        return 0.0
    if implementation == CPU_DROPOUT_ATTENTION and dropping and on_cpu:
        # fpt.model.dropout computes in fp32: kept per layer the softmax (4 bytes), the keep mask (1) and
        # the dropped probabilities (4); while the last layer runs also its scores (4), the random draws
        # (2 and 2) and the scaled probabilities (4)
        return 9.0 * layers + 12.0
    if implementation == "eager" or (implementation in ("sdpa", CPU_DROPOUT_ATTENTION) and dropping and on_cpu):
        # transformers' eager attention, or PyTorch's unfused CPU fallback for sdpa with dropout, in a dtype
        # of 2 bytes or more: kept the probabilities and, with dropout, its mask (1) and the dropped
        # probabilities; besides, the running layer's scores. Evaluating: one layer's scores and probabilities.
        return (2.0 + 3.0 * dropping) * layers + 2.0 if training else 4.0
    return 0.0

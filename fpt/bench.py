"""`fpt bench`: how close training runs to what this machine can do, measured in one run.

For each case (a backbone x task x batch size) two training paths run interleaved, in rounds and
within each round in alternating blocks of a few steps, so that load from other processes hits both alike:

- default: what `fpt train` runs (fpt.training.loop.training_step: autocast in the run's
  precision, the fast paths of fpt.model.fast_paths, frozen matrices stored low-precision and, on
  CPU, packed for oneDNN, no host sync in the loop);
- reference: the authors' recipe: fp32, eager attention, batches made on the host, a host sync
  (`loss.item()`) every step.

Each round also times a dense matrix multiply in each path's dtype (on a CPU the faster of PyTorch's
product and oneDNN's on a packed matrix), so the achieved FLOP rate is compared with the rate this
machine reached in the same minute. FLOPs are the matrix-multiply
FLOPs of one training step as dispatched (torch.utils.flop_counter): the forward, and the backward
autograd actually runs: input gradients through frozen layers, weight gradients only for trained
parameters. Attention is counted dense (2 matmuls forward, 5 backward), causal or not.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from fpt.errors import FPTError, unknown_name
from fpt.files import atomic_write
from fpt.model.config import ModelConfig
from fpt.tasks import Task, get_task
from fpt.training.config import Precision, RunConfig
from fpt.training.distributed import make_accelerator
from fpt.training.loop import (
    build_model,
    evaluate,
    prepare_training,
    require_training_memory,
    resolve_device,
    training_step,
)
from fpt.training.precision import DTYPES

aten = torch.ops.aten
# CPU kernels missing from flop_counter's table (arguments arrive as shapes): fused attention, with the GPU
# kernels' formulas, and oneDNN's linear on packed matrices (fpt.model.packed), x (..., in) by W (out, in).
CPU_FLOPS = {
    aten._scaled_dot_product_flash_attention_for_cpu: lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(
        q, k, v
    ),
    aten._scaled_dot_product_flash_attention_for_cpu_backward: lambda g, q, k, v, *args, out_shape=None, **kwargs: (
        sdpa_backward_flop_count(g, q, k, v)
    ),
    torch.ops.mkldnn._linear_pointwise: lambda x, w, *args, out_shape=None, **kwargs: 2 * math.prod(x) * w[0],
}


CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")  # to emulate an older CPU


@dataclass(frozen=True)
class BenchCase:
    """One measured configuration."""

    name: str
    task: str
    backbone: str
    init: str = "pretrained"
    batch_size: int = 16
    task_options: dict = field(default_factory=dict)
    train: str = "fpt"
    eval_examples: int = 512  # examples per timed evaluation pass
    steps: int = 20  # timed steps per path per round, unless the settings say otherwise


CASES = {
    case.name: case
    for case in (
        BenchCase("gpt2-bit-memory", "bit-memory", "gpt2", "random", eval_examples=32, steps=2),
        BenchCase("minilm-bit-xor", "bit-xor", "minilm"),
        BenchCase("minilm-fashion-mnist", "fashion-mnist", "minilm"),
    )
}


@dataclass
class BenchSettings:
    warmup: int = 2  # untimed steps per path before the rounds (compilation happens here)
    steps: int | None = None  # timed steps per path per round (None: the case's own)
    rounds: int = 3
    blocks: int = 5  # turns per path per round: the paths alternate in blocks of about steps / blocks steps
    precision: Precision = "auto"  # the default path's precision
    compile: bool = False  # torch.compile the default path
    reference: str = "interleaved"  # interleaved | only | off
    eval_batch_size: int = 256  # the default path's evaluation batch (the reference uses the training batch)
    device: str = "auto"
    seed: int = 0
    memory: bool = True  # measure peak memory (on CPU: one short child process per path)
    batch_size: int | None = None  # instead of each case's own
    backbone: str | None = None  # instead of each case's own (a name or a local directory)


@dataclass
class Path_:
    """A ready training path: `step()` runs one optimizer step and returns its loss (a device tensor
    on the default path, which never waits for the device; a float on the reference path); `sync()`
    waits for the device."""

    name: str
    dtype: str
    module: torch.nn.Module  # the model, uncompiled (for FLOP counting)
    autocast: Callable  # the context its forward runs in
    step: Callable[[], torch.Tensor | float]
    sync: Callable[[], None]
    evaluate: Callable[[Task], None]
    choices: dict = field(default_factory=dict)  # what the path picked, and why (default path)


def _run_config(case: BenchCase, settings: BenchSettings, **changes) -> RunConfig:
    return replace(
        RunConfig(
            task=case.task,
            task_options=dict(case.task_options),
            model=ModelConfig(backbone=case.backbone, init=case.init, train=case.train),
            batch_size=case.batch_size,
            seed=settings.seed,
            device=settings.device,
            precision=settings.precision,
            compile=settings.compile,
            eval_batch_size=settings.eval_batch_size,
        ),
        **changes,
    )


def default_path(case: BenchCase, settings: BenchSettings, task: Task, workdir: str) -> Path_:
    """The path `fpt train` takes, built by the training loop's own functions."""
    config = _run_config(case, settings)
    accelerator = make_accelerator(config.device, None, workdir)
    torch.manual_seed(config.seed)
    model = build_model(config, task)
    require_training_memory(config, task, model, accelerator.num_processes, accelerator.device)
    trainer = prepare_training(config, task, model, accelerator)
    stream = task.train_batches(config.batch_size, config.seed)
    pending = [torch.zeros((), device=trainer.device)]

    def step() -> torch.Tensor:
        loss = training_step(trainer, next(stream))
        pending[0] = pending[0] + loss  # sync() reads it: one wait per timed block
        return loss

    def sync() -> None:
        pending[0].item()

    def run_eval(subset: Task) -> None:
        evaluate(model, subset, "val", config.eval_batch_size, trainer.device, accelerator, trainer.precision)

    return Path_(
        "default",
        trainer.precision.name,
        model,
        trainer.precision.autocast,
        step,
        sync,
        run_eval,
        choices(config, model, trainer),
    )


def choices(config: RunConfig, model: torch.nn.Module, trainer) -> dict[str, dict[str, str]]:
    """What the default path runs with, read off the prepared model and optimizer, and why."""
    from fpt.model.dropout import ATTENTION
    from fpt.training.compiler import compiler_missing
    from fpt.training.precision import explain_precision

    dtype, why = explain_precision(config.precision, trainer.device)
    backbone = getattr(model, "backbone", None)
    attention = getattr(getattr(backbone, "config", None), "_attn_implementation", None) or "n/a"
    compiled = hasattr(trainer.model, "_orig_mod")  # torch.compile's wrapper
    options = trainer.optimizer.defaults
    optimizer = type(trainer.optimizer).__name__ + (
        " fused" if options.get("fused") else " foreach" if options.get("foreach") else " for-loop"
    )
    return {
        "precision": {"value": dtype, "why": why},
        "attention": {
            "value": attention,
            "why": "sdpa; with dropout on CPU computed directly (the fused CPU kernels have no dropout)"
            if attention == ATTENTION
            else "fused scaled-dot-product attention"
            if attention == "sdpa"
            else "as configured",
        },
        **_fast_path_choices(config, model),
        "compile": {
            "value": "on" if compiled else "off",
            "why": "asked for (--compile)"
            if compiled
            else f"asked for, but {compiler_missing(trainer.device)}: eager"
            if config.compile
            else "default: eager (compiling measured no gain on CPU; pass --compile to compare)",
        },
        "optimizer": {"value": optimizer, "why": "Adam over the trained tensors"},
    }


def _fast_path_choices(config: RunConfig, model: torch.nn.Module) -> dict[str, dict[str, str]]:
    """The exact CPU fast paths (fpt.model.fast_paths) the prepared model holds, and why each is on or off."""
    from fpt.model import native
    from fpt.model.dropout import CPUDropout
    from fpt.model.packed import PackedProduct
    from fpt.model.unread import ReadPositionsOnly

    fused_gelu = sum(type(m).__name__ == "GELUTanh" for m in model.modules())
    cpu_dropout = sum(isinstance(m, CPUDropout) for m in model.modules())
    unread = any(isinstance(m, ReadPositionsOnly) for m in model.modules())
    packed = sum(isinstance(m, PackedProduct) for m in model.modules())
    kernels = "native-kernels" in getattr(model, "fast_paths", [])
    return {
        "fused_gelu": {
            "value": f"{fused_gelu} modules" if fused_gelu else "none",
            "why": "the Python tanh-GELU runs as one kernel"
            if fused_gelu
            else "no Python tanh-GELU in this backbone (its activation is one kernel already)",
        },
        "cpu_dropout": {
            "value": f"{cpu_dropout} modules" if cpu_dropout else "off",
            "why": "dropout masks without the single-threaded Bernoulli sampler"
            if cpu_dropout
            else "compiled: inductor makes its own masks"
            if config.compile
            else "not on CPU: PyTorch's own kernels",
        },
        "unread_positions": {
            "value": "skipped" if unread else "computed",
            "why": "the last block computes only the positions the head reads"
            if unread
            else "not a GPT-2 or BERT block with sdpa attention",
        },
        "packed_matrices": {
            "value": f"{packed} layers" if packed else "off",
            "why": "frozen matrices packed once for oneDNN (forward and input gradient)"
            if packed
            else "compiled: inductor picks its kernels"
            if config.compile
            else "not on CPU, no frozen linear layer, or the copies would not fit in memory",
        },
        "native_kernels": {
            "value": "on" if kernels else "off",
            "why": "attention with dropout, dropout and BERT's dropout-add-norm in one "
            "compiled pass each way (fpt/model/native.c)"
            if kernels
            else "without CPU dropout (compiled, or not on CPU)"
            if not cpu_dropout
            else native.status(),
        },
    }


def reference_path(case: BenchCase, settings: BenchSettings, task: Task) -> Path_:
    """The authors' loop: fp32, eager attention, host batches, `.item()` every step."""
    config = _run_config(case, settings, precision="fp32", compile=False, attn_implementation="eager", fast_paths=False)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(config, task).to(device).train()
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trained, lr=config.lr)
    stream = task.train_batches(config.batch_size, config.seed)

    def step() -> float:
        batch = next(stream).to(device)
        loss = task.loss(model(batch.inputs, batch.mask), batch.targets)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, config.clip_norm)
        optimizer.step()
        return loss.item()

    @torch.no_grad()
    def run_eval(subset: Task) -> None:
        model.eval()
        for batch in subset.eval_batches("val", config.batch_size):
            batch = batch.to(device)
            (model(batch.inputs, batch.mask).argmax(-1) == batch.targets).float().mean().item()
        model.train()

    return Path_("reference", "fp32", model, contextlib.nullcontext, step, lambda: None, run_eval)


class _ValSubset(Task):
    """The first `n` validation examples of a task, so an evaluation pass takes seconds."""

    def __init__(self, task: Task, n: int):
        self.task, self.n = task, min(n, task.split_size("val"))
        self.name, self.spec = task.name, task.spec

    def split_size(self, split: str) -> int:
        return self.n

    def eval_batches(self, split: str, batch_size: int):
        left = self.n
        for batch in self.task.eval_batches("val", min(batch_size, self.n)):
            if left <= 0:
                return
            if len(batch) > left:
                batch = batch.rows(slice(0, left))
            left -= len(batch)
            yield batch


def step_flops(model: torch.nn.Module, task: Task, batch_size: int, precision_autocast, device, seed: int) -> dict:
    """Matrix-multiply FLOPs of one training step of `model` (forward, and backward as autograd runs it)."""
    batch = next(task.train_batches(batch_size, seed + 1)).to(device)
    with FlopCounterMode(display=False, custom_mapping=CPU_FLOPS) as forward:
        with precision_autocast():
            loss = task.loss(model(batch.inputs, batch.mask), batch.targets)
    with FlopCounterMode(display=False, custom_mapping=CPU_FLOPS) as backward:
        loss.backward()
    model.zero_grad(set_to_none=True)
    return {"forward": forward.get_total_flops(), "backward": backward.get_total_flops()}


def matmul_gflops(dtype: torch.dtype, device: torch.device, seconds: float = 1.0) -> float:
    """Dense square matrix-multiply rate for `dtype`, over about `seconds` of repeated products: the
    faster of PyTorch's own product and, on a CPU with oneDNN, oneDNN's on a packed matrix (the
    kernel fpt.model.packed trains with), so that a fraction of it is one of the best this CPU does."""
    n = 2048 if device.type == "cpu" else 8192
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    products = [lambda: a @ b]
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and dtype in (torch.float32, torch.bfloat16):
        packed = torch.ops.mkldnn._reorder_linear_weight(b.t().contiguous(), None)
        products.append(lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], ""))
    return max(_rate(product, n, device, seconds / len(products)) for product in products)


def _rate(product: Callable[[], torch.Tensor], n: int, device: torch.device, seconds: float) -> float:
    product()  # first call: allocation and kernel choice
    _synchronize(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        product()
        count += 1
        _synchronize(device)
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(path: Path_, steps: int, device: torch.device) -> float:
    path.sync()
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        path.step()
    path.sync()
    _synchronize(device)
    return time.perf_counter() - start


def _memory_probe() -> None:
    """Child process (`python -c`): build one path, take a few steps, print its peak memory in MB."""
    request = json.loads(sys.stdin.read())
    case, settings = BenchCase(**request["case"]), BenchSettings(**request["settings"])
    task = get_task(case.task, **case.task_options)
    with tempfile.TemporaryDirectory() as workdir:
        path = (
            default_path(case, settings, task, workdir)
            if request["which"] == "default"
            else reference_path(case, settings, task)
        )
        for _ in range(request["steps"]):
            path.step()
        path.sync()
    if resolve_device(settings.device).type == "cuda":
        print(torch.cuda.max_memory_allocated() / 2**20)
    else:  # VmHWM: ru_maxrss would carry over the parent's peak through fork and exec
        status = Path("/proc/self/status")
        peak = (
            [line for line in status.read_text().splitlines() if line.startswith("VmHWM:")] if status.exists() else []
        )
        print(int(peak[0].split()[1]) / 1024 if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def peak_memory_mb(case: BenchCase, settings: BenchSettings, which: str, steps: int = 2) -> float:
    """Peak memory of a fresh process that builds one path and trains `steps` steps: on CPU its
    peak resident set (Python, torch and the model included), on CUDA peak allocated device memory."""
    request = json.dumps({"case": asdict(case), "settings": asdict(settings), "which": which, "steps": steps})
    child = subprocess.run(
        [sys.executable, "-c", "from fpt.bench import _memory_probe; _memory_probe()"],
        input=request,
        capture_output=True,
        text=True,
    )
    if child.returncode:
        raise RuntimeError(f"memory probe for {case.name} ({which}) failed:\n{child.stderr[-2000:]}")
    return float(child.stdout.strip().splitlines()[-1])


def _time_paths(paths: list[Path_], case: BenchCase, settings: BenchSettings, device, log) -> tuple[dict, dict]:
    """Warm each path up, then time `steps` steps of each per round, with a dense matmul's rate measured
    every round: (seconds per path, matmul GFLOP/s per round per dtype). Within a round the paths take turns
    in `blocks` blocks each, leading alternately (ABBA), so that load arriving from elsewhere for a few
    seconds falls on both paths alike rather than on one path's whole round."""
    for path in paths:
        for _ in range(settings.warmup):
            path.step()
        path.sync()
    seconds = {p.name: 0.0 for p in paths}
    rates: dict[str, list[float]] = {p.dtype: [] for p in paths}
    steps = settings.steps or case.steps
    for round_index in range(settings.rounds):
        order = paths if round_index % 2 == 0 else paths[::-1]
        for dtype in rates:
            rates[dtype].append(matmul_gflops(DTYPES[dtype], device))
        for block, size in enumerate(_block_sizes(steps, settings.blocks)):
            for path in order if block % 2 == 0 else order[::-1]:
                seconds[path.name] += _timed(path, size, device)
        log(
            f"  {case.name} round {round_index + 1}/{settings.rounds}: "
            + ", ".join(
                f"{name} {steps * case.batch_size / max(s, 1e-9) * (round_index + 1):.2f} samples/s (so far)"
                for name, s in seconds.items()
            )
        )
    return seconds, rates


def _block_sizes(steps: int, blocks: int) -> list[int]:
    """`steps` split into min(blocks, steps) blocks that differ by at most one step."""
    n = max(1, min(blocks, steps))
    return [steps // n + (i < steps % n) for i in range(n)]


def _eval_rates(paths: list[Path_], task: Task, case: BenchCase, settings: BenchSettings, device) -> dict:
    """Evaluation samples/s of each path on the case's validation subset."""
    subset = _ValSubset(task, case.eval_examples)
    eval_rate = {}
    for path in paths:
        if settings.compile:
            path.evaluate(subset)  # the first call compiles the evaluation graph
        start = time.perf_counter()
        path.evaluate(subset)
        _synchronize(device)
        eval_rate[path.name] = subset.n / (time.perf_counter() - start)
    return eval_rate


def _path_record(
    path: Path_,
    samples_per_s: float,
    eval_rate: float,
    rates: list[float],
    step_flops: float,
    tokens: int,
    batch_size: int,
) -> dict:
    """One path's figures, keys prefixed `reference_` for the reference path."""
    prefix = "" if path.name == "default" else "reference_"
    peak = statistics.median(rates)
    achieved = step_flops * samples_per_s / batch_size / 1e9
    return {
        f"{prefix}dtype": path.dtype,
        f"{prefix}samples_per_s": round(samples_per_s, 3),
        f"{prefix}tokens_per_s": round(samples_per_s * tokens, 1),
        f"{prefix}eval_samples_per_s": round(eval_rate, 3),
        f"{prefix}matmul_gflops": round(peak, 1),
        f"{prefix}matmul_gflops_rounds": [round(r, 1) for r in rates],
        f"{prefix}achieved_gflops": float(f"{achieved:.4g}"),
        f"{prefix}fraction_of_matmul_peak": float(f"{achieved / peak:.3g}"),  # significant digits: tiny configs
    }


def bench_case(case: BenchCase, settings: BenchSettings, log=print) -> dict:
    """Measure one case; returns its JSON record."""
    case = replace(case, batch_size=settings.batch_size or case.batch_size, backbone=settings.backbone or case.backbone)
    device = resolve_device(settings.device)
    task = get_task(case.task, **case.task_options)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as workdir:
        paths: list[Path_] = []
        if settings.reference != "only":
            paths.append(default_path(case, settings, task, workdir))
        if settings.reference != "off":
            paths.append(reference_path(case, settings, task))
        # the first path's count serves both: the work a step needs, however a path does it
        flops = step_flops(paths[0].module, task, case.batch_size, paths[0].autocast, device, settings.seed)
        seconds, rates = _time_paths(paths, case, settings, device, log)
        eval_rate = _eval_rates(paths, task, case, settings, device)
    step_total, steps = flops["forward"] + flops["backward"], settings.steps or case.steps
    record: dict = {
        "case": case.name,
        **{k: v for k, v in asdict(case).items() if k != "name"},
        "device": str(device),
        "tokens_per_example": task.spec.max_length,
        "step_flops": step_total,
        "step_gflop": round(step_total / 1e9, 3),
        "forward_gflop": round(flops["forward"] / 1e9, 3),
        "backward_gflop": round(flops["backward"] / 1e9, 3),
        "steps_timed_per_path": steps * settings.rounds,
        "blocks_per_round": len(_block_sizes(steps, settings.blocks)),
    }
    for path in paths:
        prefix = "" if path.name == "default" else "reference_"
        samples_per_s = steps * settings.rounds * case.batch_size / seconds[path.name]
        record.update(
            _path_record(
                path,
                samples_per_s,
                eval_rate[path.name],
                rates[path.dtype],
                step_total,
                task.spec.max_length,
                case.batch_size,
            )
        )
        if settings.memory:
            record[f"{prefix}peak_memory_mb"] = round(peak_memory_mb(case, settings, path.name), 1)
    if "reference_samples_per_s" in record and "samples_per_s" in record:
        record["speedup_vs_reference"] = round(record["samples_per_s"] / record["reference_samples_per_s"], 3)
    record["compile"] = settings.compile
    if paths[0].choices:
        record["choices"] = paths[0].choices
    record["loadavg_before"] = [round(x, 2) for x in load_before]
    record["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return record


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    flags = None
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            lines = cpuinfo.read().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": flags,
        "capped_by": {k: os.environ[k] for k in CAPS if k in os.environ},  # instruction-set caps set for this run
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def run_bench(names: list[str], settings: BenchSettings, cases: dict[str, BenchCase] | None = None, log=print) -> dict:
    """Measure every named case; returns the whole JSON document."""
    cases = cases or CASES
    for name in names:
        if name not in cases:
            raise unknown_name("bench case", name, sorted(cases))
    if settings.reference not in ("interleaved", "only", "off"):
        raise FPTError(f"reference must be interleaved, only or off (got {settings.reference!r}).")
    if min(settings.steps or 1, settings.rounds, settings.blocks, settings.batch_size or 1) < 1 or settings.warmup < 0:
        raise FPTError("steps, rounds, blocks and batch size must be at least 1 and warmup at least 0.")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results = []
    for name in names:
        log(f"fpt bench: {name}")
        results.append(bench_case(cases[name], settings, log))
    return {"started": started, "machine": machine(), "settings": asdict(settings), "results": results}


COLUMNS = (
    ("case", "case", "{}"),
    ("dtype", "dtype", "{}"),
    ("samples_per_s", "samples/s", "{:.2f}"),
    ("reference_samples_per_s", "ref samples/s", "{:.2f}"),
    ("speedup_vs_reference", "speedup", "{:.2f}x"),
    ("tokens_per_s", "tokens/s", "{:.0f}"),
    ("eval_samples_per_s", "eval samples/s", "{:.1f}"),
    ("step_gflop", "GFLOP/step", "{:.1f}"),
    ("achieved_gflops", "GFLOP/s", "{:.1f}"),
    ("matmul_gflops", "matmul GFLOP/s", "{:.1f}"),
    ("fraction_of_matmul_peak", "of peak", "{:.0%}"),
    ("peak_memory_mb", "peak MB", "{:.0f}"),
    ("reference_peak_memory_mb", "ref peak MB", "{:.0f}"),
)


def table(document: dict) -> str:
    """The results as a fixed-width text table (absent fields as '-')."""
    rows = [[title for _, title, _ in COLUMNS]]
    for record in document["results"]:
        rows.append([fmt.format(record[key]) if key in record else "-" for key, _, fmt in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=False)) for row in rows]
    m = document["machine"]
    lines.append(
        f"machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} ({m['torch_threads']} threads)"
        + (f", {m['gpu']}" if "gpu" in m else "")
        + (f", CPU capability {m['cpu_capability']}" if m.get("cpu_capability") else "")
        + "".join(f", {k}={v}" for k, v in m.get("capped_by", {}).items())
    )
    loads = ", ".join(
        f"{r['case']} {r['loadavg_before'][0]:.1f}->{r['loadavg_after'][0]:.1f}" for r in document["results"]
    )
    lines.append(f"load average (1 min) before->after: {loads}")
    for record in document["results"]:
        if "choices" in record:
            picked = "; ".join(f"{k} {c['value']} ({c['why']})" for k, c in record["choices"].items())
            lines.append(f"{record['case']}: {picked}")
    return "\n".join(lines)


def check_out(out: str | Path) -> None:
    """Refuse an --out that cannot take the JSON (and the .txt table beside it), before measuring."""
    from fpt.runs.record import check_output_file  # light: no torch

    out = check_output_file(out, (".json",), "the bench's JSON (and a .txt table beside it)")
    if out.with_suffix(".txt").is_dir():
        raise FPTError(f"--out {out}: {out.with_suffix('.txt')} is a directory; the table is written there.")


def write(document: dict, out: str | Path) -> Path:
    """Write the JSON and, beside it, the table (.txt)."""

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, (json.dumps(document, indent=2) + "\n").encode())
    atomic_write(out.with_suffix(".txt"), (table(document) + "\n").encode())
    return out

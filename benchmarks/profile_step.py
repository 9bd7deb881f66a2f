"""Where a training step's time goes: torch.profiler over `fpt train`'s own step, grouped by phase.

Builds the default training path of a bench case (fpt.bench.default_path: the same functions `fpt
train` runs), takes warm-up steps, then profiles `--steps` steps and one evaluation pass. Each
phase is a region of the step: forward of the input layer, backbone and head, the loss, the
backward, gradient clipping, the optimizer step and zero_grad. Per phase it reports the profiler's
CPU time and the number of operator calls. The step's wall time without the profiler is measured
too; "outside operators" is that wall time minus the profiled operator time (Python, autograd
bookkeeping, dispatch above the operators).

    python benchmarks/profile_step.py minilm-bit-xor --precision fp32 --out benchmarks/results/profile_minilm_bit_xor_fp32.md
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from fpt.bench import CASES, BenchSettings, _ValSubset, default_path, reference_path
from fpt.tasks import get_task

PHASES = ("embedder", "backbone", "head", "loss", "backward", "clip", "optimizer", "zero_grad")


def _labelled(fn, label: str):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with record_function(f"phase::{label}"):
            return fn(*args, **kwargs)

    return wrapper


def _label_phases(path, task) -> None:
    """Mark the phases as profiler regions (model submodules, task loss, clipping, optimizer)."""
    model = path.module
    for name in ("embedder", "backbone", "head"):
        sub = getattr(model, name)
        sub.forward = _labelled(sub.forward, name)
    task.loss = _labelled(task.loss, "loss")
    torch.nn.utils.clip_grad_norm_ = _labelled(torch.nn.utils.clip_grad_norm_, "clip")
    torch.Tensor.backward = _labelled(torch.Tensor.backward, "backward")


def _phase_times(prof) -> tuple[dict, dict]:
    """CPU microseconds and operator calls per phase: an operator counts towards its innermost phase region."""
    times, calls = defaultdict(float), defaultdict(int)
    events = prof.events()
    for event in events:
        if event.name.startswith(("phase::", "Optimizer.")):
            continue  # regions: their own time is Python between operators ("outside operators")
        phase, parent = "other", event.cpu_parent
        while parent is not None:
            if parent.name.startswith("phase::"):
                phase = parent.name[len("phase::") :]
                break
            if parent.name.startswith("Optimizer.step"):
                phase = "optimizer"
                break
            if parent.name.startswith("Optimizer.zero_grad"):
                phase = "zero_grad"
                break
            parent = parent.cpu_parent
        if event.name.startswith("autograd::engine"):
            phase = "backward"  # the engine runs on its own thread: no parent region
        times[phase] += event.self_cpu_time_total
        calls[phase] += "::" in event.name and not event.name.startswith("autograd::")  # aten::, mkldnn::, ...
    return times, calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--reference", action="store_true", help="profile the reference recipe instead")
    parser.add_argument("--out")
    args = parser.parse_args()

    case = CASES[args.case]
    settings = BenchSettings(precision=args.precision, compile=args.compile, device="cpu")
    task = get_task(case.task, **case.task_options)
    with tempfile.TemporaryDirectory() as workdir:
        path = reference_path(case, settings, task) if args.reference else default_path(case, settings, task, workdir)
        for _ in range(args.warmup):
            path.step()
        path.sync()
        start = time.perf_counter()
        for _ in range(args.steps):
            path.step()
        path.sync()
        wall_ms = (time.perf_counter() - start) / args.steps * 1e3
        _label_phases(path, task)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                path.step()
            path.sync()
        times, calls = _phase_times(prof)
        subset = _ValSubset(task, case.eval_examples)
        path.evaluate(subset)
        start = time.perf_counter()
        path.evaluate(subset)
        eval_ms = (time.perf_counter() - start) * 1e3
        with profile(activities=[ProfilerActivity.CPU]) as eval_prof:
            path.evaluate(subset)
    op_ms = sum(times.values()) / 1e3 / args.steps
    lines = [
        f"# Step profile: {case.name}, {path.name} path, precision {path.dtype}{', compiled' if args.compile else ''}",
        "",
        f"`{' '.join(['python', *sys.argv])}` — torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}",
        "",
        f"Step wall time without the profiler: {wall_ms:.2f} ms ({case.batch_size / wall_ms * 1e3:.1f} samples/s); "
        f"operators under the profiler: {op_ms:.2f} ms/step.",
        "",
        "| phase | ms/step | share of operator time | operator calls/step |",
        "|---|---|---|---|",
    ]
    for phase in (*PHASES, "other"):
        if phase in times:
            ms = times[phase] / 1e3 / args.steps
            lines.append(f"| {phase} | {ms:.2f} | {ms / op_ms:.0%} | {calls[phase] / args.steps:.0f} |")
    lines += [
        "",
        f"Evaluation: {subset.n} examples in {eval_ms:.1f} ms ({subset.n / eval_ms * 1e3:.0f} samples/s).",
        "",
        "Top operators in the training step (self CPU time):",
        "",
        "```",
        prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60),
        "```",
        "",
        "Top operators in evaluation (self CPU time):",
        "",
        "```",
        eval_prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=60),
        "```",
    ]
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`fpt reproduce methods`: FPT beside its successors under one protocol (same tasks, seeds, budget
and evaluation): every method registered with a row label (fpt.model.methods: output-only, full
fine-tuning, LN-tuning, LoRA, FPT+LoRA, IA3 through PEFT, prompt tuning), and ORCA's align-then-tune
with FPT and with full fine-tuning (fpt.training.align).

Every method gets its own learning-rate grid (full fine-tuning a lower one), chosen on validation
per task like every sweep. The table adds what the accuracy costs: trainable parameters, steps to
a common validation target, training samples/s and wall time per run.

Budgets:
- smoke: one seed, a few dozen steps, one lr per method: checks the pipeline in minutes.
- cpu: `minilm`, 3 seeds, each method's lr chosen on seed 0's validation from three, every run trained
  until validation stops improving (patience 10 evaluations of every 25 steps; bit tasks also stop at
  100%), at most 3,000 steps, so the table compares methods at a plateau rather than early training;
  Bit Memory shrunk as in the smoke budget, ListOps reduced to 21-49-token expressions (CPU_LISTOPS;
  `fpt data generate` writes them).
- small: `minilm`, the paper's task sizes, a few thousand steps, three lrs per method.
- paper: GPT-2 base, the paper's step counts, three lrs per method, 3 seeds; needs a GPU.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from fpt.data import GeneratedData
from fpt.errors import unknown_name

TASKS = ("bit-xor", "bit-memory", "fashion-mnist", "listops")
ALIGN = "otdd"  # ORCA's distance for classification

# The cpu budgets' ListOps (here and fpt.experiments.reproduce): the LRA recipe with expressions of 21-49
# tokens instead of 501-1999. At LRA's lengths one MiniLM step of batch 16 needs over 22 GB and seconds of a
# core; at these a 500-step FPT run (bf16, one thread, validation every 25 steps) is about 2.5 minutes of
# CPU, and 90% of the expressions still nest 3 or more operators deep. 20,000 training examples: a
# 500-step run of batch 16 draws 8,000.
CPU_LISTOPS = GeneratedData(
    "listops",
    "runs/data-cpu",
    {"train": 20_000, "val": 500, "test": 1_000, "min_length": 20, "max_length": 50, "max_depth": 10, "max_args": 10},
    "ListOps reduced for a CPU: expressions of 21-49 tokens (LRA: 501-1999), by the LRA recipe otherwise (max "
    "depth 10, up to 10 arguments per operator); 20,000 train, 500 validation, 1,000 test examples (LRA: 96,000, "
    "2,000, 2,000).",
)


@dataclass(frozen=True)
class MethodBudget:
    backbone: str
    steps: dict[str, int]  # per task; "default" for the rest
    eval_every: int
    lrs: tuple[float, ...]  # methods that train a few parameters
    full_lrs: tuple[float, ...]  # methods that train every parameter
    seeds: int
    align_steps: int
    selection_seeds: int | None = None  # seeds that try every lr (the rest run at the chosen one); None: all
    patience: int | None = None  # stop a run after this many evaluations without a new best (a plateau)
    task_settings: dict = field(default_factory=dict)  # per task: RunConfig keys (task_options, target_accuracy)
    note: str = ""
    data: dict[str, GeneratedData] = field(default_factory=dict)  # per task: the generated data its runs read


_SHRUNK_BITS = {
    "bit-xor": {"task_options": {"val_size": 500, "test_size": 1000}, "target_accuracy": 1.0},
    "bit-memory": {
        "task_options": {"n_bits": 30, "bits_per_token": 10, "val_size": 500, "test_size": 1000},
        "target_accuracy": 1.0,
    },
    "listops": {"task_options": {"max_length": 512}},
}

BUDGETS = {
    "smoke": MethodBudget(
        backbone="minilm",
        steps={"default": 40},
        eval_every=20,
        lrs=(1e-3,),
        full_lrs=(1e-4,),
        seeds=1,
        align_steps=10,
        task_settings=_SHRUNK_BITS,
        note="smoke budget: `minilm`, 40 steps of batch 16, one lr per method, 10 alignment steps: a pipeline "
        "check, not a comparison.",
    ),
    "cpu": MethodBudget(
        backbone="minilm",
        steps={"default": 3000},
        eval_every=25,
        lrs=(3e-4, 1e-3, 3e-3),
        full_lrs=(3e-5, 1e-4, 3e-4),
        seeds=3,
        align_steps=20,
        selection_seeds=1,
        patience=10,
        task_settings={
            **_SHRUNK_BITS,
            "bit-xor": {"task_options": {"val_size": 200, "test_size": 1000}, "target_accuracy": 1.0},
            "listops": {},  # no 512-token cut (smoke's): the reduced data's longest example, 49 tokens, sets it
            # evaluation, not training, is most of a run at 100 steps: 5 validations of 2,000 and a test of
            # 10,000 images took 180 of a run's 230 s on one core
            "fashion-mnist": {"task_options": {"val_size": 500, "test_size": 2000}},
        },
        data={"listops": CPU_LISTOPS},
        note="cpu budget (each run trained to a plateau where a 2-core CPU allows): `minilm` (6 layers, 384 wide); "
        "batch 16; validation every 25 steps, each run stopped once 10 evaluations in a row (250 steps) brought no "
        "new best validation accuracy (a plateau), or at 100% validation accuracy on the bit tasks, or at the cap "
        "of 3,000 steps; the best-on-validation checkpoint tested; each method's lr chosen on seed 0's validation "
        "accuracy (3e-4, 1e-3, 3e-3; methods that train every parameter 3e-5, 1e-4, 3e-4; a choice at an edge "
        "extends its grid), then seeds 1 and 2 at that lr only (seed 0 slightly favoured); ORCA alignment: 20 "
        "OTDD steps; Bit XOR validation 200 examples, test 1000; Fashion-MNIST validation 500, test 2,000 of the "
        "10,000.",
    ),
    "small": MethodBudget(
        backbone="minilm",
        steps={"bit-xor": 1000, "bit-memory": 3000, "default": 2000},
        eval_every=100,
        lrs=(3e-4, 1e-3, 3e-3),
        full_lrs=(1e-5, 3e-5, 1e-4),
        seeds=3,
        align_steps=200,
        note="small budget: `minilm`, the paper's task sizes, 1000-3000 steps of batch 16, three lrs per method, "
        "ORCA alignment 200 OTDD steps.",
    ),
    "paper": MethodBudget(
        backbone="gpt2",
        steps={"bit-memory": 40_000, "bit-xor": 20_000, "listops": 6_000, "default": 20_000},
        eval_every=500,
        lrs=(1e-4, 3e-4, 1e-3),
        full_lrs=(1e-5, 3e-5, 1e-4),
        seeds=3,
        align_steps=2_000,
        note="paper budget: GPT-2 base, the paper's task sizes and step counts, three lrs per method, ORCA "
        "alignment 2000 OTDD steps; needs a GPU and days.",
    ),
}


def conditions(budget: MethodBudget) -> list[dict]:
    """The compared methods as sweep conditions (label, RunConfig keys, own lr grid): every registered
    method with a row label (fpt.model.methods; methods that train every parameter get the full
    fine-tuning grid), then ORCA's align-then-tune with FPT and with full fine-tuning (alignment is a
    stage before training that goes with any method, fpt.training.align, not a method of its own)."""
    from fpt.model.methods import get_method, method_names

    full = {"lrs": list(budget.full_lrs)}
    rows = []
    for name in method_names():
        method = get_method(name)
        if method.compared:
            rows.append({"label": method.compared, "train": name, **(full if method.trains_everything else {})})
    align = {"align": ALIGN, "align_steps": budget.align_steps}
    return [
        *rows,
        {"label": "ORCA align + FPT", "train": "fpt", **align},
        {"label": "ORCA align + full fine-tuning", "train": "all", **align, **full},
    ]


def methods_grid(
    budget_name: str = "smoke",
    tasks: list[str] | None = None,
    seeds: int | None = None,
    backbone: str | None = None,
    lrs: list[float] | None = None,
) -> dict:
    """The sweep grid of the methods experiment at `budget_name`."""
    if budget_name not in BUDGETS:
        raise unknown_name("budget", budget_name, list(BUDGETS))
    budget = BUDGETS[budget_name]
    from fpt.tasks import task_names

    tasks = list(tasks or [t for t in TASKS if t in task_names()])
    backbone = backbone or budget.backbone
    grid_conditions = conditions(budget)
    if lrs:  # one grid for every method, as asked
        grid_conditions = [{**c, "lrs": list(lrs)} for c in grid_conditions]
    task_settings = {
        t: {
            "steps": budget.steps.get(t, budget.steps["default"]),
            **budget.task_settings.get(t, {}),
            **({"data_dir": budget.data[t].data_dir} if t in budget.data else {}),
        }
        for t in tasks
    }
    return {
        "name": f"reproduce methods ({budget_name} budget)",
        "tasks": tasks,
        "seeds": list(range(seeds or budget.seeds)),
        "lrs": list(lrs or budget.lrs),
        "settings": {
            "backbone": backbone,
            "batch_size": 16,
            "eval_every": budget.eval_every,
            **({"patience": budget.patience} if budget.patience else {}),
        },
        "task_settings": task_settings,
        "conditions": grid_conditions,
        "notes": [n for n in (budget.note, *(budget.data[t].describe() for t in tasks if t in budget.data)) if n],
        **(
            {"selection_seeds": budget.selection_seeds}
            if budget.selection_seeds and (seeds or budget.seeds) > 1
            else {}
        ),
    }


# -- the table --------------------------------------------------------------------------------
TARGET_FRACTION = 0.95  # the common target: this fraction of the best method's mean final val accuracy


def _mean(values: list) -> float | None:
    return statistics.fmean(values) if values else None


def _summaries(cell) -> list[dict]:
    return [json.loads((Path(d) / "summary.json").read_text()) for d in cell.run_dirs]


def _ending(run_dir: str, summary: dict) -> str:
    """How a run ended, `steps/best step` and a letter: t (reached its target accuracy), p (a plateau: no new
    best for `patience` evaluations), c (the budget's cap of steps)."""
    import yaml

    config = (
        yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) if (Path(run_dir) / "config.yaml").is_file() else {}
    )
    target = (config or {}).get("target_accuracy")
    if summary.get("status") != "early-stopped":
        letter = "c"
    elif target is not None and (summary.get("best_val_accuracy") or 0) >= target:
        letter = "t"
    else:
        letter = "p"
    return f"{summary.get('steps')}/{summary.get('best_step')} {letter}"


def _method_row(task: str, c, target: float) -> str:
    """One method's line of the methods table: a cell with no finished run says why (failed, not run)."""
    from fpt.experiments.tables import _spread, _steps_to_common_target, cell_marks, read_metrics, unfinished_state

    if not c.run_dirs:  # said, not left out
        return f"| {task} | {c.condition} | {unfinished_state(c)} |" + " |" * 9
    summaries = _summaries(c)
    steps, bound = _steps_to_common_target(c, target)
    speeds = [m["samples_per_s"] for d in c.run_dirs for m in read_metrics(d) if "samples_per_s" in m]
    aligned = [s["align"] for s in summaries if s.get("align")]
    distance = (
        f"{_mean([a['distance_before'] for a in aligned]):.3g} → {_mean([a['distance_after'] for a in aligned]):.3g}"
        if aligned
        else ""
    )
    label = "learned nothing (constant prediction): " if c.learned_nothing else ""
    marks = "".join(f"; {m}" for m in cell_marks(c) if not m.startswith("cached"))
    ended = ", ".join(_ending(d, s) for d, s in zip(c.run_dirs, summaries, strict=True))
    return (
        f"| {task} | {c.condition} | {label}{_spread(c.test)} | {', '.join(f'{v:.1f}' for v in c.test)} | "
        f"{_spread(c.val)} | {c.lr:g}{f' ({marks[2:]})' if marks else ''} | "
        f"{summaries[0]['trainable_params']:,} | {ended} | {'> ' if bound else ''}{steps:.0f} | "
        f"{_mean(speeds) or 0:.1f} | {_mean([s['wall_seconds'] for s in summaries]):.0f} | {distance} |"
    )


def methods_table(grid, cells) -> str:
    """Markdown: per task and method, test accuracy (by seed) beside validation, how each run ended,
    trainable parameters, steps to a common target, training samples/s, wall seconds per run, and
    (aligned methods) the distance change; a method without a finished run is listed as failed or not run."""
    from fpt.experiments.tables import _final_val

    lines = [
        "",
        "## Methods: accuracy and cost",
        "",
        "Test accuracy (%) mean ± std over seeds at the lr chosen on validation, each seed's, and the validation "
        "accuracy of the tested (best) checkpoints; how each seed's run ended (`steps/best step`: t reached the "
        "target accuracy, p a plateau, no new best for the patience's evaluations, c the cap of steps); steps to "
        f"the common target ({TARGET_FRACTION:.0%} of the best method's mean final validation accuracy on that "
        "task; `>` where some seed never reached it: its last step is counted); training samples/s (mean of the "
        "evaluation windows, evaluation excluded); wall seconds per run (alignment and evaluation included).",
        "",
        "| task | method | test % | by seed | val % | lr | trainable params | ended (steps/best) | steps to target | "
        "samples/s | wall s/run | OTDD before → after |",
        "|" + "---|" * 12,
    ]
    for task in grid.tasks:
        finals = [v for v in (_final_val(c) for c in cells if c.task == task and c.run_dirs) if v is not None]
        if not finals:
            continue
        target = TARGET_FRACTION * max(finals) / 100
        lines += [_method_row(task, c, target) for c in cells if c.task == task]
        lines.append(f"| {task} | common target: {100 * target:.1f}% val |" + " |" * 10)
    return "\n".join(lines) + "\n"


def write_methods_table(grid, records: list[dict], results: Path) -> Path:
    """Add the methods table to the sweep's results.md (before its plots)."""
    from fpt.experiments.tables import aggregate
    from fpt.files import atomic_write

    text, plots = results.read_text(), "\n## Validation accuracy vs step"
    head, sep, tail = text.partition(plots)
    atomic_write(results, (head + methods_table(grid, aggregate(grid, records)) + sep + tail).encode())
    return results

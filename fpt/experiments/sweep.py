"""Sweeps: tasks x conditions x learning rates x seeds, each run a normal `fpt train` run directory.

A grid (YAML or dict) names the axes; every run is a subprocess `fpt train --config FILE`, so runs
are isolated, can go in parallel (`jobs`), or on a Ray cluster or SLURM (`backend`:
fpt.experiments.backends), and a killed sweep resumes: a run that ended is skipped, an interrupted
one continues from its last checkpoint (or starts again when it has none). A failed run is recorded
with its error and the others go on; the grid's progress goes to the terminal and OUT/sweep.log. Results are aggregated per (task, condition): the learning
rate with the best mean validation accuracy is chosen, and its seeds' test accuracies are reported
(see fpt.experiments.tables).

Grid keys:
  name, tasks, seeds, lrs
  settings: RunConfig keys shared by every run (steps, batch_size, eval_every, ...)
  task_settings: {task: RunConfig keys for that task only (task_options, steps, ...), and lrs}; an
      entry with its own `task` key makes its name a labelled variant of that task (a column of its
      own), e.g. "listops (paper tokenizer)": {task: listops, task_options: {tokenizer: paper}}
  backbones, inits, train: product axes (used when `conditions` is absent)
  conditions: explicit list of {label, any RunConfig keys, lrs?, paper_row?}; crossed with
      `backbones` when a condition names none
  paper_table, paper_row: which table of fpt.experiments.paper fills the "paper" column;
      paper_row is a format string over the run settings, e.g. "{init}" (default) or "{train}"
  ratio: [numerator, denominator] condition labels for the convergence-ratio table
  selection_seeds: N: only the first N seeds try every learning rate; the other seeds run only at the
      lr chosen on those (per task and condition), which saves runs when compute is short
  notes: lines copied into results.md
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from fpt.errors import FPTError, with_guesses
from fpt.experiments import lr_grid
from fpt.experiments.backends import Backend, make_backend
from fpt.experiments.progress import SWEEP_LOG, GridProgress, Pace, running_marker
from fpt.experiments.tables import write_results
from fpt.memory import require
from fpt.yamlsafe import read_yaml_mapping, short

_AXES = ("backbones", "inits", "train")
RUN_BYTES = 500  # a floor of the memory one expanded run takes (600 bytes measured for a reproduce grid)
GRID_KEYS = {
    "name",
    "tasks",
    "seeds",
    "lrs",
    "settings",
    "task_settings",
    *_AXES,
    "conditions",
    "paper_table",
    "paper_row",
    "ratio",
    "selection_seeds",
    "notes",
}


@dataclass(frozen=True)
class Run:
    """One training run of a sweep: where it lives and the RunConfig keys that define it."""

    task: str
    condition: str
    lr: float
    seed: int
    config: dict
    paper_row: str | None

    @property
    def key(self) -> str:
        return f"{_slug(self.task)}/{_slug(self.condition)}/lr{self.lr:g}/s{self.seed}"


@dataclass
class Grid:
    name: str
    runs: list[Run]
    conditions: list[str]
    tasks: list[str]
    paper_table: str | None = None
    ratio: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    selection_seeds: list[int] | None = None  # seeds that try every lr; the rest run at the chosen one
    extensions: dict = field(default_factory=dict)  # (task, condition): lrs added beyond the edge (lr_grid)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-.+" else "_" for c in text).strip("_") or "run"


def _as_list(value, name: str, problems: list[str]) -> list:
    if value is None:
        return []
    if isinstance(value, (str, int, float)):
        return [value]
    if not isinstance(value, list):
        problems.append(f"{name} must be a list (got {type(value).__name__})")
        return []
    return value


GRIDS = Path(__file__).parent / "grids"  # grids shipped with fpt, by name: `fpt sweep example`


def load_grid(source: str | Path | dict) -> dict:
    """Read a grid from a YAML file, or a grid shipped with fpt by name (`example`), or take a dict as is."""
    if isinstance(source, dict):
        return source
    packaged = GRIDS / f"{source}.yaml"
    if not Path(source).exists() and "/" not in str(source) and packaged.is_file():
        source = packaged
    return read_yaml_mapping(source, "Grid file", "grid keys (tasks, seeds, lrs, ...)")


Condition = tuple[str, dict, list | None, str | None]  # label, RunConfig keys, own lrs, paper row


def _conditions(grid: dict, settings: dict, backbones: list, problems: list[str]) -> list[Condition]:
    """The grid's conditions: its explicit list (each crossed with `backbones` unless it names one),
    else the product of its backbones, inits and train axes."""
    conditions: list[Condition] = []
    if grid.get("conditions"):
        for i, entry in enumerate(_as_list(grid["conditions"], "conditions", problems)):
            if not isinstance(entry, dict) or "label" not in entry:
                problems.append(f"condition {i + 1} must be a mapping with a `label`")
                continue
            entry = dict(entry)
            label, own_lrs, row = entry.pop("label"), entry.pop("lrs", None), entry.pop("paper_row", None)
            own_backbones = [entry.pop("backbone")] if "backbone" in entry else backbones
            for backbone in own_backbones:
                name = label if len(own_backbones) == 1 else f"{label} [{backbone}]"
                conditions.append((name, {**entry, "backbone": backbone}, own_lrs, row))
        return conditions
    axes = {a: _as_list(grid.get(a), a, problems) for a in ("inits", "train")}
    inits, presets = (
        axes["inits"] or [settings.get("init", "pretrained")],
        axes["train"] or [settings.get("train", "fpt")],
    )
    for backbone, init, preset in itertools.product(backbones, inits, presets):
        varying = [v for v, values in ((backbone, backbones), (init, inits), (preset, presets)) if len(values) > 1]
        conditions.append(
            ("/".join(varying) or init, {"backbone": backbone, "init": init, "train": preset}, None, None)
        )
    return conditions


def _runs(
    grid: dict, tasks: list, seeds: list, lrs: list, conditions: list[Condition], problems: list[str]
) -> list[Run]:
    """Every (task, condition, lr, seed) run with its RunConfig keys: the grid's settings, then the
    task's, then the condition's."""
    settings = dict(grid.get("settings") or {})
    task_settings = dict(grid.get("task_settings") or {})
    runs: list[Run] = []
    for task in tasks:
        per_task = dict(task_settings.get(task) or {})
        task_lrs = _as_list(per_task.pop("lrs", None), "lrs", problems)
        for label, cond, own_lrs, row in conditions:
            lr_values = _as_list(own_lrs, "lrs", problems) or task_lrs or lrs or [settings.get("lr", 1e-3)]
            planned = len(runs) + len(lr_values) * len(seeds)
            require(f"A grid of at least {planned:,} runs", planned * RUN_BYTES, "Use fewer tasks, lrs or seeds.")
            for lr in lr_values:
                if isinstance(lr, bool) or not isinstance(lr, (int, float)):
                    problems.append(f"learning rate {short(repr(lr), 60)} is not a number")
                    continue
                for seed in seeds:
                    config = {
                        **settings,
                        **per_task,
                        **cond,
                        "task": per_task.get("task", task),
                        "lr": float(lr),
                        "seed": seed,
                    }
                    row_format = row or grid.get("paper_row", "{init}")
                    try:
                        paper_row = row_format.format(**{"init": "pretrained", "train": "fpt", **config})
                    except (KeyError, IndexError):
                        paper_row = None
                    runs.append(Run(task, label, float(lr), seed, config, paper_row))
    return runs


def expand(grid: dict, pending: frozenset[str] = frozenset()) -> Grid:
    """Every run of `grid`, after checking every name in it; all problems are reported at once.

    `pending` lists `from:` run directories an earlier stage will produce (they need not exist yet).
    """
    problems: list[str] = []
    unknown = sorted(set(grid) - GRID_KEYS)
    if unknown:
        problems.append(
            f"unknown grid key(s) {with_guesses(unknown, GRID_KEYS)} (known: {', '.join(sorted(GRID_KEYS))})"
        )
    tasks = _as_list(grid.get("tasks"), "tasks", problems)
    seeds = _as_list(grid.get("seeds", [0]), "seeds", problems)
    lrs = _as_list(grid.get("lrs"), "lrs", problems)
    settings = dict(grid.get("settings") or {})
    backbones = _as_list(grid.get("backbones"), "backbones", problems) or [settings.get("backbone", "minilm")]
    if not tasks:
        problems.append("the grid names no tasks")
    for seed in seeds:
        if not isinstance(seed, int):
            problems.append(f"seed {seed!r} is not an integer")
    n_select = grid.get("selection_seeds")
    if n_select is not None and (not isinstance(n_select, int) or isinstance(n_select, bool) or n_select < 1):
        problems.append(f"selection_seeds must be a positive integer (got {n_select!r})")
        n_select = None

    conditions = _conditions(grid, settings, backbones, problems)
    runs = _runs(grid, tasks, seeds, lrs, conditions, problems)
    problems += fit_options(runs, {name: set(cond) for name, cond, _, _ in conditions})
    problems += check_runs(runs, pending)
    if problems:
        unique = list(dict.fromkeys(problems))
        raise FPTError(
            f"The grid has {len(unique)} problem(s); no run was started: "
            + "; ".join(p.rstrip(".") for p in unique)
            + "."
        )
    return Grid(
        name=str(grid.get("name", "sweep")),
        runs=runs,
        conditions=list(dict.fromkeys(c[0] for c in conditions)),
        tasks=list(dict.fromkeys(tasks)),
        paper_table=grid.get("paper_table"),
        ratio=grid.get("ratio"),
        notes=list(grid.get("notes") or []),
        selection_seeds=list(seeds[:n_select]) if n_select else None,
    )


def fit_options(runs: list[Run], own: dict[str, set[str]]) -> list[str]:
    """Leave shared settings (the grid's `settings`, `task_settings`) out of the runs whose method ignores
    them, so a LoRA rank shared by fpt and lora conditions is recorded by the lora runs alone; return the
    problems: a condition's own option its method ignores, or a shared one no run reads."""
    from fpt.training.config import RunConfig  # deferred: loads torch
    from fpt.training.options_used import READERS, unused_options

    problems: list[str] = []
    ignored: dict[str, list[Run]] = {}
    for run in runs:
        if not set(run.config) & set(READERS):  # most grids: nothing to check (and 20,000 runs stay quick)
            continue
        try:
            unused = unused_options(RunConfig.from_dict(dict(run.config), "grid"), run.config)
        except FPTError:
            continue  # check_runs reports what is wrong with the config
        for name in unused:
            if name in own.get(run.condition, set()):
                problems.append(
                    f"condition {run.condition!r} sets {name}, which its method ignores ({READERS[name]} read it)"
                )
            else:
                ignored.setdefault(name, []).append(run)
    for name, runs_ignoring in ignored.items():
        if len(runs_ignoring) == sum(name in run.config for run in runs):
            problems.append(f"{name} is set, and no run of the grid reads it (only {READERS[name]} do)")
        for run in runs_ignoring:
            del run.config[name]
    return problems


def check_runs(runs: list[Run], pending: frozenset[str] = frozenset()) -> list[str]:
    """Problems with the names and values runs use, found without loading any model or data."""
    # deferred: these load torch and transformers, which listing or running a grid in subprocesses never needs
    from fpt.backbones.loading import INITS, check_backbone_name
    from fpt.importing import import_modules
    from fpt.model.init_source import check_source
    from fpt.model.methods import check_method_options
    from fpt.tasks import check_task_options, task_names
    from fpt.training.config import RunConfig

    problems, seen = [], set()

    def once(kind: str, name, check) -> None:
        if (kind, str(name)) in seen:
            return
        seen.add((kind, str(name)))
        try:
            check()
        except FPTError as err:
            problems.append(str(err))

    def check_init(init: str, backbone: str) -> None:
        if init.startswith("from:"):
            if init[5:] not in pending:
                check_source(init, backbone)  # exists, and trained the backbone this run names
        elif init not in INITS:
            raise FPTError(f"Unknown init {init!r} (known: {', '.join(INITS)}, from:RUN_DIR, from:FILE.safetensors)")

    for run in runs:
        config = run.config
        once("imports", config.get("imports") or [], lambda config=config: import_modules(config.get("imports") or []))
        if config["task"] not in task_names():
            problems.append(f"unknown task {config['task']!r} (known: {', '.join(task_names())})")
        else:
            once(
                "task_options",
                (config["task"], sorted((config.get("task_options") or {}).items(), key=str)),
                lambda config=config: check_task_options(config["task"], config.get("task_options") or {}),
            )
        if config.get("architecture", "transformer") == "transformer":
            once(
                "backbone",
                config.get("backbone", "minilm"),
                lambda config=config: check_backbone_name(config.get("backbone", "minilm")),
            )
        elif config.get("init") != "random":
            problems.append(f"condition {run.condition!r}: the LSTM baseline needs init random")
        init, backbone = config.get("init", "pretrained"), config.get("backbone", "minilm")
        once("init", (init, backbone), lambda init=init, backbone=backbone: check_init(init, backbone))
        train, options = config.get("train", "fpt"), config.get("method_options") or {}
        key = (train, repr(options), backbone if options else None)  # a tuner's options may name the backbone's modules
        once("train", key, lambda t=train, o=options, b=backbone: check_method_options(t, o, b if o else None))
        once("config", sorted(config.items(), key=str), lambda config=config: RunConfig.from_dict(dict(config), "grid"))
    return problems


# -- running ------------------------------------------------------------------------------------
FINAL = ("finished", "early-stopped", "diverged")  # summary statuses that end a run for good


def run_status(run_dir: Path) -> dict | None:
    """The run's summary.json if the run ended (finished, stopped early or diverged), else None."""
    path = run_dir / "summary.json"
    try:
        summary = json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError:
        return None
    return summary if summary and summary.get("status") in FINAL else None


PR_SET_PDEATHSIG = 1  # prctl(2), Linux
_PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _stop_with_parent() -> None:  # in the child between fork and exec: no import, no lock
    """Linux: the training gets SIGTERM (checkpoint and stop) when the process that launched it dies,
    as a Ray worker does with its node."""
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


_TRAINING: list[subprocess.Popen] = []  # the `fpt train` processes this process waits on


def _train(args: list[str], log_path: Path, threads: int) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    # SLURM's early warning (USR2) is for the job's own process (fpt.experiments.backends.slurm), which
    # then stops the training itself: the training starts with USR2 blocked (a mask survives exec).
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2}) if hasattr(signal, "SIGUSR2") else None
    try:
        with open(log_path, "a") as log:  # a file, not a terminal: one progress line per evaluation
            child = subprocess.Popen(
                [sys.executable, "-m", "fpt.cli", "train", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_stop_with_parent if _PRCTL else None,
            )
    finally:
        if blocked is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    _TRAINING.append(child)
    try:
        return child.wait()
    finally:
        _TRAINING.remove(child)


def stop_training(timeout: float) -> None:
    """Ask the trainings this process waits on to checkpoint and stop (SIGTERM); wait up to `timeout` s
    for them to exit. Called from a signal handler (SLURM's warning): the children are left for the
    interrupted wait to reap (Linux: os.waitid without reaping)."""
    for child in _TRAINING:
        child.terminate()
    deadline = time.monotonic() + timeout
    for child in list(_TRAINING):
        while time.monotonic() < deadline and hasattr(os, "waitid"):
            if os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
            time.sleep(0.2)


ATTEMPT = "fpt sweep: attempt on "  # the first line of each attempt at a run in its log


def _launch(run: Run, out: Path, threads: int) -> dict:
    """Train one run in a subprocess; return its record (status, scores or error).

    An interrupted or killed run with a resumable checkpoint continues from it (`fpt train --resume`);
    one without, or whose resume is refused, starts again from scratch. While it trains, its marker
    (fpt.experiments.progress.running_marker) tells the grid's progress, wherever the run trains.
    """
    run_dir = out / "runs" / run.key
    summary = run_status(run_dir)
    if summary is None:
        log_path = out / "logs" / f"{run.key}.log"
        marker = running_marker(out, run.key)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        host, pid = socket.gethostname(), os.getpid()
        marker.write_text(f"{host} {pid}\n")
        try:
            with open(log_path, "a") as log:
                log.write(f"{ATTEMPT}{host} (pid {pid}), {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            summary = _train_or_resume(run, out, threads, log_path)
        finally:
            marker.unlink(missing_ok=True)
        if summary is None:
            lines = [line for line in log_path.read_text().splitlines() if line.strip()]
            lines = [line for line in lines if not line.startswith(ATTEMPT)]
            error = next(
                (line for line in reversed(lines) if line.startswith("fpt: error:")), lines[-1] if lines else ""
            )
            return {
                "key": run.key,
                "status": "failed",
                "error": error.removeprefix("fpt: error: ")[:500],
                "log": str(log_path),
            }
    return {"key": run.key, "status": summary.get("status"), "run_dir": str(run_dir), "summary": summary}


def _train_or_resume(run: Run, out: Path, threads: int, log_path: Path) -> dict | None:
    """The run's summary after resuming it (where it holds a checkpoint and the grid's settings) or
    training it from scratch; None if it did not end."""
    from fpt.runs.checkpoint import step_checkpoints  # deferred: loads torch

    run_dir = out / "runs" / run.key
    config_path = out / "configs" / f"{run.key}.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    _wait_for_writer(run_dir)
    resumable = step_checkpoints(run_dir / "checkpoints") and _holds_settings(run_dir, run)
    if not (resumable and _train(["--resume", str(run_dir)], log_path, threads) == 0 and run_status(run_dir)):
        shutil.rmtree(run_dir, ignore_errors=True)
        config_path.write_text(_config_text(run, run_dir))
        _train(["--config", str(config_path)], log_path, threads)
    return run_status(run_dir)


WRITER_WAIT_S = 300.0  # a training whose launcher was lost checkpoints and stops well within this


def _wait_for_writer(run_dir: Path) -> None:
    """Wait while another process still writes `run_dir` (a retried run's first attempt, checkpointing
    after its worker was lost): its directory is resumed once it stops, never removed under it."""
    from fpt.runs.lock import RunLock, RunLocked

    deadline = time.monotonic() + WRITER_WAIT_S
    while run_dir.is_dir():
        try:
            RunLock(run_dir).acquire().release()
            return
        except RunLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _holds_settings(run_dir: Path, run: Run) -> bool:
    """Whether the run directory's own config.yaml has every setting the grid gives this run. A
    directory left with other settings (the grid changed, or a stale run was written back) is started
    again rather than resumed under settings the table would not describe."""

    def within(saved: object, wanted: object) -> bool:
        if isinstance(wanted, dict):
            return isinstance(saved, dict) and all(within(saved.get(k), v) for k, v in wanted.items())
        return saved == wanted

    try:
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return False
    return within(saved, {**run.config, "out": str(run_dir)})


def _config_text(run: Run, run_dir: Path) -> str:
    return yaml.safe_dump({**run.config, "out": str(run_dir)}, sort_keys=False)


def _work(runs: list[Run]) -> str:
    """What `runs` will do, said before they start: steps, evaluations, test passes."""
    steps = sum(int(r.config.get("steps", 1000)) for r in runs)
    evals = sum(-(-int(r.config.get("steps", 1000)) // int(r.config.get("eval_every", 100))) for r in runs)
    return (
        f"{steps:,} training steps, {evals:,} validation passes and {len(runs)} test pass(es) in all; "
        "a time estimate follows the first finished run"
    )


def run_grid(grid: Grid, out: str | Path, jobs: int = 1, log=print, backend: Backend | None = None) -> list[dict]:
    """Run (or resume) every run of `grid` under `out`; return one record per run, in grid order.

    The runs train on `backend` (fpt.experiments.backends; default: `jobs` at a time on this machine);
    finished runs are read back, never trained again."""
    out = Path(out)
    changed = [
        r.key
        for r in grid.runs
        if run_status(out / "runs" / r.key) is not None
        and (out / "configs" / f"{r.key}.yaml").is_file()
        and (out / "configs" / f"{r.key}.yaml").read_text() != _config_text(r, out / "runs" / r.key)
    ]
    if changed:
        raise FPTError(
            f"{out} holds finished runs made with other settings ({', '.join(changed[:3])}"
            f"{', ...' if len(changed) > 3 else ''}); they are kept. Use another output directory for the changed grid."
        )
    prepare_out(out)
    lr_grid.restore(grid, out)  # the lrs an earlier start added beyond its grid's edges
    backend = backend or make_backend("local", jobs)
    select = grid.selection_seeds
    todo = [r for r in grid.runs if run_status(out / "runs" / r.key) is None]
    progress = GridProgress(out, len(grid.runs), Pace(len(todo), backend.jobs), log)
    progress.say(
        f"Sweep {grid.name}: {len(grid.runs)} runs, {len(grid.runs) - len(todo)} already finished, "
        f"{len(todo)} to run {backend.describe()} in {out}"
        + (f" (all lrs on seed(s) {', '.join(map(str, select))}; the others at the chosen lr)" if select else "")
        + (f"; {_work(todo)}" if todo else "")
    )
    work = functools.partial(_launch, out=out, threads=backend.threads)

    def train(runs: list[Run]) -> None:
        """Read back the runs that ended before; hand the others to the backend."""
        for run in runs:
            summary = run_status(out / "runs" / run.key)
            if summary is not None and run.key not in progress.records:
                progress.found(run.key, _finished(run, out, summary))
        runs = [r for r in runs if r.key not in progress.records]
        for run in runs:
            running_marker(out, run.key).unlink(missing_ok=True)  # left by a sweep that was killed
        progress.dispatched([r.key for r in runs])
        if runs:
            backend.run(runs, work, out, progress)

    train([r for r in grid.runs if not select or r.seed in select])
    size = len(grid.runs)
    while added := lr_grid.extend(grid, progress.records):  # a choice at its grid's edge
        lr_grid.save(grid, out)
        progress.say(f"  lr grid extended: {', '.join(sorted({f'{r.task}/{r.condition} lr {r.lr:g}' for r in added}))}")
        progress.grow(len(grid.runs) - size)  # every seed at the new lr: the others train or are skipped later
        size = len(grid.runs)
        train(added)
    if select:  # the other seeds, at the lr each (task, condition) chose on the selection seeds
        train(_at_chosen_lr(grid, progress))
    lr_grid.save(grid, out)
    return [progress.records[r.key] for r in grid.runs]


def _finished(run: Run, out: Path, summary: dict) -> dict:
    return {"key": run.key, "status": summary.get("status"), "run_dir": str(out / "runs" / run.key), "summary": summary}


def _at_chosen_lr(grid: Grid, progress: GridProgress) -> list[Run]:
    """The runs of the other seeds at the lr their (task, condition) chose on the selection seeds; the
    rest are recorded as skipped."""
    from fpt.experiments.tables import chosen_lr

    stage = []
    for run in grid.runs:
        if run.seed in (grid.selection_seeds or ()):
            continue
        if run.lr == chosen_lr(grid, run.task, run.condition, progress.records):
            stage.append(run)
        else:
            progress.skip(run.key, "lr not chosen")
    return stage


def collect(grid: Grid, out: str | Path) -> list[dict]:
    """One record per run of `grid` from what `out` holds, training nothing: a sweep directory, or the
    evidence kept of one (fpt.experiments.evidence). The grid gains the lrs its extensions added; a
    non-selection seed missing at an lr that was not chosen is `skipped`, any other missing run `not run`."""
    from fpt.experiments.tables import chosen_lr

    out = Path(out)
    if not out.is_dir():
        raise FPTError(f"{out} does not exist: pass the --out of the sweep (or the folder its evidence was kept in).")
    lr_grid.restore(grid, out)
    records: dict[str, dict] = {}
    for run in grid.runs:
        run_dir = out / "runs" / run.key
        summary = run_status(run_dir)
        records[run.key] = (
            {"key": run.key, "status": summary["status"], "run_dir": str(run_dir), "summary": summary}
            if summary
            else {"key": run.key, "status": "not run", "error": f"no finished run in {run_dir}"}
        )
    select = grid.selection_seeds or []
    for run in grid.runs:
        missing = records[run.key]["status"] == "not run"
        if (
            missing
            and select
            and run.seed not in select
            and run.lr != chosen_lr(grid, run.task, run.condition, records)
        ):
            records[run.key] = {"key": run.key, "status": "skipped", "error": "lr not chosen"}
    return [records[r.key] for r in grid.runs]


SWEEP_ENTRIES = (
    "runs",
    "configs",
    "logs",
    "results.md",
    "results.csv",
    "plots",
    "pretrain",
    lr_grid.RECORD,
    SWEEP_LOG,
    "submitit",
)


def prepare_out(out: Path) -> None:
    """Create the sweep directory `out`, refusing a file, a run directory or a folder of other files
    (a sweep writes only into a new or empty directory or an earlier sweep's)."""
    from fpt.runs.record import enclosing_run

    if out.exists() and not out.is_dir():
        raise FPTError(f"--out {out} is a file; a sweep writes a directory (runs/, configs/, results.md).")
    if enclosing_run(out) is not None or (out / "config.yaml").is_file():
        raise FPTError(f"--out {out} is (or lies inside) a run directory; choose a place outside it.")
    if out.is_dir() and any(out.iterdir()) and not any((out / entry).exists() for entry in SWEEP_ENTRIES):
        raise FPTError(
            f"--out {out} holds other files (not an earlier sweep's); choose a new or empty directory so "
            "nothing in it is mixed with or overwritten by the sweep."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FPTError(f"Cannot create the sweep directory {out} ({err.strerror or err}).") from err


def quick_look(grid: Grid, steps: int | None = None, max_runs: int | None = None) -> Grid:
    """`grid` shrunk for a quick look: every run `steps` long and/or only `max_runs` runs, taken one per
    (task, condition) before any second learning rate or seed. Its results table says so."""
    for name, value in (("--steps", steps), ("--max-runs", max_runs)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise FPTError(f"{name} must be a positive integer, got {value!r}.")
    runs, notes = list(grid.runs), list(grid.notes)
    if steps is not None:
        runs = [replace(r, config={**r.config, "steps": steps}) for r in runs]
        notes.append(f"Quick look: every run trained {steps} steps (the grid's own budget was overridden).")
    if max_runs is not None and max_runs < len(runs):
        lrs = {lr: i for i, lr in enumerate(dict.fromkeys(r.lr for r in runs))}
        seeds = {seed: i for i, seed in enumerate(dict.fromkeys(r.seed for r in runs))}
        first = sorted(runs, key=lambda r: (seeds[r.seed], lrs[r.lr]))[:max_runs]  # stable: grid order within
        kept = {r.key for r in first}
        runs = [r for r in runs if r.key in kept]
        notes.append(f"Quick look: {max_runs} of {len(grid.runs)} runs (--max-runs).")
    return replace(grid, runs=runs, notes=notes)


def list_runs(grid: Grid, out: str | Path) -> list[tuple[str, str]]:
    """(key, command) of every run, its config written under `out`/configs, for a scheduler (SLURM,
    submitit) to run; `fpt sweep` with the same grid and --out then tabulates the finished runs."""
    out = Path(out)
    prepare_out(out)
    listed = []
    for run in grid.runs:
        path = out / "configs" / f"{run.key}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_config_text(run, out / "runs" / run.key))
        listed.append((run.key, f"fpt train --config {shlex.quote(str(path))}"))
    return listed


def sweep(
    source: str | Path | dict,
    out: str | Path,
    jobs: int = 1,
    log=print,
    steps: int | None = None,
    max_runs: int | None = None,
    tabulate_only: bool = False,
    backend: Backend | None = None,
) -> Path:
    """Check, run (resuming) and tabulate a grid; return the path of results.md.

    `steps` and `max_runs` shrink the grid for a quick look (see `quick_look`); `tabulate_only` runs
    nothing and rebuilds the table from what `out` holds (see `collect`); `backend` trains the runs
    elsewhere (fpt.experiments.backends.make_backend: a Ray cluster, SLURM), `jobs` at a time here
    without one."""
    grid = quick_look(expand(load_grid(source)), steps, max_runs)
    if tabulate_only:
        return write_results(grid, collect(grid, out), Path(out))
    backend = backend or make_backend("local", jobs)
    try:
        records = run_grid(grid, out, log=log, backend=backend)
    finally:
        backend.close()
    return write_results(grid, records, Path(out))

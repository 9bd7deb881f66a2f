"""Learning-rate grids that bracket the optimum.

An lr chosen on validation at the edge of its grid is not chosen yet: the best value may lie beyond it.
So after the selection runs of a sweep, every (task, condition) with more than one lr whose choice
(fpt.experiments.tables.chosen_lr, ties to the smaller lr) is the smallest or the largest lr tried gets
one more lr in that direction, on the grid's own geometric spacing (1e-4, 3e-4, 1e-3 goes on to 3e-3,
1e-2, ...), and its selection seeds run there; this repeats until the choice is interior or LIMIT lrs
were added in that direction, which the table then says. A diverged run counts as tried (an lr too
large brackets the grid from above). The added lrs are recorded in the sweep directory (RECORD), so a
resumed sweep, and a table rebuilt from the kept evidence, knows each cell's whole grid.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

from fpt.files import atomic_write

LIMIT = 3  # lrs added per direction at most: the grid then spans a further 30x (on a half-decade grid)
RECORD = "extensions.json"
_LADDER = (1.0, 3.0, 10.0)  # the half-decade values grids here are written on


def step_lr(lrs: list[float], direction: int, k: int) -> float:
    """The lr `k` steps beyond the `direction` (+1 up, -1 down) edge of `lrs`, on the grid's mean
    geometric spacing; snapped to 1 or 3 x 10^n within 10% (so 1e-3 x sqrt(10) is 3e-3), else 2 digits."""
    low, high = min(lrs), max(lrs)
    ratio = (high / low) ** (1 / (len(set(lrs)) - 1))
    value = (high if direction > 0 else low) * ratio ** (direction * k)
    decade = 10 ** math.floor(math.log10(value))
    for mantissa in _LADDER:
        if abs(value / (mantissa * decade) - 1) <= 0.1:
            return float(f"{mantissa * decade:.1e}")
    return float(f"{value:.2g}")


def _cells(grid) -> dict[tuple[str, str], list]:
    cells: dict[tuple[str, str], list] = {}
    for run in grid.runs:
        cells.setdefault((run.task, run.condition), []).append(run)
    return cells


def _add_lr(grid, runs: list, lr: float) -> list:
    """Runs of the cell at `lr`, one per seed of its first lr (the selection seeds where the grid has them)."""
    first = min(r.lr for r in runs)
    seeds = [r.seed for r in runs if r.lr == first]
    template = {r.seed: r for r in runs if r.lr == first}
    added = [replace(template[s], lr=lr, config={**template[s].config, "lr": lr}) for s in seeds]
    grid.runs.extend(added)
    return added


def extend(grid, records: dict[str, dict]) -> list:
    """Add one lr beyond the edge to every cell whose choice is at its edge; return the runs to train now
    (the selection seeds at the new lr; the others follow the final choice). Updates grid.extensions."""
    from fpt.experiments.sweep import FINAL
    from fpt.experiments.tables import chosen_lr

    select = grid.selection_seeds
    new = []
    for (task, condition), runs in _cells(grid).items():
        original = sorted(
            {r.lr for r in runs if r.lr not in grid.extensions.get((task, condition), {}).get("added", [])}
        )
        if len(original) < 2:
            continue
        tried = sorted(
            {r.lr for r in runs if (not select or r.seed in select) and records.get(r.key, {}).get("status") in FINAL}
        )
        chosen = chosen_lr(grid, task, condition, records)
        if chosen is None or len(tried) < 2 or tried[0] < chosen < tried[-1]:
            continue
        direction = -1 if chosen == tried[0] else 1
        entry = grid.extensions.setdefault((task, condition), {"added": [], "limit_hit": []})
        beyond = [lr for lr in entry["added"] if (lr - chosen) * direction > 0]
        if beyond:  # a step beyond the choice is planned but not tried yet
            continue
        steps = sum(
            1 for lr in entry["added"] if (lr - (original[0] if direction < 0 else original[-1])) * direction > 0
        )
        name = "down" if direction < 0 else "up"
        if steps >= LIMIT:
            if name not in entry["limit_hit"]:
                entry["limit_hit"].append(name)
            continue
        lr = step_lr(original, direction, steps + 1)
        entry["added"].append(lr)
        new += [r for r in _add_lr(grid, runs, lr) if not select or r.seed in select]
    return new


def save(grid, out: Path) -> None:
    """Write the grid's extensions to `out`/RECORD (nothing when no cell was extended), keeping the entries
    of cells this grid does not have: a table split between invocations (`--rows`) shares one RECORD."""
    if grid.extensions:
        path = out / RECORD
        others = [
            e
            for e in (json.loads(path.read_text()) if path.is_file() else [])
            if (e["task"], e["condition"]) not in grid.extensions
        ]
        entries = [{"task": t, "condition": c, **e} for (t, c), e in grid.extensions.items()]
        atomic_write(path, (json.dumps(others + entries, indent=1) + "\n").encode())


def restore(grid, out: Path) -> None:
    """Add the lrs recorded in `out`/RECORD to their cells, as an earlier start of the sweep extended them."""
    path = out / RECORD
    if not path.is_file() or grid.extensions:
        return
    cells = _cells(grid)
    for entry in json.loads(path.read_text()):
        key = (entry["task"], entry["condition"])
        if key not in cells:
            continue
        grid.extensions[key] = {"added": list(entry["added"]), "limit_hit": list(entry.get("limit_hit", []))}
        for lr in entry["added"]:
            if lr not in {r.lr for r in cells[key]}:
                _add_lr(grid, cells[key], lr)

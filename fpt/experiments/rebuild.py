"""Rebuild a recorded table from its kept evidence, writing nothing: what the tables of
docs/reproduction.md are checked against (tests/test_docs_tables.py), to the printed digit.

A table in the docs names the command that rebuilds it in an HTML comment on the line above it:

    <!-- rebuilt: fpt reproduce main --budget cpu --tasks bit-xor --out benchmarks/results/reproduce-main-cpu -->

optionally ending in `| PART` (main, the default; details, the per-seed table; convergence; methods;
pretrain, the init table's Bit Memory pretraining run).
The command is the one that recorded the table, with --out pointing at the kept evidence
(fpt.experiments.evidence) and no --tabulate-only: it is run here as if it had it.

    python -m fpt.experiments.rebuild docs/reproduction.md   # rewrite its marked tables (a TABLE line: fill it)
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from fpt.errors import FPTError

MARKER = re.compile(r"<!-- rebuilt: (fpt [^|]*?)\s*(?:\|\s*(\w+)\s*)?-->")
PARTS = ("main", "details", "convergence", "methods", "pretrain")


@dataclass
class Rebuilt:
    """One recorded table rebuilt: its grid, cells, and the lines of each part."""

    command: str
    grid: object
    cells: list
    parts: dict[str, list[str]]


def _table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def rebuild(command: str, root: str | Path = ".") -> Rebuilt:
    """The tables `command` (an `fpt reproduce` or `fpt sweep` command with --out) recorded, rebuilt from
    the runs its --out holds, relative to `root`."""
    from fpt.cli import build_parser
    from fpt.experiments.methods import methods_table
    from fpt.experiments.reproduce import grids
    from fpt.experiments.sweep import collect, expand, load_grid
    from fpt.experiments.tables import aggregate, convergence_section, details_table, main_table

    words = shlex.split(command)
    if words[:2] not in (["fpt", "reproduce"], ["fpt", "sweep"]) or "--out" not in words:
        raise FPTError(f"{command!r}: a rebuilt table names an `fpt reproduce` or `fpt sweep` command with --out.")
    args = build_parser().parse_args(words[1:])
    out = Path(root) / args.out
    if args.command == "sweep":
        in_root = Path(root) / args.grid
        grid = expand(load_grid(in_root if in_root.exists() else args.grid))  # a file in the repo, or a grid's name
    else:
        tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
        lrs = [float(x) for x in args.lrs.split(",")] if args.lrs else None
        rows = [r.strip() for r in args.rows.split(",")] if args.rows else None
        pretrain, grid = grids(args.experiment, args.budget, tasks, args.seeds, args.backbone, lrs, out, rows=rows)
    cells = aggregate(grid, collect(grid, out))
    by_key = {(c.task, c.condition): c for c in cells}
    parts = {"main": main_table(grid, by_key), "details": details_table(cells)}
    if args.command == "reproduce" and pretrain is not None:  # the init table's Bit Memory pretraining run
        pretrained = aggregate(pretrain, collect(pretrain, out / "pretrain"))
        parts["pretrain"] = details_table(pretrained)
        cells = cells + pretrained
    if grid.ratio:
        parts["convergence"] = _table_lines("\n".join(convergence_section(grid, by_key)))
    if getattr(args, "experiment", None) == "methods":
        parts["methods"] = _table_lines(methods_table(grid, cells))
    return Rebuilt(command, grid, cells, parts)


def documented_tables(text: str) -> list[tuple[str, str, list[str], int]]:
    """(command, part, table lines, line number) of every table in `text` marked as rebuilt."""
    lines = text.splitlines()
    found = []
    for number, line in enumerate(lines):
        match = MARKER.search(line)
        if not match:
            continue
        part = match.group(2) or "main"
        if part not in PARTS:
            raise FPTError(f"line {number + 1}: unknown table part {part!r} (known: {', '.join(PARTS)})")
        table = []
        for following in lines[number + 1 :]:
            if following.startswith("|"):
                table.append(following)
            elif table or following.strip():
                break
        found.append((match.group(1), part, table, number + 1))
    return found


def fill(text: str, root: str | Path = ".") -> str:
    """`text` with every marked table (or a `TABLE` placeholder line after a marker) replaced by its
    rebuilt lines; the prose is left as it is."""
    lines = text.splitlines()
    cache: dict[str, Rebuilt] = {}
    for command, part, table, number in reversed(documented_tables(text)):
        rebuilt = cache.setdefault(command, rebuild(command, root))
        start = number  # the line after the marker (0-based)
        while start < len(lines) and not lines[start].strip():
            start += 1
        old = len(table) if table else int(start < len(lines) and lines[start].strip() == "TABLE")
        lines[start : start + old] = rebuilt.parts[part]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """`python -m fpt.experiments.rebuild FILE.md`: rewrite the marked tables of FILE.md from their evidence."""
    if len(argv) != 1:
        print(main.__doc__, file=sys.stderr)
        return 2
    path = Path(argv[0])
    path.write_text(fill(path.read_text()))
    print(f"Rebuilt the tables of {path} from their evidence.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

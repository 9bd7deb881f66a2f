"""Every recorded table in docs/reproduction.md is rebuilt from the evidence kept in benchmarks/results
and must match the docs to the printed digit; the decimal numbers of the prose beside a table must be
figures its rebuilt cells give (a mean, std or seed's figure, a paper figure, or a difference of two
unrounded means or of one seed's two figures), unless the section lists them as coming from elsewhere."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from fpt.experiments.rebuild import documented_tables, rebuild

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "reproduction.md"
DECIMAL = re.compile(r"(?<![\d.\w])\d+\.\d+(?![\d.]*\d)")
OTHER_NUMBERS = re.compile(r"<!-- numbers from elsewhere: ([^>]*)-->")


def _sections(text: str) -> list[str]:
    """The docs cut at every heading."""
    return re.split(r"\n(?=#{1,4} )", text)


@pytest.fixture(scope="module")
def rebuilt() -> dict[str, object]:
    commands = {command for command, *_ in documented_tables(DOCS.read_text())}
    return {command: rebuild(command, ROOT) for command in commands}


def test_the_docs_mark_their_recorded_tables():
    assert len(documented_tables(DOCS.read_text())) >= 3


def test_every_recorded_table_in_the_docs_matches_its_evidence(rebuilt):
    for command, part, lines, number in documented_tables(DOCS.read_text()):
        expected = rebuilt[command].parts.get(part)
        assert expected is not None, f"docs line {number}: {command} has no {part} table"
        assert lines == expected, (
            f"docs/reproduction.md line {number}: the {part} table of `{command}` differs from the one rebuilt "
            "from benchmarks/results:\n" + "\n".join(expected)
        )


def _figures(cells) -> set[str]:
    """Every figure a reader may quote from these cells, as printed (one or two decimals)."""
    values: list[float] = []
    for cell in cells:
        values += [*cell.test, *cell.val, *cell.val_by_lr.values()]
        for series in (cell.test, cell.val):
            if series:
                values.append(sum(series) / len(series))
            if len(series) > 1:
                mean = sum(series) / len(series)
                values.append((sum((v - mean) ** 2 for v in series) / (len(series) - 1)) ** 0.5)
        if cell.paper is not None:
            values.append(cell.paper)
    for a, b in itertools.combinations(cells, 2):  # differences of unrounded means, and per seed
        if a.task != b.task:
            continue
        for sa, sb in ((a.test, b.test), (a.val, b.val)):
            if sa and sb:
                values.append(abs(sum(sa) / len(sa) - sum(sb) / len(sb)))
            values += [abs(x - y) for x, y in zip(sa, sb, strict=False)]
    return {f"{v:.1f}" for v in values} | {f"{v:.2f}" for v in values}


def _prose(section: str) -> str:
    """The section without tables, code blocks and comments."""
    section = re.sub(r"```.*?```", "", section, flags=re.S)
    section = re.sub(r"<!--.*?-->", "", section, flags=re.S)
    section = re.sub(r"`[^`]*`", "", section)
    return "\n".join(line for line in section.splitlines() if not line.startswith("|"))


def test_prose_numbers_beside_a_recorded_table_come_from_its_cells(rebuilt):
    problems = []
    for section in _sections(DOCS.read_text()):
        tables = documented_tables(section)
        if not tables:
            continue
        allowed = set()
        for command, *_ in tables:
            allowed |= _figures(rebuilt[command].cells)
            allowed |= set(DECIMAL.findall("\n".join(itertools.chain(*rebuilt[command].parts.values()))))
        for listed in OTHER_NUMBERS.findall(section):
            allowed |= set(listed.replace(",", " ").split())
        heading = section.splitlines()[0]
        problems += [f"{heading}: {n}" for n in DECIMAL.findall(_prose(section)) if n not in allowed]
    assert not problems, "prose numbers that no rebuilt cell gives (quote them from the tables):\n" + "\n".join(
        problems
    )

"""No function in fpt/ is longer than 60 lines (the project's guide): a long one is split into named
steps, so each reads top to bottom. Read from the source, so a new offender fails here, by name."""

from __future__ import annotations

import ast
from pathlib import Path

import fpt

ROOT = Path(fpt.__file__).parent
MOST = 60


def _lengths(path: Path) -> list[tuple[str, int]]:
    """(qualified name, lines from `def` to its last line) of every function and method in `path`."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    found.append((name, child.end_lineno - child.lineno + 1))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text()), "")
    return found


def test_no_function_is_longer_than_60_lines():
    offenders = [
        f"{path.relative_to(ROOT.parent)}:{name} ({lines} lines)"
        for path in sorted(ROOT.rglob("*.py"))
        for name, lines in _lengths(path)
        if lines > MOST
    ]
    assert not offenders, "split these into named steps: " + ", ".join(offenders)


def test_the_scan_sees_methods_and_nested_functions(tmp_path):
    body = "\n".join(f"        x{i} = {i}" for i in range(MOST))
    (tmp_path / "m.py").write_text(
        f"class A:\n    def long(self):\n{body}\n\n\ndef short():\n    def inner():\n        pass\n"
    )
    assert dict(_lengths(tmp_path / "m.py")) == {"A.long": MOST + 1, "short": 3, "short.inner": 2}

"""Imports run one way: errors, files, fields, yamlsafe, memory, plugins -> runs -> models; data -> tasks;
training, experiments and the commands on top.

Read from the source (every import, including those inside functions), so a new upward import
fails here instead of as an import cycle somebody meets later."""

from __future__ import annotations

import ast
from pathlib import Path

import fpt

ROOT = Path(fpt.__file__).parent
BOTTOM = (
    "fpt.errors",
    "fpt.lazy",
    "fpt.files",
    "fpt.fields",
    "fpt.yamlsafe",
    "fpt.memory",
    "fpt.importing",
    "fpt.plugins",
    "fpt.runs",
)
LOWER = ("fpt.model", "fpt.data", "fpt.tasks", "fpt.backbones", *BOTTOM)
UPPER = ("fpt.training", "fpt.experiments", "fpt.cli", "fpt.bench", "fpt.predict", "fpt.assess", "fpt.listing")
PACKAGE = "fpt"  # its __init__ re-exports names from every layer, loaded on first use


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported fpt module, at module level?) for every import in `path`."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fpt"):
            names = [f"{node.module}.{a.name}" for a in node.names]
            found += [
                (
                    n
                    if (ROOT.parent / n.replace(".", "/")).exists()
                    or (ROOT.parent / (n.replace(".", "/") + ".py")).exists()
                    else node.module,
                    id(node) in top,
                )
                for n in names
            ]
        elif isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names if a.name.startswith("fpt")]
    return found


MODULES = {_name(p): _imports(p) for p in ROOT.rglob("*.py")}


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_every_module_sits_in_a_layer():
    """A module in no layer is checked by none of the tests below (fpt.plugins once hid an upward import)."""
    assert [m for m in MODULES if m != PACKAGE and not _under(m, LOWER + UPPER)] == []


def test_lower_layers_never_import_training_or_experiments():
    upward = [
        f"{module} imports {target}"
        for module, imports in MODULES.items()
        if _under(module, LOWER)
        for target, _ in imports
        if _under(target, UPPER)
    ]
    assert not upward


def test_files_and_runs_sit_below_models_data_and_tasks():
    bottom = [
        f"{module} imports {target}"
        for module, imports in MODULES.items()
        if _under(module, BOTTOM)
        for target, _ in imports
        if not _under(target, BOTTOM)
    ]
    assert not bottom


def test_no_import_cycles():
    """Module-level imports between fpt modules form no cycle (a package's own submodules importing
    each other through the package are how Python packages work and are not counted)."""
    graph = {
        module: {
            target
            for target, top in imports
            if top and target in MODULES and target != module and not module.startswith(target + ".")
        }
        for module, imports in MODULES.items()
    }
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            assert state.get(target) != 1, "import cycle: " + " -> ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])

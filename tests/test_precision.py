"""Mixed precision on CPU: bf16/fp16 autocast trains with fp32 trained parameters and optimizer state,
frozen matrices stored in the low precision, fp16 loss-scaler state in the checkpoint; optional trackers."""

from __future__ import annotations

import pytest
import torch
from transformers.pytorch_utils import Conv1D

from fpt import FPTError, RunConfig, get_task, train
from fpt.runs.checkpoint import read_training_state, resolve
from fpt.training.loop import build_model

QUIET = dict(progress=False, log=lambda *a: None)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_keeps_trained_state_fp32(tmp_path, tiny_gpt2, precision):
    config = RunConfig(
        backbone=tiny_gpt2,
        task_options={"val_size": 16, "test_size": 16},
        steps=4,
        eval_every=2,
        batch_size=8,
        precision=precision,
        device="cpu",
        out=str(tmp_path / precision),
    )
    task = get_task("bit-xor", val_size=16, test_size=16)
    model = build_model(config, task)
    summary = train(config, task=task, model=model, **QUIET)
    assert summary["precision"] == precision and summary["test_examples"] == 16
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    frozen = [m.weight for m in model.modules() if isinstance(m, Conv1D)]
    assert frozen and all(w.dtype == (torch.bfloat16 if precision == "bf16" else torch.float16) for w in frozen)
    state = read_training_state(resolve(tmp_path / precision, "last"))
    moments = [t for s in state["optimizer"]["state"].values() for t in (s["exp_avg"], s["exp_avg_sq"])]
    assert moments and all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in moments)
    assert ("scale" in state["precision"]) == (precision == "fp16")  # the loss scale resumes with the run


def test_a_tracker_asked_for_but_not_installed_is_named_before_the_run(tmp_path, tiny_gpt2, monkeypatch):
    """Whether tensorboard is installed or not (`make setup` installs it): it is taken away here."""
    from fpt.training import distributed

    spec = distributed.importlib.util.find_spec
    monkeypatch.setattr(
        distributed.importlib.util, "find_spec", lambda name: None if name == "tensorboard" else spec(name)
    )
    config = RunConfig(
        backbone=tiny_gpt2,
        task_options={"val_size": 8, "test_size": 8},
        steps=2,
        eval_every=1,
        batch_size=4,
        log="tensorboard",
        device="cpu",
        out=str(tmp_path / "tb"),
    )
    with pytest.raises(FPTError, match="pip install tensorboard"):
        train(config, **QUIET)
    assert not (tmp_path / "tb").exists()


def test_bf16_without_native_hardware_warns_once_that_it_will_be_slow(monkeypatch, caplog):
    from fpt.training import precision

    precision._warn_emulated_bf16.cache_clear()
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level("WARNING"):
        assert precision.resolve_precision("bf16", torch.device("cpu")) == "bf16"
        precision.resolve_precision("bf16", torch.device("cpu"))
        assert precision.resolve_precision("auto", torch.device("cpu")) == "fp32"
    warned = [r.getMessage() for r in caplog.records if "emulated" in r.getMessage()]
    assert len(warned) == 1 and "slower than in fp32" in warned[0]
    caplog.clear()
    precision._warn_emulated_bf16.cache_clear()
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    with caplog.at_level("WARNING"):
        precision.resolve_precision("bf16", torch.device("cpu"))
    assert not caplog.records


@pytest.mark.parametrize(
    ("hardware", "capability", "isa", "expected"),
    [
        (True, "AVX512", "", "bf16"),
        (False, "AVX512", "", "fp32"),  # an AVX2-only or AVX-512 CPU without bf16
        (True, "AVX2", "", "fp32"),  # ATEN_CPU_CAPABILITY=avx2: bf16 would be emulated
        (True, "AVX512", "AVX2", "fp32"),  # ONEDNN_MAX_CPU_ISA=AVX2 caps the matmuls
        (True, "AVX512", "AVX512_CORE_AMX", "bf16"),
    ],
)
def test_auto_is_fp32_on_cpus_without_usable_native_bf16(monkeypatch, hardware, capability, isa, expected):
    from fpt.training import precision as module

    monkeypatch.setattr(module, "_cpu_supports", lambda feature: hardware)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    name, why = module.explain_precision("auto", torch.device("cpu"))
    assert name == expected and why.startswith("auto: ")
    assert (capability in why or isa in why) if hardware and expected == "fp32" else True
    assert module.explain_precision("fp32", torch.device("cpu")) == ("fp32", "asked for")

"""PEFT adapters as freeze policies: LoRA, IA3 and LN-tuning through `peft`, their parameter group,
their start (the pretrained function, unchanged), checkpoints and the error without peft."""

from __future__ import annotations

import sys

import pytest
import torch

from fpt import FPTError, RunConfig, train
from fpt.model import FPTConfig, FrozenPretrainedTransformer
from fpt.model.freeze import FreezePolicy
from fpt.model.methods.peft_adapters import wrapped_modules
from fpt.model.unread import wrap_last_block
from fpt.runs.checkpoint import read_checkpoint
from fpt.tasks import get_task
from fpt.training import evaluate

SHAPE = dict(input_dim=3, max_length=8, num_classes=2, output_tokens=2)
QUIET = dict(progress=False, log=lambda *a: None)


def _model(backbone: str, train: str = "lora", seed: int = 0, **options) -> FrozenPretrainedTransformer:
    torch.manual_seed(seed)
    return FrozenPretrainedTransformer(
        FPTConfig(**SHAPE, backbone=backbone, train=train, dropout=0.0, fast_paths=False, **options)
    )


def test_policies_parse_presets_and_one_adapter_among_groups():
    assert FreezePolicy.parse("lora").adapter == "lora"
    assert FreezePolicy.parse("fpt+lora").trained == {"input", "output", "position", "norm", "adapter"}
    assert FreezePolicy.parse("input,output,ia3").adapter == "ia3"
    assert FreezePolicy.parse("fpt").adapter is None and not FreezePolicy.parse("all").trains("adapter")
    with pytest.raises(FPTError, match="more than one method adds a tuner"):
        FreezePolicy.parse("input,output,lora,ia3")
    with pytest.raises(FPTError, match="adapter is not a group"):
        FreezePolicy.parse("input,output,adapter")


@pytest.mark.parametrize("method", ["lora", "ia3", "ln-tuning"])
def test_adapters_start_from_the_unchanged_function_and_train_only_their_group(quiet_gpt2, method):
    plain, adapted = _model(quiet_gpt2, "input,output"), _model(quiet_gpt2, f"input,output,{method}")
    x = torch.randn(4, 8, 3)
    torch.testing.assert_close(adapted.eval()(x), plain.eval()(x))  # LoRA B = 0, IA3 = 1, LN copies
    counts = adapted.group_counts()
    assert counts["adapter"][1] and counts["adapter"][0] > 0
    trained_groups = {g for g, (_, t) in counts.items() if t}
    assert trained_groups == {"input", "output", "adapter"}
    assert not wrap_last_block(adapted.backbone) or method == "ln-tuning"  # c_attn wrapped: no tail shortcut
    assert "adapter" in adapted.freeze_report() and method in adapted.freeze_report()


def test_lora_defaults_per_family_and_explicit_targets(tiny_gpt2, tiny_llama):
    assert wrapped_modules(_model(tiny_gpt2).backbone) == ["h.N.attn.c_attn"]  # GPT-2's Conv1D
    assert wrapped_modules(_model(tiny_llama).backbone) == ["layers.N.self_attn.q_proj", "layers.N.self_attn.v_proj"]
    model = _model(tiny_llama, method_options={"rank": 2, "targets": "k_proj,o_proj"})
    assert wrapped_modules(model.backbone) == ["layers.N.self_attn.k_proj", "layers.N.self_attn.o_proj"]
    lora_a = [p for n, p in model.named_parameters() if "lora_A" in n]
    assert lora_a and all(p.shape[0] == 2 for p in lora_a)
    with pytest.raises(FPTError, match="Check its targets"):
        _model(tiny_llama, method_options={"targets": "no_such_module"})
    with pytest.raises(FPTError) as caught:  # a target that is no leaf layer: peft prints the module tree
        _model(tiny_llama, method_options={"targets": "self_attn"})
    assert "\n" not in str(caught.value) and str(caught.value).endswith("`fpt describe` lists them).")


def test_an_architecture_peft_has_no_table_for_asks_for_targets(monkeypatch, tiny_llama):
    """An older peft (the declared minimum knows no Gemma 3) gets a way forward, not peft's own error."""
    from peft.utils import constants

    monkeypatch.delitem(constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING, "llama")
    with pytest.raises(FPTError, match=r"no default lora target modules for backbone type 'llama'.*pip install -U"):
        _model(tiny_llama)
    assert wrapped_modules(_model(tiny_llama, method_options={"targets": "q_proj"}).backbone) == [
        "layers.N.self_attn.q_proj"
    ]


def test_lora_checkpoint_holds_adapter_tensors_and_reloads(tmp_path, quiet_gpt2):
    out = tmp_path / "lora"
    config = RunConfig(
        task="bit-xor",
        task_options={"val_size": 16, "test_size": 16},
        backbone=quiet_gpt2,
        train="lora",
        steps=4,
        eval_every=2,
        batch_size=8,
        device="cpu",
        precision="fp32",
        out=str(out),
    )
    summary = train(config, **QUIET)
    assert summary["train"] == "lora"
    tensors, _ = read_checkpoint(out / "checkpoints" / "best")
    model = FrozenPretrainedTransformer.from_run(out)
    assert set(tensors) == set(model.trained_state())
    assert any("lora_B" in n for n in tensors) and not any("base_layer" in n for n in tensors)
    assert summary["trainable_params"] == sum(t.numel() for t in tensors.values())
    with pytest.raises(FPTError, match="trained a lora adapter inside its backbone"):
        _model(quiet_gpt2, train="fpt", init=f"from:{out}")
    assert any(t.abs().sum() > 0 for n, t in tensors.items() if "lora_B" in n)  # the adapter trained
    task = get_task("bit-xor", val_size=16, test_size=16)
    assert evaluate(model, task, "test")["accuracy"] == summary["test_accuracy"]  # reloaded: the same function


def test_without_peft_the_error_names_the_install_command(monkeypatch, quiet_gpt2):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` now raises ImportError
    with pytest.raises(FPTError, match=r"pip install -e '\.\[peft\]'. in fpt's source folder"):
        _model(quiet_gpt2)

"""The fast paths are chosen where transformers reads such choices, when the backbone is built (its
config's activation name and attention implementation), the last-block shortcut is a named wrapper,
and `--no-fast-paths` builds the plain model: same parameters, fingerprint and checkpoint keys."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from transformers.activations import GELUTanh, NewGELUActivation

from fpt.cli import main
from fpt.model import FPTConfig, FrozenPretrainedTransformer
from fpt.model.compat import fast_path_off
from fpt.model.dropout import ATTENTION, CPUDropout
from fpt.model.methods.peft_adapters import adapter_modules, inject_adapter
from fpt.model.unread import ReadPositionsOnly, unwrap_last_block
from fpt.tasks import get_task
from tests.fast_path_names import gpt2_cpu_fast_paths

TASK = get_task("bit-memory", n_strings=3, n_bits=20, bits_per_token=5)
WHY_OFF = fast_path_off("last-block-read-positions-only")  # None where this transformers is tested with it


def _model(backbone: str, **options) -> FrozenPretrainedTransformer:
    torch.manual_seed(0)
    return FrozenPretrainedTransformer(
        FPTConfig(**TASK.spec.model_fields(), backbone=backbone, init="random", **options)
    )


def test_the_backbone_config_carries_the_choices(tiny_gpt2):
    fast, plain = _model(tiny_gpt2), _model(tiny_gpt2, fast_paths=False)
    assert fast.fast_paths == gpt2_cpu_fast_paths()
    assert fast.backbone.config.activation_function == "gelu_pytorch_tanh"
    assert fast.backbone.config._attn_implementation == ATTENTION
    assert any(isinstance(m, GELUTanh) for m in fast.modules())
    assert isinstance(fast.backbone.h[-1], ReadPositionsOnly) == (WHY_OFF is None)
    assert not any(isinstance(m, NewGELUActivation) or type(m) is torch.nn.Dropout for m in fast.modules())
    assert plain.fast_paths == [] and plain.backbone.config.activation_function == "gelu_new"
    assert plain.backbone.config._attn_implementation == "sdpa"
    assert not any(isinstance(m, (GELUTanh, CPUDropout, ReadPositionsOnly)) for m in plain.modules())
    # one model to checkpoints either way: the same parameters, keys and fingerprint (plain config values)
    assert fast.fingerprint == plain.fingerprint
    assert list(fast.state_dict()) == list(plain.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(fast.state_dict().values(), plain.state_dict().values(), strict=True))


@pytest.mark.skipif(WHY_OFF is not None, reason=str(WHY_OFF))
@pytest.mark.parametrize(
    "backbone, last, targets",
    [
        ("tiny_bert", "encoder.layer.1.", ["attention.self.query", "attention.self.value"]),
        ("tiny_gpt2", "h.1.", ["attn.c_attn"]),  # GPT-2's shortcut reads c_attn's weight: the block runs in full then
    ],
)
def test_peft_finds_its_targets_through_the_wrapper_and_unwrapping_gives_the_plain_block(
    request, backbone, last, targets
):
    model = _model(request.getfixturevalue(backbone), dropout=0.0)
    blocks = model.backbone.h if hasattr(model.backbone, "h") else model.backbone.encoder.layer
    wrapper = blocks[-1]
    assert isinstance(wrapper, ReadPositionsOnly)
    inject_adapter(model.backbone, "lora", rank=2)  # after the wrapper: peft reaches the block's layers by name
    assert [name.removeprefix(last) for name in adapter_modules(model.backbone) if name.startswith(last)] == targets
    assert all(getattr(wrapper.base_layer, n) is getattr(wrapper, n) for n, _ in wrapper.named_children())
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_()  # a trained adapter: it changes the output
    model.eval()
    batch = next(TASK.train_batches(4, 0))
    wrapped = model(batch.inputs)
    assert unwrap_last_block(model.backbone)
    assert type(blocks[-1]).__name__ in ("BertLayer", "GPT2Block")
    torch.testing.assert_close(model(batch.inputs), wrapped)  # the shortcut computed with the adapter


def test_no_fast_paths_flag_trains_the_plain_model(capsys, tmp_path, quiet_gpt2):
    out = tmp_path / "run"
    argv = ["train", "--task", "bit-xor", "--backbone", quiet_gpt2, "--init", "random", "--steps", "2"]
    assert main([*argv, "--eval-every", "2", "--no-fast-paths", "--out", str(out), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["fast_paths"] is False and config["model"]["fast_paths"] is False
    assert config["fast_paths_applied"] == summary["fast_paths_applied"] == []
    rebuilt = FrozenPretrainedTransformer.from_run(out)
    assert rebuilt.fast_paths == [] and rebuilt.backbone.config._attn_implementation == "sdpa"
    assert not any(isinstance(m, (GELUTanh, CPUDropout, ReadPositionsOnly)) for m in rebuilt.modules())

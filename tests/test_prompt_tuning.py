"""Prompt tuning (fpt.model.methods.prompt), the method registry's proof: learned prompt tokens before
the inputs of frozen encoders and causal decoders, through every surface (train, resume, eval, predict,
the Hub, peft's own format)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fpt import FPTConfig, FPTError, FrozenPretrainedTransformer, RunConfig, train
from fpt.cli import main
from fpt.runs.checkpoint import read_checkpoint, resolve
from fpt.training import resume_config
from tests.test_resume import QUIET, _assert_same_run

SHAPE = dict(input_dim=3, max_length=8, num_classes=2, output_tokens=2)


def build(backbone: str, tokens: int = 4, train: str = "prompt-tuning", **kwargs) -> FrozenPretrainedTransformer:
    torch.manual_seed(0)
    config = FPTConfig(**SHAPE, backbone=backbone, train=train, dropout=0.0, method_options={"tokens": tokens})
    for key, value in kwargs.items():
        setattr(config, key, value)
    return FrozenPretrainedTransformer(config).eval()


@pytest.mark.parametrize("fixture", ["quiet_gpt2", "tiny_bert"])  # a causal decoder and an encoder
def test_the_prompt_goes_first_and_the_head_reads_the_inputs_last_positions(fixture, request):
    model = build(request.getfixturevalue(fixture))
    x = torch.randn(2, 8, 3)
    prompt = model.soft_prompt.embedding
    embeds = torch.cat([prompt.expand(2, -1, -1), model.embedder(x)], dim=1)
    states = model.backbone(inputs_embeds=embeds).last_hidden_state[:, 4:]
    torch.testing.assert_close(model(x), model.head(states))
    assert model.encode(x).last_hidden_state.shape == (2, 8, model.backbone_adapter.width)
    assert model.prefix_tokens == 4


@pytest.mark.parametrize("fixture", ["quiet_gpt2", "tiny_bert"])
def test_padding_behind_the_inputs_is_masked_with_the_prompt_in_front(fixture, request):
    model = build(request.getfixturevalue(fixture))
    x, mask = torch.randn(2, 8, 3), torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0
    torch.testing.assert_close(model(x, mask)[1], model(x[1:, :5], mask[1:, :5])[0], atol=1e-5, rtol=1e-5)


def test_only_the_prompt_and_the_new_layers_train_and_the_report_says_so(tiny_bert):
    model = build(tiny_bert, tokens=5)
    counts = model.group_counts()
    assert counts["adapter"] == (5 * 32, True)
    assert {g for g, (_, trained) in counts.items() if trained} == {"input", "output", "adapter"}
    assert model.groups["soft_prompt.embedding"] == "adapter"
    assert "5 learned prompt tokens" in model.freeze_report()
    token_rows = model.backbone.get_input_embeddings().weight
    assert all(any(torch.equal(row, t) for t in token_rows) for row in model.soft_prompt.embedding)  # sampled vocab


def test_the_position_table_counts_the_prompt(tiny_gpt2):
    model = build(tiny_gpt2, tokens=10, max_length=60)  # 70 positions > the backbone's 64
    assert model.position_table == {"interpolated_from": 64, "to": 70}
    assert model(torch.randn(1, 60, 3)).shape == (1, 2, 2)


@pytest.mark.vit
def test_a_vit_keeps_its_cls_first_and_the_prompt_after_it(tmp_path):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                       image_size=8, patch_size=4)).save_pretrained(tmp_path / "vit")  # fmt: skip
    model = build(str(tmp_path / "vit"), tokens=3)
    assert model.backbone.embeddings.position_embeddings.shape[1] == 1 + 3 + 8  # [CLS], prompt, inputs
    assert model.prefix_tokens == 4 and model(torch.randn(2, 8, 3)).shape == (2, 2, 2)
    assert torch.all(model.soft_prompt.embedding.abs() < 1)  # no token table: drawn small


def test_options_are_checked_by_name_and_type():
    with pytest.raises(FPTError, match=r"Unknown option\(s\) rank for method 'prompt-tuning'; its options: tokens"):
        build("minilm", method_options={"rank": 4})
    with pytest.raises(FPTError, match="tokens must be int"):
        build("minilm", method_options={"tokens": "many"})
    with pytest.raises(FPTError, match="at least one prompt token"):
        build("minilm", tokens=0)
    with pytest.raises(FPTError, match="adds nothing to the model, so it takes no method options"):
        build("minilm", train="fpt")


def _config(out, backbone, steps: int = 6) -> RunConfig:
    return RunConfig(
        task="bit-xor",
        task_options={"val_size": 16, "test_size": 16},
        backbone=backbone,
        train="prompt-tuning",
        method_options={"tokens": 3},
        steps=steps,
        eval_every=3,
        batch_size=8,
        device="cpu",
        precision="fp32",
        out=str(out),
    )


@pytest.fixture(scope="module")
def prompt_run(tmp_path_factory, tiny_gpt2):
    out = tmp_path_factory.mktemp("prompt") / "run"
    return out, train(_config(out, tiny_gpt2), **QUIET)


def test_a_run_checkpoints_the_prompt_and_reloads_to_the_same_function(prompt_run, capsys):
    out, summary = prompt_run
    assert summary["train"] == "prompt-tuning" and summary["trainable_params"] == 3 * 32 + (32 + 32) + (64 + 2)
    tensors, _ = read_checkpoint(resolve(out, "best"))
    assert "soft_prompt.embedding" in tensors and not any(n.startswith("backbone.") for n in tensors)
    model = FrozenPretrainedTransformer.from_run(out)
    assert torch.equal(model.soft_prompt.embedding, tensors["soft_prompt.embedding"])
    assert main(["eval", str(out), "--split", "test"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == summary["test_accuracy"]


def test_predict_and_the_hub_round_trip(prompt_run, tmp_path):
    out, _ = prompt_run
    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 2, (3, 10, 1)).astype(np.float32))
    assert main(["predict", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "p.npy")]) == 0
    model = FrozenPretrainedTransformer.from_run(out).eval()
    model.save_pretrained(tmp_path / "hub")
    loaded = FrozenPretrainedTransformer.from_pretrained(tmp_path / "hub")
    x = torch.from_numpy(np.load(tmp_path / "x.npy"))
    assert torch.equal(loaded(x), model(x))


def test_resume_continues_to_the_same_run(prompt_run, tmp_path, tiny_gpt2):
    reference, _ = prompt_run
    out = tmp_path / "resumed"
    train(_config(out, tiny_gpt2, steps=3), **QUIET)
    train(resume_config(out, steps=6), resume=True, **QUIET)
    _assert_same_run(out, reference)


def test_the_prompt_exports_in_peft_format_and_peft_computes_the_same(quiet_gpt2, tmp_path):
    peft = pytest.importorskip("peft", reason="the export is read back by peft")
    from transformers import AutoModel

    model = build(quiet_gpt2)
    model.save_peft_adapter(tmp_path / "prompt")
    loaded = peft.PeftModel.from_pretrained(AutoModel.from_pretrained(quiet_gpt2), tmp_path / "prompt").eval()
    embeds, mask = torch.randn(2, 8, 32), torch.ones(2, 8, dtype=torch.long)
    mask[0, 6:] = 0
    with torch.no_grad():
        theirs = loaded(inputs_embeds=embeds, attention_mask=mask).last_hidden_state[:, 4:]
        ours, ours_mask = model.soft_prompt(embeds, mask)
        torch.testing.assert_close(
            model.backbone(inputs_embeds=ours, attention_mask=ours_mask).last_hidden_state[:, 4:], theirs
        )
    with pytest.raises(FPTError, match="peft's prompt format cannot hold"):
        build(quiet_gpt2, train="fpt,prompt-tuning").save_peft_adapter(tmp_path / "no")


def test_fpt_train_trains_prompt_tuning_from_the_command_line(tmp_path, tiny_bert, capsys):
    out = tmp_path / "cli"
    argv = ["train", "--task", "bit-xor", "--backbone", tiny_bert, "--train", "prompt-tuning"]
    argv += ["--method-option", "tokens=2", "--steps", "2", "--eval-every", "2", "--out", str(out)]
    assert main([*argv, "--task-option", "val_size=8", "--task-option", "test_size=8"]) == 0
    assert (out / "config.yaml").read_text().count("tokens: 2") == 2  # the run's config and its model's
    assert "2 learned prompt tokens" in (out / "freeze_report.txt").read_text()
    assert main([*argv[:-2], "--method-option", "rank=4", "--out", str(tmp_path / "bad")]) == 2
    assert "its options: tokens" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_fpt_list_methods_shows_every_method_with_its_options(capsys):
    assert main(["list", "methods"]) == 0
    listed = capsys.readouterr().out
    for name in ("fpt", "output", "all", "lora", "fpt+lora", "ia3", "ln-tuning", "prompt-tuning"):
        assert f"\n  {name} " in listed
    assert "tokens=20" in listed and "rank=8" in listed


def test_configs_written_before_method_options_still_load():
    from fpt.model.methods import upgrade_legacy_options

    old = {"train": "lora", "lora_rank": 4, "lora_alpha": 16.0, "adapter_targets": "c_attn"}
    assert upgrade_legacy_options(old) == {"train": "lora", "method_options": {"rank": 4, "targets": "c_attn"}}
    assert upgrade_legacy_options({"train": "fpt", "lora_rank": 4, "adapter_targets": None}) == {"train": "fpt"}
    assert RunConfig.from_dict({"train": "ia3", "adapter_targets": "key"}).model.method_options == {"targets": "key"}
    config = FPTConfig.from_dict({**SHAPE, "train": "fpt+lora", "lora_rank": 8, "lora_alpha": 32.0})
    assert config.method_options == {"alpha": 32.0}


def test_a_method_name_that_is_taken_is_refused():
    from fpt.model.methods import Method, get_method, register_method

    with pytest.raises(FPTError, match="'lora' is already taken"):
        register_method(Method("lora", ("output",), "not LoRA"))
    with pytest.raises(FPTError, match="trains bias, not groups"):
        register_method(Method("bias-tuning", ("bias",), "not a group"))
    assert register_method(get_method("lora")) is get_method("lora")  # the same one again: fine

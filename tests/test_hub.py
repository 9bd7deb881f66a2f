"""Hub-ready models: save_pretrained / from_pretrained / push_to_hub (no network), and the model card."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from fpt import FPTError, FrozenPretrainedTransformer, RunConfig, get_task, train

QUIET = dict(progress=False, log=lambda *a: None)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, quiet_gpt2):
    out = tmp_path_factory.mktemp("hub") / "run"
    config = RunConfig(
        task="bit-xor",
        task_options={"val_size": 64, "test_size": 64},
        backbone=quiet_gpt2,
        steps=10,
        eval_every=5,
        batch_size=8,
        precision="fp32",
        out=str(out),
    )
    train(config, **QUIET)
    return FrozenPretrainedTransformer.from_run(out).eval()


def _inputs():
    return next(get_task("bit-xor", val_size=64, test_size=64).eval_batches("test", 16)).inputs


def test_round_trip_through_a_directory_gives_identical_logits(trained, tmp_path):
    trained.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    stored = load_file(tmp_path / "saved" / "model.safetensors")
    assert set(stored) == set(trained.trained_state())  # trained parameters only, not the backbone
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["model"]["backbone"] == trained.config.backbone
    fingerprint = {k: v for k, v in trained.fingerprint.items() if k != "source"}  # where it was found: not shared
    assert config["fingerprint"] == json.loads(json.dumps(fingerprint))
    assert config["backbone"]["name"] == trained.config.backbone and "revision" in config["backbone"]
    assert config["run"]["task"] == "bit-xor"

    loaded = FrozenPretrainedTransformer.from_pretrained(tmp_path / "saved")
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(trained(_inputs()), loaded(_inputs()))
    loaded.save_pretrained(tmp_path / "again")  # a loaded model saves the same config (run summary kept)
    assert json.loads((tmp_path / "again" / "config.json").read_text()) == config


def test_model_card_renders_with_task_metrics_freeze_report_and_loading(trained, tmp_path):
    markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py renders the card's markdown")
    trained.save_pretrained(tmp_path / "saved")
    card = ModelCard.load(tmp_path / "saved" / "README.md")
    assert card.data.library_name == "frozen-pretrained-transformers" and "bit-xor" in card.data.tags
    assert card.data.license == "unknown" and "model_card_kwargs={'license'" in card.text  # a local backbone
    assert "pip install -e ." in card.text  # fpt has no PyPI release to name
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(card.text)
    for section in ("Task", "Results", "Freeze report", "How to load", "Licence"):
        assert f"<h2>{section}</h2>" in html
    assert "<table>" in html and f"<td>test {trained.summary['metric_names']['accuracy']}</td>" in html
    assert f"{trained.summary['test_accuracy']:.4f}" in card.text
    assert trained.freeze_report().splitlines()[1] in card.text
    assert '<code class="language-python">' in html and "from_pretrained(" in card.text


def _hub_cache(saved, cache, repo_id: str, commit: str = "0" * 40) -> None:
    """Lay out `saved` as the huggingface_hub cache holds a downloaded repo (what a download writes)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(saved, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_from_pretrained_by_repo_id_from_a_hub_like_cache(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    trained.save_pretrained(tmp_path / "saved")
    _hub_cache(tmp_path / "saved", tmp_path / "cache", "someone/fpt-bit-xor")
    loaded = FrozenPretrainedTransformer.from_pretrained("someone/fpt-bit-xor", cache_dir=tmp_path / "cache")
    with torch.no_grad():
        assert torch.equal(trained(_inputs()), loaded(_inputs()))


def test_other_backbone_weights_or_foreign_configs_are_refused(trained, tmp_path):
    trained.save_pretrained(tmp_path / "saved")
    path = tmp_path / "saved" / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "fingerprint": {**config["fingerprint"], "weights_hash": "0" * 64}}))
    with pytest.raises(FPTError, match="its weights differ from those the checkpoint was trained on"):
        FrozenPretrainedTransformer.from_pretrained(tmp_path / "saved")
    path.write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(FPTError, match="not a saved FPT model"):
        FrozenPretrainedTransformer.from_pretrained(tmp_path / "saved")


def test_push_to_hub_uploads_config_weights_and_a_card_naming_the_repo(trained, monkeypatch):
    from huggingface_hub import hub_mixin

    from fpt.model import hub

    uploaded = {}
    monkeypatch.setattr(hub, "hub_offline", lambda: False)  # the network is tests/test_hub_errors.py's
    monkeypatch.setattr(hub, "hub_reachable", lambda: True)

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        uploaded.update({p.name: p.read_bytes() for p in folder_path.iterdir()}, repo_id=repo_id)
        return "https://hub.example/commit/1"

    monkeypatch.setattr(hub_mixin.HfApi, "create_repo", lambda self, repo_id, **kw: SimpleNamespace(repo_id=repo_id))
    monkeypatch.setattr(hub_mixin.HfApi, "upload_folder", upload_folder)
    assert trained.push_to_hub("someone/fpt-bit-xor") == "https://hub.example/commit/1"
    assert uploaded.pop("repo_id") == "someone/fpt-bit-xor"
    assert sorted(uploaded) == ["README.md", "config.json", "model.safetensors"]
    assert b'from_pretrained("someone/fpt-bit-xor")' in uploaded["README.md"]


def test_an_adapter_policy_exports_a_peft_adapter_that_peft_loads(quiet_gpt2, tmp_path):
    peft = pytest.importorskip("peft", reason="the adapter policies need peft")
    from transformers import AutoModel

    from fpt import FPTConfig

    model = FrozenPretrainedTransformer(
        FPTConfig(input_dim=4, max_length=8, num_classes=3, backbone=quiet_gpt2, train="lora")
    ).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:  # LoRA starts as the identity; make it change the backbone
                param.normal_()
    model.save_peft_adapter(tmp_path / "adapter")
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    loaded = peft.PeftModel.from_pretrained(AutoModel.from_pretrained(quiet_gpt2), tmp_path / "adapter").eval()
    embeds = torch.randn(2, 8, 32)
    with torch.no_grad():
        expected = model.backbone(inputs_embeds=embeds).last_hidden_state
        assert torch.allclose(loaded(inputs_embeds=embeds).last_hidden_state, expected, atol=1e-5)
        plain = AutoModel.from_pretrained(quiet_gpt2).eval()(inputs_embeds=embeds).last_hidden_state
        assert not torch.allclose(plain, expected, atol=1e-3)  # the adapter does change the backbone
    fpt_policy = FrozenPretrainedTransformer(FPTConfig(input_dim=4, max_length=8, num_classes=3, backbone=quiet_gpt2))
    with pytest.raises(FPTError, match="trains no adapter with a PEFT format of its own"):
        fpt_policy.save_peft_adapter(tmp_path / "none")


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("max_length", -1, "max_length must be a positive integer .got -1."),
        ("output_tokens", 0, "output_tokens must be a positive integer"),
        ("dropout", 5, r"dropout must be a number in \[0, 1\)"),
        ("input_dim", "x", "input_dim must be a positive integer .got 'x'."),
    ],
)
def test_impossible_values_in_a_saved_config_are_refused_before_building(trained, tmp_path, key, value, said):
    trained.save_pretrained(tmp_path / "saved")
    path = tmp_path / "saved" / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "model": {**config["model"], key: value}}))
    with pytest.raises(FPTError, match=f"Invalid model config: {said}"):
        FrozenPretrainedTransformer.from_pretrained(tmp_path / "saved")


def test_save_pretrained_never_writes_into_a_run_or_over_other_files(trained, tmp_path):
    """Found by the fuzz run: save_pretrained(RUN/out) wrote config.json and the weights into a run directory."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("task: bit-xor\n")
    for target, said in [
        (run, "is, or lies inside, the run directory"),
        (run / "out", "is, or lies inside, the run directory"),
        (run / "config.yaml", "is, or lies inside, the run directory"),
    ]:
        with pytest.raises(FPTError, match=said):
            trained.save_pretrained(target)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me\n")
    with pytest.raises(FPTError, match=r"holds other files \(notes.txt\)"):
        trained.save_pretrained(tmp_path / "mine")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FPTError, match="that is a file"):
        trained.save_pretrained(tmp_path / "file")
    for uncreatable, said in [(tmp_path / "file" / "below", "Not a directory"), (tmp_path / ("x" * 300), "too long")]:
        with pytest.raises(FPTError, match=f"cannot create that directory .*{said}"):  # found by the fuzz run
            trained.save_pretrained(uncreatable)
    assert sorted(p.name for p in run.rglob("*")) == ["checkpoints", "config.yaml"]
    trained.save_pretrained(tmp_path / "saved")
    trained.save_pretrained(tmp_path / "saved")  # over an earlier save: fine

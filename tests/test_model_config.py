"""ModelConfig: what model a run builds, declared once and nested in RunConfig, its keys flat in YAML
files, flags, config.yaml and checkpoints, so run directories and saved models written before it load."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest
import torch
import yaml

from fpt import FPTError, FrozenPretrainedTransformer, RunConfig, train
from fpt.cli import main
from fpt.model import FPTConfig, ModelConfig
from fpt.model.methods import LEGACY_OPTIONS
from fpt.runs.checkpoint import MANIFEST, STATE_FILE, step_checkpoints

QUIET = dict(progress=False, log=lambda *a: None)
# config.yaml of an LSTM run as fpt wrote it before ModelConfig (commit 9caff2f): every key flat.
OLD_CONFIG = """\
task: bit-xor
task_options:
  n_bits: 5
  bits_per_token: 1
  val_size: 1000
  test_size: 1000
  encoding: '01'
backbone: minilm
init: random
train: all
dropout: 0.1
steps: 30
batch_size: 8
grad_accum: 1
lr: 0.0003
clip_norm: 1.0
eval_every: 10
eval_batch_size: 256
seed: 0
target_accuracy: null
patience: null
out: RUN_DIR
device: auto
attn_implementation: sdpa
data_dir: null
architecture: lstm
layers: 1
precision: auto
compile: false
fast_paths: true
feature_cache: true
micro_batch_size: null
checkpoint_every: null
keep_checkpoints: 2
log: null
imports: []
lora_rank: 8
lora_alpha: 16.0
adapter_targets: null
align: null
align_steps: 100
align_lr: 0.001
distributed:
  batch_size: 8
  processes: 1
  micro_batch: 8
  accumulation: 1
  precision: bf16
fast_paths_applied: []
data: null
model:
  input_dim: 1
  max_length: 10
  num_classes: 2
  output_tokens: 5
  outputs_per_token: 1
  input_kind: continuous
  hidden: 768
  layers: 1
  train: all
  init_seed: 0
  dropout: 0.1
  architecture: lstm
"""
DERIVED = ("model", "distributed", "fast_paths_applied", "data")


def test_flat_keys_fill_the_model_config():
    config = RunConfig(backbone="gpt2", method_options={"rank": 4}, steps=3)
    assert config.model == ModelConfig(backbone="gpt2", method_options={"rank": 4}) and config.steps == 3
    assert RunConfig.from_dict(config.to_dict()) == config
    assert replace(config, backbone="x").model == ModelConfig(backbone="x", method_options={"rank": 4})
    assert RunConfig(model=ModelConfig(init="random"), train="output").model == ModelConfig(
        init="random", train="output"
    )
    assert RunConfig.from_dict({"model": {"backbone": "gpt2"}}).model.backbone == "gpt2"  # written as a section
    with pytest.raises(FPTError, match="backbone both in `model:` and at the top level"):
        RunConfig.from_dict({"backbone": "a", "model": {"backbone": "b"}})
    with pytest.raises(FPTError, match=r"Invalid model config: dropout must be a number in \[0, 1\)"):
        RunConfig(dropout=1.5)
    assert (FPTConfig(input_dim=1, max_length=2, num_classes=2).train, ModelConfig(architecture="lstm").train) == (
        "fpt",
        "all",
    )


def test_config_yaml_written_before_model_config_loads_to_the_same_keys():
    """Resume compares a checkpoint's recorded config key by key (a key it lacks reads as null): an old
    run's keys must come back unchanged, and keys added since must be unset (null, or {})."""
    values = yaml.safe_load(OLD_CONFIG)
    config = RunConfig.from_dict(values)
    assert (config.model.architecture, config.model.layers, config.model.train) == ("lstm", 1, "all")
    old = {k: v for k, v in values.items() if k not in (*DERIVED, *LEGACY_OPTIONS)}  # those became method options
    assert {k: config.to_dict().get(k) for k in old} == old
    assert all(config.to_dict()[k] in (None, {}) for k in set(config.to_dict()) - set(old))


OLD_DEFAULTS = {"lora_rank": 8, "lora_alpha": 16.0, "adapter_targets": None}  # before the method registry


def _old_layout(run_dir) -> None:
    """Rewrite a run as fpt wrote it before ModelConfig and the method registry: config.yaml's keys
    in their old order (LoRA's settings among them, no method_options), no `architecture` in a
    transformer's model section, and the newest checkpoint's recorded config with the same keys."""
    values = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert values.pop("method_options") == {}
    values = {**values, **OLD_DEFAULTS}
    order = list(yaml.safe_load(OLD_CONFIG))
    assert set(order) <= set(values) and all(values[k] is None for k in set(values) - set(order))
    values = {k: values[k] for k in order}
    assert values["model"].pop("architecture") == "transformer"
    values["model"] = {**values["model"], **OLD_DEFAULTS}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    newest = step_checkpoints(run_dir / "checkpoints")[-1]
    state = torch.load(newest / STATE_FILE, weights_only=False)
    state["config"] = {**{k: v for k, v in state["config"].items() if k != "method_options"}, **OLD_DEFAULTS}
    torch.save(state, newest / STATE_FILE)
    manifest = json.loads((newest / MANIFEST).read_text())
    manifest["sha256"][STATE_FILE] = hashlib.sha256((newest / STATE_FILE).read_bytes()).hexdigest()
    (newest / MANIFEST).write_text(json.dumps(manifest))


def test_a_run_directory_in_the_old_layout_evaluates_resumes_and_compares(tmp_path, quiet_gpt2, capsys):
    out = tmp_path / "run"
    config = RunConfig(
        task_options={"val_size": 16, "test_size": 16},
        backbone=quiet_gpt2,
        steps=4,
        eval_every=2,
        batch_size=4,
        precision="fp32",
        out=str(out),
    )
    summary = train(config, **QUIET)
    _old_layout(out)
    assert main(["eval", str(out), "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == summary["test_accuracy"]
    assert main(["train", "--resume", str(out), "--steps", "6", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 6
    assert main(["compare", str(out)]) == 0 and quiet_gpt2.split("/")[-1] in capsys.readouterr().out


def test_a_model_saved_before_model_config_loads(tmp_path, quiet_gpt2):
    out = tmp_path / "run"
    config = RunConfig(task_options={"val_size": 16, "test_size": 16}, backbone=quiet_gpt2, steps=2, batch_size=4)
    train(replace(config, out=str(out)), **QUIET)
    FrozenPretrainedTransformer.from_run(out).save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["model"].pop("architecture") == "transformer"  # the one key older saves lack
    (tmp_path / "saved" / "config.json").write_text(json.dumps(saved))
    loaded = FrozenPretrainedTransformer.from_pretrained(tmp_path / "saved")
    assert loaded.config.backbone == quiet_gpt2 and loaded.config.architecture == "transformer"

"""`--init from:RUN_DIR|FILE`: the backbone it names is the one used and recorded, paths are stored
absolute (the run is usable from any folder), and a changed source is refused by name."""

from __future__ import annotations

import json

import pytest
import yaml
from safetensors.torch import save_file

from fpt import FPTError, RunConfig, train
from fpt.cli import main
from fpt.model import FPTConfig, FrozenPretrainedTransformer

QUIET = dict(progress=False, log=lambda *a: None)
XOR = {"n_bits": 2, "val_size": 16, "test_size": 16}


def _run(backbone: str, init: str, out, **extra) -> dict:
    config = RunConfig(
        task="bit-xor",
        task_options=XOR,
        backbone=backbone,
        init=init,
        steps=2,
        eval_every=2,
        batch_size=4,
        out=str(out),
    )
    for key, value in extra.items():
        setattr(config, key, value)
    return train(config, **QUIET)


@pytest.fixture(scope="module")
def source_run(tiny_gpt2, tmp_path_factory):
    out = tmp_path_factory.mktemp("source") / "mem"
    _run(tiny_gpt2, "random", out, train="all")
    return out


def test_from_run_dir_with_another_backbone_is_refused(source_run, tmp_path):
    with pytest.raises(FPTError, match=r"backbone is '.*tiny-gpt2.*', but this run's backbone is 'minilm'"):
        _run("minilm", f"from:{source_run}", tmp_path / "xor")
    assert not (tmp_path / "xor").exists()  # refused before anything was written


def test_from_run_dir_is_recorded_absolute_and_usable_from_another_folder(
    source_run, tiny_gpt2, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(source_run.parent)
    summary = _run(tiny_gpt2, f"from:{source_run.name}", tmp_path / "xor")  # a relative path
    config = yaml.safe_load((tmp_path / "xor" / "config.yaml").read_text())
    assert config["init"] == config["model"]["init"] == summary["init"] == f"from:{source_run}"
    assert config["backbone"] == config["model"]["backbone"] == summary["backbone"] == tiny_gpt2
    assert config["model"]["init_fingerprint"] == summary["init_fingerprint"] and len(summary["init_fingerprint"]) == 64
    manifest = json.loads((tmp_path / "xor" / "checkpoints" / "best" / "checkpoint.json").read_text())
    assert manifest["fingerprint"]["init"] == f"from:{source_run}"

    monkeypatch.chdir(tmp_path)  # the source's relative path no longer resolves from here
    assert main(["eval", "xor", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 16


def test_a_changed_source_file_is_named_as_the_cause(tiny_gpt2, tmp_path):
    source = FrozenPretrainedTransformer(FPTConfig(input_dim=1, max_length=4, num_classes=2, backbone=tiny_gpt2))
    state = {k: v.contiguous() for k, v in source.backbone.state_dict().items()}
    save_file(state, tmp_path / "backbone.safetensors")
    _run(tiny_gpt2, f"from:{tmp_path / 'backbone.safetensors'}", tmp_path / "xor")
    FrozenPretrainedTransformer.from_run(tmp_path / "xor")  # rebuilds while the source is unchanged

    save_file({k: v + 1 for k, v in state.items()}, tmp_path / "backbone.safetensors")
    with pytest.raises(FPTError, match="changed since this model was made from it"):
        FrozenPretrainedTransformer.from_run(tmp_path / "xor")


def test_a_missing_source_is_one_clear_error(tiny_gpt2, tmp_path):
    with pytest.raises(FPTError, match="neither a run directory"):
        FrozenPretrainedTransformer(
            FPTConfig(input_dim=1, max_length=4, num_classes=2, backbone=tiny_gpt2, init=f"from:{tmp_path}/nothing")
        )


def test_a_sweep_reports_the_disagreement_before_any_run(source_run):
    from fpt.experiments.sweep import expand

    with pytest.raises(FPTError, match="this run's backbone is 'minilm'"):
        expand({"tasks": ["bit-xor"], "lrs": [1e-3], "inits": [f"from:{source_run}"]})

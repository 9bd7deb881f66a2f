"""Attention maps: the Bit XOR source-mass numbers, and the command on a trained tiny run."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from fpt import FPTError, RunConfig, train
from fpt.experiments.attention import attention_command, split_example, xor_source_mass
from fpt.tasks import get_task
from tests.datafiles import write_listops

K = 3  # output tokens: inputs are a0 a1 a2 b0 b1 b2; output j sits on b_j and XORs a_j with b_j


def test_source_mass_finds_attention_on_the_partner_bit():
    maps = torch.full((1, 2, 2 * K, 2 * K), 1 / (2 * K))  # layer 0: uniform
    partner = torch.zeros(2 * K, 2 * K)
    for j in range(K):
        partner[K + j, j] = 1.0  # every output attends only to its partner a_j
    maps = torch.cat([maps, partner.expand(1, 2, -1, -1)])
    uniform, focused = xor_source_mass(maps, K)
    assert uniform["source_vs_other"] == pytest.approx(1.0) and uniform[
        "partner_vs_other_first_string"
    ] == pytest.approx(1.0)
    assert uniform["source_mass"] == pytest.approx(2 / (2 * K), abs=1e-4) and not uniform["causal"]
    assert focused["partner_bit"] == 1.0 and focused["source_mass"] == 1.0 and focused["own_position"] == 0.0
    assert focused["per_other_position"] == 0.0 and focused["source_vs_other"] > 1e6


def test_causal_maps_compare_with_visible_positions_only():
    maps = torch.tril(torch.ones(2 * K, 2 * K))
    maps = (maps / maps.sum(-1, keepdim=True)).expand(1, 1, -1, -1)  # uniform over what each position can see
    (layer,) = xor_source_mass(maps, K)
    assert layer["causal"] and layer["source_vs_other"] == pytest.approx(1.0, abs=0.01)


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory):
    from transformers import GPT2Config, GPT2Model

    root = tmp_path_factory.mktemp("attention")
    torch.manual_seed(0)
    GPT2Model(GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=16, vocab_size=10)).save_pretrained(root / "gpt2")
    config = RunConfig(
        task="bit-xor",
        task_options={"n_bits": K, "val_size": 8, "test_size": 8},
        backbone=str(root / "gpt2"),
        steps=2,
        eval_every=2,
        batch_size=4,
        out=str(root / "run"),
    )
    train(config, progress=False, log=lambda *a: None)
    return root / "run"


def test_attention_command_writes_json_and_png(xor_run, tmp_path):
    result = json.loads(attention_command(xor_run, example=1, fmt="json", out=tmp_path / "a.json"))
    assert json.loads((tmp_path / "a.json").read_text()) == result
    assert result["layers"] == 2 and len(result["example_xor"]) == 2 and len(result["test_mean_xor"]) == 2
    for layer in result["example_xor"] + result["test_mean_xor"]:
        assert 0 <= layer["source_mass"] <= 1 and layer["causal"]
    assert result["uniform_per_position"] == pytest.approx(1 / 6, abs=1e-4)
    attention_command(xor_run, example=1, layer=1, out=tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(FPTError, match="out of range"):
        attention_command(xor_run, example=8, fmt="json")
    with pytest.raises(FPTError, match="out of range"):
        attention_command(xor_run, layer=2, out=tmp_path / "b.png")


def test_lstm_run_has_no_attention(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"task": "bit-xor", "model": {"architecture": "lstm"}}))
    with pytest.raises(FPTError, match="no attention"):
        attention_command(tmp_path, fmt="json")


def test_attention_output_is_checked_before_any_work(xor_run, tmp_path):
    before = (xor_run / "summary.json").read_bytes()
    with pytest.raises(FPTError, match="outside the run directory"):
        attention_command(xor_run, fmt="json", out=xor_run / "summary.json")
    assert (xor_run / "summary.json").read_bytes() == before
    with pytest.raises(FPTError, match=r"\.png file"):
        attention_command(tmp_path / "no-run", out=tmp_path / "map.yaml")  # refused before the run is read
    (tmp_path / "file").write_text("x")
    with pytest.raises(FPTError, match="Cannot write"):
        attention_command(xor_run, fmt="json", out=tmp_path / "file" / "a.json")


def test_an_example_is_found_across_batches_padded_to_different_lengths(tmp_path):
    write_listops(tmp_path / "listops")
    task = get_task("listops", data_dir=str(tmp_path))
    ids, targets, _ = task.data["test"]
    for example in range(task.split_size("test")):  # batches of 4 examples, each padded to its own longest
        one = split_example(task, "test", example, batch_size=4)
        length = int(task.lengths["test"][example])
        assert len(one) == 1 and one.mask is not None and int(one.mask.sum()) == length
        assert torch.equal(one.inputs[0, :length], ids[example, :length].long())
        assert torch.equal(one.targets[0], targets[example])
    with pytest.raises(FPTError, match="out of range"):
        split_example(task, "test", task.split_size("test"))

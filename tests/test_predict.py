"""Inference from a saved run: `fpt predict` and `predict(load_run_model(run))` agree with evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fpt import FPTError, FrozenPretrainedTransformer, RunConfig, evaluate, get_task, train
from fpt.cli import main
from fpt.predict import predict, predict_run

TASK = {"val_size": 16, "test_size": 40}


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_gpt2):
    out = tmp_path_factory.mktemp("predict") / "run"
    train(
        RunConfig(backbone=tiny_gpt2, task_options=TASK, steps=4, eval_every=2, batch_size=8, out=str(out)),
        progress=False,
        log=lambda *a: None,
    )
    return out


def test_predictions_agree_with_evaluation(run):
    task = get_task("bit-xor", **TASK)
    test = next(task.eval_batches("test", 1000))
    model = FrozenPretrainedTransformer.from_run(run)
    result = predict(model, test.inputs.numpy(), batch_size=16)
    assert result["classes"].shape == (40, 5) and result["probabilities"].shape == (40, 5, 2)
    np.testing.assert_allclose(result["probabilities"].sum(-1), 1.0, rtol=1e-5)
    accuracy = (result["classes"] == test.targets.numpy()).mean()
    assert accuracy == pytest.approx(evaluate(model, task, "test")["accuracy"])


def test_cli_writes_npy_npz_and_json(run, tmp_path, capsys):
    inputs = next(get_task("bit-xor", **TASK).eval_batches("test", 6)).inputs.numpy()
    np.save(tmp_path / "x.npy", inputs)
    np.savez(tmp_path / "x.npz", inputs=inputs, mask=np.ones(inputs.shape[:2], bool))
    expected = predict_run(run, tmp_path / "x.npy")["classes"]
    assert main(["predict", str(run), "--input", str(tmp_path / "x.npy")]) == 0
    assert json.loads(capsys.readouterr().out)["classes"] == expected.tolist()
    assert main(["predict", str(run), "--input", str(tmp_path / "x.npz"), "--output", str(tmp_path / "p.npz")]) == 0
    with np.load(tmp_path / "p.npz") as saved:
        assert np.array_equal(saved["classes"], expected) and saved["probabilities"].shape == (6, 5, 2)
    assert (
        main(
            [
                "predict",
                str(run),
                "--input",
                str(tmp_path / "x.npy"),
                "--output",
                str(tmp_path / "p.json"),
                "--which",
                "last",
            ]
        )
        == 0
    )
    assert len(json.loads((tmp_path / "p.json").read_text())["classes"]) == 6


def test_padded_inputs_with_a_mask_predict_like_unpadded(run):
    model = FrozenPretrainedTransformer.from_run(run)
    inputs = torch.randint(0, 2, (3, 10, 1)).float() * 2 - 1
    mask = np.ones((3, 10), bool)
    np.testing.assert_array_equal(predict(model, inputs, mask)["classes"], predict(model, inputs)["classes"])


@pytest.mark.parametrize(
    "inputs, mask, match",
    [
        (np.zeros((2, 10, 3), np.float32), None, r"shape \(2, 10, 3\); this model expects \(n, tokens, 1\)"),
        (np.zeros((2, 10), np.float32), None, "shape"),
        (np.array([[["a"]]]), None, "dtype <U1"),
        (np.full((2, 10, 1), np.inf, np.float32), None, "NaN or infinite values"),
        (np.zeros((2, 12, 1), np.float32), None, "at most 10 tokens"),
        (np.zeros((0, 10, 1), np.float32), None, "no examples"),
        (np.zeros((2, 10, 1), np.float32), np.ones((2, 9)), "mask must be"),
        (np.zeros((2, 10, 1), np.float32), np.array([[0] + [1] * 9] * 2), "right padding"),
    ],
)
def test_bad_inputs_get_clear_errors(run, inputs, mask, match):
    with pytest.raises(FPTError, match=match):
        predict(FrozenPretrainedTransformer.from_run(run), inputs, mask)


def test_cli_errors_and_run_directory_untouched(run, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 10, 1), np.float32))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["predict", str(run), "--input", str(tmp_path / "x.npy"), "--output", str(run / "p.npy")]) == 2
    assert "outside the run directory" in capsys.readouterr().err
    assert main(["predict", str(run), "--input", str(tmp_path / "x.csv")]) == 2
    assert main(["predict", str(run), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "p.txt")]) == 2
    assert "use a .npy" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_listops_reads_its_own_text_format(tmp_path):
    from fpt.predict import read_inputs

    path = tmp_path / "x.tsv"
    path.write_text("Source\tTarget\n[MAX 2 9 [MIN 4 7 ] 0 ]\t9\n[SM 1 2 ]\n")
    ids, mask = read_inputs(path, "listops", max_length=6)
    assert ids.shape == (2, 6) and mask.sum(1).tolist() == [6, 4]  # clipped to the model's length, as in training
    path.write_text("[MAX 2 x ]\n")
    with pytest.raises(FPTError, match="line 1: not a ListOps expression"):
        read_inputs(path, "listops", max_length=6)
    with pytest.raises(FPTError, match="give inputs as .npy or .npz"):
        read_inputs(path, "bit-xor")

"""The LSTM baselines: shapes, causality, what trains, and a run that reloads like an FPT run."""

from __future__ import annotations

import pytest
import torch

from fpt import FPTError, RunConfig, evaluate, get_task, train
from fpt.model import LSTMBaseline, LSTMConfig, load_run_model

QUIET = dict(progress=False, log=lambda *a: None)


def small(**overrides) -> LSTMBaseline:
    values = dict(input_dim=1, max_length=6, num_classes=2, output_tokens=3, hidden=16, layers=2, dropout=0.0)
    return LSTMBaseline(LSTMConfig(**{**values, **overrides}))


def test_output_shape_and_groups():
    model = small()
    assert model(torch.randn(4, 6, 1)).shape == (4, 3, 2)
    counts = model.group_counts()
    assert set(counts) == {"input", "output", "norm", "other"}
    assert all(trained for _, trained in counts.values())  # the default policy `all` trains everything
    assert "recurrent" in model.freeze_report()


def test_frozen_variant_trains_only_input_output_and_norm():
    model = small(train="fpt")
    for name, param in model.named_parameters():
        expected = model.groups[name] in ("input", "output", "norm")
        assert param.requires_grad == expected, name
    assert sum(p.numel() for p in model.parameters() if not p.requires_grad) > 0


def test_frozen_weights_depend_only_on_init_seed():
    a, b, c = (small(init_seed=s, train="fpt") for s in (1, 1, 2))
    assert a.fingerprint["weights_hash"] == b.fingerprint["weights_hash"] != c.fingerprint["weights_hash"]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=False))


def test_outputs_never_depend_on_later_tokens():
    """Right padding must not change the states of real tokens: the LSTM reads left to right."""
    model = small(output_tokens=1).eval()
    x = torch.randn(2, 6, 1)
    changed = x.clone()
    changed[:, 4:] = torch.randn(2, 2, 1)
    mask = torch.tensor([[True] * 4 + [False] * 2] * 2)
    with torch.no_grad():
        assert torch.allclose(model(x, mask), model(changed, mask))
        assert not torch.allclose(model(x), model(changed))  # unmasked, the last token is read


def test_lstm_run_reloads_and_needs_random_init(tmp_path):
    options = {"n_bits": 2, "val_size": 32, "test_size": 32}
    config = RunConfig(
        task="bit-xor",
        task_options=options,
        architecture="lstm",
        init="random",
        train="fpt",
        layers=1,
        steps=4,
        eval_every=2,
        batch_size=4,
        lr=3e-4,
        precision="fp32",  # the reload evaluates in fp32
        out=str(tmp_path / "lstm"),
    )
    summary = train(config, **QUIET)
    assert summary["trainable_params"] < summary["total_params"]
    model = load_run_model(tmp_path / "lstm")
    assert isinstance(model, LSTMBaseline) and model.config.hidden == 768 and model.config.layers == 1
    assert evaluate(model, get_task("bit-xor", **options), "test")["accuracy"] == summary["test_accuracy"]
    with pytest.raises(FPTError, match="--init random"):
        train(
            RunConfig(task="bit-xor", task_options=options, architecture="lstm", steps=1, out=str(tmp_path / "x")),
            **QUIET,
        )

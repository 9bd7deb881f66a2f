"""The LSTM baselines: shapes, causality, what trains, and a run that reloads like an FPT run."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

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


@pytest.mark.parametrize("train", ["lora", "fpt+lora", "ia3", "ln-tuning"])
def test_an_adapter_policy_is_refused_not_silently_dropped(train):
    with pytest.raises(FPTError, match="the LSTM baseline has none to wrap"):
        small(train=train)


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


def _official_cell_step(layer, x, h, c):
    """The authors' layer-norm LSTM step, written out from their equations (not from our module):
    LN(v) = a * (v - mean) / sqrt(var_unbiased + 1e-6) + b on the i2h and h2h pre-activations and on
    the new cell; gates i, f, o (sigmoid) then g (tanh); the normalised cell is carried."""

    def ln(v, norm):
        return norm.weight * (v - v.mean(1, keepdim=True)) / torch.sqrt(v.var(1, keepdim=True) + 1e-6) + norm.bias

    n = layer.hidden
    i2h = x @ layer.input_gates.weight.T + layer.input_gates.bias
    h2h = h @ layer.recurrent_gates.weight.T + layer.recurrent_gates.bias
    pre = ln(i2h, layer.input_norm) + ln(h2h, layer.recurrent_norm)
    i, f, o = (pre[:, k * n : (k + 1) * n].sigmoid() for k in range(3))
    g = pre[:, 3 * n :].tanh()
    c = ln(f * c + i * g, layer.cell_norm)
    return o * c.tanh(), c


def test_paper_cell_matches_the_official_equations_on_a_tiny_input():
    from fpt.model.lstm import PaperLayerNormLSTMLayer

    torch.manual_seed(0)
    layer = PaperLayerNormLSTMLayer(width=3, hidden=4, dropout=0.0)
    x, h0, c0 = torch.randn(2, 5, 3), torch.randn(2, 4), torch.randn(2, 4)
    with torch.no_grad():
        got = layer(x, (h0, c0))
        h, c, reference = h0, c0, []
        for t in range(5):
            h, c = _official_cell_step(layer, x[:, t], h, c)
            reference.append(h)
        assert torch.allclose(got, torch.stack(reference, 1), atol=1e-6)
        assert not torch.allclose(got, layer(x, (h0, -c0)))  # the given initial state is the one used


def test_paper_cell_init_state_and_dropout():
    from fpt.model.lstm import PaperLayerNorm, PaperLayerNormLSTMLayer

    layer = PaperLayerNormLSTMLayer(width=8, hidden=16, dropout=0.5)
    for norm, size in ((layer.input_norm, 64), (layer.recurrent_norm, 64), (layer.cell_norm, 16)):
        assert isinstance(norm, PaperLayerNorm)
        for param in (norm.weight, norm.bias):  # near zero, not gain 1 / bias 0
            assert param.abs().max() <= size**-0.5 and param.abs().max() > 0.5 * size**-0.5
    for param in layer.input_gates.parameters():
        assert param.abs().max() <= 16**-0.5
    layer.eval()  # no dropout, yet h0/c0 are drawn afresh on every forward, as in the authors' code
    x = torch.randn(2, 3, 8)
    with torch.no_grad():
        assert not torch.allclose(layer(x), layer(x))
        torch.manual_seed(5)
        a = layer(x)
        torch.manual_seed(5)
        assert torch.equal(a, layer(x))  # drawn from torch's seeded generator: runs stay reproducible
        layer.train()
        dropped = layer(x)
    assert (dropped == 0).float().mean() > 0.3  # dropout on h_t, every step


def test_lstm_paper_is_its_own_architecture_and_reloads(tmp_path):
    model = small(architecture="lstm-paper")
    assert "lstm-paper" in model.freeze_report() and model.fingerprint["backbone"] == "lstm-paper"
    assert small().fingerprint["backbone"] == "lstm"
    with pytest.raises(FPTError, match="Unknown LSTM architecture"):
        small(architecture="gru")
    options = {"n_bits": 2, "val_size": 32, "test_size": 32}
    config = RunConfig(
        task="bit-xor",
        task_options=options,
        architecture="lstm-paper",
        init="random",
        train="all",
        layers=1,
        steps=2,
        eval_every=2,
        batch_size=4,
        precision="fp32",
        out=str(tmp_path / "paper"),
    )
    summary = train(config, **QUIET)
    assert summary["trainable_params"] == summary["total_params"]
    model = load_run_model(tmp_path / "paper")
    assert isinstance(model, LSTMBaseline) and model.config.architecture == "lstm-paper"


@pytest.mark.parametrize("architecture", ["lstm", "lstm-paper"])
def test_lstm_without_train_trains_everything_from_the_cli(tmp_path, capsys, architecture):
    """The LSTM baselines are fully trained unless --train says otherwise (the default is not `fpt`)."""
    from fpt.cli import main

    out = tmp_path / architecture
    argv = ["train", "--task", "bit-xor", "--architecture", architecture, "--init", "random", "--steps", "1"]
    small_run = ["--layers", "1", "--task-option", "val_size=8", "--task-option", "test_size=8", "--out", str(out)]
    assert main(argv + small_run) == 0
    report = capsys.readouterr().out
    assert "recurrent" in report and "frozen" not in report and "(100.000%)" in report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trainable_params"] == summary["total_params"] and summary["train"] == "all"
    assert summary["architecture"] == architecture and summary["task_options"]["encoding"] == "01"
    assert summary["position_table"] is None and summary["features_cached"] is False
    assert yaml.safe_load((out / "config.yaml").read_text())["lr"] == 3e-4  # the paper's LSTM lr


def test_run_config_defaults_depend_on_the_architecture():
    assert (RunConfig().model.train, RunConfig().lr) == ("fpt", 1e-3)
    for architecture in ("lstm", "lstm-paper"):
        config = RunConfig(architecture=architecture, init="random")
        assert (config.model.train, config.lr) == ("all", 3e-4)
    assert RunConfig(architecture="lstm", train="fpt", lr=1e-3).model.train == "fpt"  # explicit values are kept


def test_task_lr_preset_is_the_transformers_only(capsys):
    """Remote homology's lr preset (1e-4) must not override the LSTM's 3e-4; --lr still wins."""
    from fpt.cli import _with_task_defaults

    lstm = _with_task_defaults(RunConfig(task="remote-homology", architecture="lstm", init="random"), {"task"})
    transformer = _with_task_defaults(RunConfig(task="remote-homology"), {"task"})
    assert lstm.lr == 3e-4 and transformer.lr == 1e-4
    given = _with_task_defaults(RunConfig(task="remote-homology", lr=5e-4), {"task", "lr"})
    assert given.lr == 5e-4

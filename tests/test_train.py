"""Training end to end: run directory contents, checkpoint round trip, divergence, Python API."""

from __future__ import annotations

import copy
import json
import signal
from dataclasses import replace

import pytest
import torch
import yaml

from fpt import FPTError, FrozenPretrainedTransformer, RunConfig, TensorTask, evaluate, get_task, train
from fpt.cli import main
from fpt.model.freeze import GroupedParameters
from fpt.runs.checkpoint import load_trained, read_checkpoint, resolve
from fpt.training import StopRequests, TrainingInterrupted
from tests.fast_path_names import gpt2_cpu_fast_paths

QUIET = dict(progress=False, log=lambda *a: None)


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory, quiet_gpt2):
    out = tmp_path_factory.mktemp("runs") / "xor"
    config = RunConfig(
        task="bit-xor",
        task_options={"val_size": 200, "test_size": 300},
        backbone=quiet_gpt2,
        steps=30,
        eval_every=10,
        batch_size=8,
        precision="fp32",
        out=str(out),
    )  # reloads evaluate in fp32
    return out, train(config, **QUIET)


def test_run_directory_holds_config_metrics_summary_and_checkpoints(xor_run):
    out, summary = xor_run
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["task"] == "bit-xor" and config["lr"] == 1e-3 and config["model"]["output_tokens"] == 5
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [10, 20, 30]
    assert {"step", "train_loss", "val_accuracy", "elapsed_s", "samples_per_s"} <= set(lines[0])
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    for key in (
        "task",
        "backbone",
        "init",
        "steps",
        "best_step",
        "test_accuracy",
        "trainable_params",
        "total_params",
        "wall_seconds",
        "steps_to_100",
    ):
        assert key in on_disk
    assert on_disk["test_examples"] == 300
    assert on_disk["best_step"] in (10, 20, 30)
    assert (out / "checkpoints" / "best" / "model.safetensors").is_file()


def test_checkpoint_round_trip_reproduces_outputs(xor_run):
    out, summary = xor_run
    model = FrozenPretrainedTransformer.from_run(out)
    task = get_task("bit-xor", val_size=200, test_size=300)
    assert evaluate(model, task, "test")["accuracy"] == summary["test_accuracy"]
    again = FrozenPretrainedTransformer.from_run(out).eval()
    inputs = next(task.eval_batches("test", 50)).inputs
    with torch.no_grad():
        assert torch.equal(model.eval()(inputs), again(inputs))


def test_checkpoint_for_other_weights_is_refused(xor_run):
    out, _ = xor_run
    config = yaml.safe_load((out / "config.yaml").read_text())["model"]
    from fpt import FPTConfig

    other = FrozenPretrainedTransformer(FPTConfig(**{**config, "init": "random", "init_seed": 5}))
    with pytest.raises(FPTError, match="another backbone"):
        load_trained(other, out, "best")


def test_a_policy_edited_after_training_is_named_not_called_another_backbone(xor_run, capsys):
    out, _ = xor_run
    text = (out / "config.yaml").read_text()
    (out / "config.yaml").write_text(text.replace("\n  train: fpt\n", "\n  train: output\n", 1))
    try:
        assert main(["eval", str(out), "--device", "cpu"]) == 2
    finally:
        (out / "config.yaml").write_text(text)
    err = capsys.readouterr().err
    assert "trained with freeze policy 'fpt', and the model being loaded has 'output'" in err
    assert "another backbone" not in err


def test_existing_run_is_never_overwritten(xor_run):
    out, _ = xor_run
    before = (out / "summary.json").read_bytes()
    with pytest.raises(FPTError, match="already holds a run"):
        train(RunConfig(task="bit-xor", steps=1, out=str(out)), **QUIET)
    assert (out / "summary.json").read_bytes() == before


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, quiet_gpt2):
    class Exploding(type(get_task("bit-xor"))):
        calls = 0

        def loss(self, logits, targets):
            Exploding.calls += 1
            loss = super().loss(logits, targets)
            return loss * float("nan") if Exploding.calls > 10 else loss

    task = Exploding(val_size=50, test_size=50)
    out = tmp_path / "nan"
    with pytest.raises(FPTError, match="diverged.*step 5"):
        train(RunConfig(backbone=quiet_gpt2, steps=20, eval_every=5, batch_size=4, out=str(out)), task=task, **QUIET)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert (out / "checkpoints" / "best" / "model.safetensors").is_file()


def test_an_output_only_run_reloads_with_the_input_layer_it_trained_with(tmp_path, quiet_gpt2, monkeypatch):
    """`--train output` leaves the random input layer frozen: the checkpoint keeps it, and one from before
    it was kept gets it back from the run's seed, whatever torch's global state is when reloading."""
    task = get_task("bit-xor", val_size=32, test_size=64)
    config = RunConfig(
        backbone=quiet_gpt2, train="output", steps=4, eval_every=2, batch_size=8, out=str(tmp_path / "new")
    )
    summary = train(config, task=task, **QUIET)
    assert any(name.startswith("embedder.") for name in read_checkpoint(resolve(tmp_path / "new", "best"))[0])
    monkeypatch.setattr(GroupedParameters, "saved_state", GroupedParameters.trained_state)  # the older format
    train(replace(config, out=str(tmp_path / "old")), task=task, **QUIET)
    monkeypatch.undo()
    assert not any(name.startswith("embedder.") for name in read_checkpoint(resolve(tmp_path / "old", "best"))[0])

    inputs = next(task.eval_batches("test", 64)).inputs
    models = []
    for seed, run in ((1, "new"), (2, "new"), (3, "old")):
        torch.manual_seed(seed)  # not the state training built its model in
        models.append(FrozenPretrainedTransformer.from_run(tmp_path / run).eval())
    # Training tested on features cached under its precision (bf16 where auto picks it), with the frozen
    # layer stored in it; a reload computes them afresh, so a borderline bit can flip.
    for model in models:
        assert evaluate(model, task, "test")["accuracy"] == pytest.approx(summary["test_accuracy"], abs=0.02)
    with torch.no_grad():
        torch.testing.assert_close(models[0](inputs), models[1](inputs), rtol=0, atol=0)
    # The older checkpoint's rebuild is the fp32 draw that training rounded.
    for new, old in zip(models[0].embedder.parameters(), models[2].embedder.parameters(), strict=True):
        assert torch.equal(new.bfloat16(), old.bfloat16())


def test_python_api_on_users_own_tensors(tmp_path, quiet_gpt2):
    generator = torch.Generator().manual_seed(0)

    def split(n):
        x = torch.randn(n, 6, 4, generator=generator)
        return x, (x[:, :, 0].sum(1) > 0).long()

    task = TensorTask(split(64), split(32), split(40))
    assert (task.spec.input_kind, task.spec.num_classes, task.spec.max_length) == ("continuous", 2, 6)
    summary = train(
        RunConfig(backbone=quiet_gpt2, steps=4, eval_every=2, batch_size=8, out=str(tmp_path / "own")),
        task=task,
        **QUIET,
    )
    assert summary["test_examples"] == 40
    with pytest.raises(FPTError, match="NaN"):
        TensorTask((torch.full((2, 3, 1), float("nan")), torch.zeros(2)), split(2), split(2))
    with pytest.raises(FPTError, match="shape"):
        FrozenPretrainedTransformer.from_run(tmp_path / "own")(torch.randn(2, 6, 5))


def test_library_train_leaves_signals_and_the_callers_config_alone(tmp_path, quiet_gpt2, monkeypatch):
    installed = []
    monkeypatch.setattr(signal, "signal", lambda *args: installed.append(args))
    config = RunConfig(
        task_options={"val_size": 16, "test_size": 16}, backbone=quiet_gpt2, steps=2, eval_every=2, batch_size=4
    )
    before = copy.deepcopy(config)
    monkeypatch.chdir(tmp_path)  # the default run directory is under runs/
    train(config, **QUIET)
    assert installed == [] and config == before


def test_a_stop_request_checkpoints_and_raises_training_interrupted(tmp_path, quiet_gpt2):
    stop = StopRequests()
    stop.requested = True  # as the first Ctrl-C would under StopRequests.installed()
    config = RunConfig(task_options={"val_size": 16, "test_size": 16}, backbone=quiet_gpt2, steps=5, batch_size=4)
    with pytest.raises(TrainingInterrupted, match="Interrupted at step 1 of 5"):
        train(replace(config, out=str(tmp_path / "stopped")), stop=stop, **QUIET)
    assert [p.name for p in (tmp_path / "stopped" / "checkpoints").iterdir()] == ["step-000001"]
    with StopRequests.installed():
        assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_grad_accumulation_matches_one_big_batch(tmp_path, quiet_gpt2):
    base = dict(
        task="bit-xor",
        task_options={"val_size": 20, "test_size": 20},
        backbone=quiet_gpt2,
        steps=3,
        eval_every=3,
        batch_size=8,
        dropout=0.0,
        precision="fp32",  # bf16 rounds the 1-example and 4-example sums differently (up to 6e-5 here)
    )
    results = []
    for accum in (1, 4):
        out = tmp_path / f"accum{accum}"
        train(RunConfig(**base, grad_accum=accum, out=str(out)), **QUIET)
        results.append(FrozenPretrainedTransformer.from_run(out, "last").trained_state())
    for name, tensor in results[0].items():
        torch.testing.assert_close(tensor, results[1][name], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_minilm_learns_bit_xor(tmp_path):
    """The paper's central effect in miniature: pretrained MiniLM solves XOR in a few hundred steps."""
    summary = train(
        RunConfig(task="bit-xor", steps=400, eval_every=25, target_accuracy=1.0, out=str(tmp_path / "xor")), **QUIET
    )
    assert summary["test_accuracy"] == 1.0
    assert summary["steps_to_100"] is not None and summary["steps_to_100"] <= 400
    size = sum(f.stat().st_size for f in resolve(tmp_path / "xor", "last").iterdir())
    assert size < 5_000_000


def test_config_yaml_and_summary_list_the_fast_paths(xor_run):
    out, summary = xor_run
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["fast_paths"] is True and config["model"]["fast_paths"] is True
    applied = gpt2_cpu_fast_paths()  # GPT-2, CPU: all, where this transformers and a C compiler allow
    assert config["fast_paths_applied"] == summary["fast_paths_applied"] == applied


def test_no_fast_paths_builds_the_plain_model_and_fast_paths_are_reversible(quiet_gpt2):
    from fpt.model import FPTConfig
    from fpt.model.dropout import CPUDropout
    from fpt.model.fast_paths import drop_cpu_fast_paths
    from fpt.model.packed import PackedProduct

    shape = get_task("bit-xor").spec.model_fields()
    plain = FrozenPretrainedTransformer(FPTConfig(**shape, backbone=quiet_gpt2, init="random", fast_paths=False))
    assert plain.fast_paths == [] and "fast paths: none" in plain.freeze_report()
    assert not any(isinstance(m, CPUDropout) for m in plain.modules())
    fast = FrozenPretrainedTransformer(FPTConfig(**shape, backbone=quiet_gpt2, init="random"))
    assert "cpu-dropout" in fast.fast_paths and "cpu-dropout" in fast.freeze_report()
    assert "packed-frozen-matrices" in fast.fast_paths and any(isinstance(m, PackedProduct) for m in fast.modules())
    drop_cpu_fast_paths(fast)
    assert "cpu-dropout" not in fast.fast_paths and not any(isinstance(m, CPUDropout) for m in fast.modules())
    assert fast.backbone.config._attn_implementation == "sdpa"
    assert "packed-frozen-matrices" not in fast.fast_paths and not any(
        isinstance(m, PackedProduct) for m in fast.modules()
    )

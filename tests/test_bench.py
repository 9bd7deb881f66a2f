"""fpt bench on a tiny GPT-2: the JSON has every field and sane values; the default and reference
paths train the same model to the same losses (in fp32). Timings are never asserted."""

from __future__ import annotations

import types

import pytest
import torch

from fpt import bench
from fpt.bench import BenchCase, BenchSettings, default_path, peak_memory_mb, reference_path, run_bench, table, write
from fpt.errors import FPTError
from fpt.model.compat import fast_path_off
from fpt.tasks import get_task

FIELDS = (
    "samples_per_s",
    "reference_samples_per_s",
    "speedup_vs_reference",
    "matmul_gflops",
    "achieved_gflops",
    "fraction_of_matmul_peak",
    "dtype",
    "device",
    "tokens_per_s",
    "eval_samples_per_s",
    "loadavg_before",
    "step_flops",
)


def test_bench_json_has_every_field_with_sane_values(tmp_path, quiet_gpt2):
    case = BenchCase(
        "tiny", "bit-xor", quiet_gpt2, "random", batch_size=4, task_options={"val_size": 40}, eval_examples=16
    )
    document = run_bench(
        ["tiny"], BenchSettings(warmup=0, steps=1, rounds=1, memory=False), {"tiny": case}, log=lambda *a: None
    )
    record = document["results"][0]
    assert all(key in record for key in FIELDS), sorted(set(FIELDS) - set(record))
    assert record["device"] == "cpu" and record["reference_dtype"] == "fp32" and record["dtype"] in ("bf16", "fp32")
    for key in ("samples_per_s", "reference_samples_per_s", "matmul_gflops", "achieved_gflops"):
        assert record[key] > 0, key
    assert record["speedup_vs_reference"] == pytest.approx(
        record["samples_per_s"] / record["reference_samples_per_s"], rel=1e-2
    )
    assert record["tokens_per_s"] == pytest.approx(record["samples_per_s"] * 10, rel=1e-2)
    # the linear layers of 2 blocks, 32 wide, over 4 x 10 tokens; the backward runs input gradients only (the last
    # block works on the 5 read positions only, so the step is under 3x the forward of every position)
    linear = 2 * 4 * 10 * 2 * (32 * 96 + 32 * 32 + 2 * 32 * 128)
    assert linear < record["step_flops"] < 3 * linear and record["backward_gflop"] > 0
    assert 0 < record["fraction_of_matmul_peak"] < 1
    choices = record["choices"]
    assert choices["precision"]["value"] == record["dtype"] and choices["attention"]["value"] in ("sdpa", "fpt_sdpa")
    skipped = "skipped" if fast_path_off("last-block-read-positions-only") is None else "computed"
    assert choices["fused_gelu"]["value"] != "none" and choices["unread_positions"]["value"] == skipped
    assert all(c["why"] for c in choices.values()) and document["machine"]["cpu_flags"]
    out = write(document, tmp_path / "bench.json")
    assert out.with_suffix(".txt").read_text() == table(document) + "\n" and "tiny" in table(document)
    assert "tiny: precision " in table(document)


def test_batch_size_and_backbone_overrides(quiet_gpt2):
    case = BenchCase("tiny", "bit-xor", "no-such-backbone", "random", batch_size=4, task_options={"val_size": 8})
    settings = BenchSettings(warmup=0, steps=1, rounds=1, memory=False, batch_size=2, backbone=quiet_gpt2)
    record = run_bench(["tiny"], settings, {"tiny": case}, log=lambda *a: None)["results"][0]
    assert record["batch_size"] == 2 and record["backbone"] == quiet_gpt2


@pytest.mark.slow  # end to end in a fresh interpreter (torch and transformers imported again)
def test_peak_memory_is_measured_in_a_child_process(quiet_gpt2):
    case = BenchCase("tiny", "bit-xor", quiet_gpt2, "random", batch_size=4)
    assert 50 < peak_memory_mb(case, BenchSettings(), "reference", steps=1) < 4000  # MB: torch itself plus a tiny model


def test_default_and_reference_paths_compute_the_same_losses(tmp_path, quiet_gpt2, monkeypatch):
    # the default path's CPU dropout draws its masks its own way (tests/test_dropout.py); without it
    # the input layer's dropout draws the same masks on both paths and the losses must agree
    monkeypatch.setattr("fpt.model.fast_paths.use_cpu_dropout", lambda model: 0)
    case = BenchCase("tiny", "bit-xor", quiet_gpt2, "random", batch_size=4)
    settings = BenchSettings(precision="fp32")
    task = get_task("bit-xor")
    paths = default_path(case, settings, task, str(tmp_path)), reference_path(case, settings, task)
    losses = []
    for path in paths:
        torch.manual_seed(1)
        losses.append([float(path.step()) for _ in range(3)])
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_unknown_case_and_bad_settings_are_clear_errors():
    with pytest.raises(FPTError, match="minilm-bit-xor"):
        run_bench(["minilm-bit-xr"], BenchSettings())
    with pytest.raises(FPTError, match="reference"):
        run_bench(["minilm-bit-xor"], BenchSettings(reference="sometimes"))


def test_bench_out_inside_a_run_directory_is_refused_before_measuring(tmp_path):
    """Found by the long fuzz run: `fpt bench --out RUN/summary.json` replaced the run's summary."""
    from fpt.bench import check_out

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("task: bit-xor\n")
    (run / "summary.json").write_text("{}\n")
    with pytest.raises(FPTError, match="inside the run directory"):
        check_out(run / "summary.json")
    assert (run / "summary.json").read_text() == "{}\n"
    check_out(tmp_path / "bench.json")  # beside the run is fine


def test_the_cpu_matmul_rate_is_the_faster_of_pytorchs_and_onednns_packed_product(monkeypatch):
    import fpt.bench as bench

    products = []

    def rate(product, n, device, seconds):
        products.append(product())
        return 10.0 * len(products)  # the packed product, timed second, is faster here

    monkeypatch.setattr(bench, "_rate", rate)
    expected = 20.0 if torch.backends.mkldnn.is_available() else 10.0
    assert bench.matmul_gflops(torch.float32, torch.device("cpu"), seconds=0.01) == expected
    if len(products) == 2:  # both the same product of the same matrices
        torch.testing.assert_close(products[1], products[0], rtol=1e-4, atol=1e-3)


def test_paths_take_turns_in_blocks_within_each_round(monkeypatch):
    """Each round's steps are timed in alternating blocks (ABBA), the leader swapping between rounds, so a
    few seconds of outside load cannot land on one path's whole round."""
    turns = []
    monkeypatch.setattr(bench, "_timed", lambda path, steps, device: turns.append((path.name, steps)) or 1.0)
    monkeypatch.setattr(bench, "matmul_gflops", lambda dtype, device: 1.0)
    paths = [types.SimpleNamespace(name=name, dtype="fp32", step=lambda: None, sync=lambda: None) for name in "AB"]
    case = BenchCase("tiny", "bit-xor", "gpt2", steps=7)
    seconds, _ = bench._time_paths(paths, case, BenchSettings(warmup=0, rounds=2, blocks=3), "cpu", lambda *a: None)
    first_round = [("A", 3), ("B", 3), ("B", 2), ("A", 2), ("A", 2), ("B", 2)]
    second_round = [("B", 3), ("A", 3), ("A", 2), ("B", 2), ("B", 2), ("A", 2)]
    assert turns == first_round + second_round
    assert seconds == {"A": 6.0, "B": 6.0}  # every block of both paths is counted
    assert bench._block_sizes(2, 5) == [1, 1] and bench._block_sizes(20, 5) == [4] * 5

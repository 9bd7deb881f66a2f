"""The `forecast` task: patch tokens restored to the series' scale, its options recorded and rebuilt, its
refusals, and a run that trains, evaluates and records MSE/MAE beside the baselines of its windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fpt import FPTError, RunConfig, train
from fpt.tasks import get_task, task_options_schema
from fpt.tasks.arrays import task_record
from fpt.tasks.outputs import Regression
from fpt.tasks.windows import instance_norm, patches

QUIET = dict(progress=False, log=lambda *a: None)
SMALL = dict(lookback=24, horizon=6, patch_len=8, stride=8, val_fraction=0.15, test_fraction=0.2)


@pytest.fixture
def csv_series(tmp_path):
    """Two seasonal series with a trend, 200 steps, a date column and one gap."""
    a = [f"{np.sin(t * np.pi / 6) + 0.01 * t:.6f}" for t in range(200)]
    a[50] = ""
    rows = ["date,a,b"] + [f"d{t},{a[t]},{np.cos(t * np.pi / 6) * 3 + 10:.6f}" for t in range(200)]
    path = tmp_path / "series.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_examples_are_patches_whose_forecast_is_restored_to_the_series_scale(csv_series):
    task = get_task("forecast", path=str(csv_series), **SMALL)
    assert task.spec.input_dim == 8 and task.spec.max_length == 3  # 24 steps, patches of 8
    assert isinstance(task.spec.output_kind, Regression) and task.spec.head == "flatten"
    assert task.spec.output_tokens * task.spec.outputs_per_token == 6
    windows = task.windows["test"]
    batch = next(task.eval_batches("test", 1000))
    assert len(batch) == len(windows) == 2 * (40 - 6 + 1)  # two series, 40 test steps each
    normal, loc, scale = instance_norm(windows.past)
    torch.testing.assert_close(batch.inputs, torch.as_tensor(patches(normal, 8, 8), dtype=torch.float32))
    torch.testing.assert_close(batch.targets, torch.as_tensor(windows.future, dtype=torch.float32))
    perfect = torch.as_tensor((windows.future - loc) / scale, dtype=torch.float32)[..., None]
    torch.testing.assert_close(batch.restore(perfect)[..., 0], batch.targets, rtol=1e-5, atol=1e-5)


def test_without_revin_the_windows_are_read_as_they_are(csv_series):
    task = get_task("forecast", path=str(csv_series), revin=False, **SMALL)
    batch = next(task.eval_batches("val", 4))
    assert batch.output_loc is None and batch.output_scale is None
    torch.testing.assert_close(batch.inputs[:, -1, -1], batch.inputs.new_tensor(task.windows["val"].past[:4, -1]))


def test_recorded_options_rebuild_the_task_and_a_changed_file_is_refused(csv_series, tmp_path):
    task = get_task("forecast", path=str(csv_series), **SMALL)
    name, options = task_record(task, tmp_path, write=False)
    assert name == "forecast" and options["sha256"] and options["season"] == 1
    again = get_task(name, **options)
    assert np.array_equal(again.windows["test"].future, task.windows["test"].future)
    csv_series.write_text(csv_series.read_text().replace("d199,", "d199,9"))
    with pytest.raises(FPTError, match="changed since the run recorded it"):
        get_task(name, **options)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(series="co2", path="x.csv"), "give series .* or path .*, not both"),
        (dict(patch_len=30, lookback=24), r"patch_len \(30\) must be at most lookback \(24\)"),
        (dict(val_fraction=0.5, test_fraction=0.5), "at least a tenth"),
        (dict(series="nile2"), "series must be one of co2, elnino, macrodata, nile, sunspots"),
        (dict(horizon=0), "horizon must be at least 1"),
        (dict(lookback=96, horizon=24), r"horizon \(24\) must be a multiple of the 11 patches"),
    ],
)
def test_bad_options_are_refused_before_any_data_is_read(options, message):
    with pytest.raises(FPTError, match=message):
        get_task("forecast", **options)


def test_too_short_series_and_a_season_beyond_the_lookback(csv_series):
    with pytest.raises(FPTError, match="Too short to forecast: series a has 200 steps"):
        get_task("forecast", path=str(csv_series), lookback=152, horizon=19, patch_len=8, stride=8)
    with pytest.raises(FPTError, match="season 30 is longer than the lookback"):
        get_task("forecast", path=str(csv_series), season=30, **SMALL)
    assert "path" in task_options_schema("forecast").describe()


def test_a_forecast_run_records_mse_and_mae_beside_its_baselines(tiny_gpt2, csv_series, tmp_path):
    options = {"path": str(csv_series), **SMALL, "season": 12}
    config = RunConfig(
        task="forecast",
        task_options=options,
        backbone=tiny_gpt2,
        steps=6,
        eval_every=3,
        batch_size=8,
        out=str(tmp_path / "run"),
        device="cpu",
    )
    summary = train(config, **QUIET)
    assert summary["selection"] == {"metric": "mse", "mode": "min"}
    assert summary["test_mse"] > 0 and summary["test_mae"] > 0
    baselines = summary["baselines"]["test"]
    assert set(baselines) == {"last value", "seasonal naive", "linear"}
    assert baselines["seasonal naive"]["mse"] < baselines["last value"]["mse"]  # the series have period 12
    assert summary["baselines"]["val"] == get_task("forecast", **options).baselines("val")


def _regression_record(key: str, val_mse: float, test_mse: float, baselines: dict) -> dict:
    summary = {
        "status": "finished",
        "selection": {"metric": "mse", "mode": "min"},
        "best_val_mse": val_mse,
        "best_val_metric": val_mse,
        "test_mse": test_mse,
        "test_mae": test_mse * 10,
        "test_metric": test_mse,
        "precision": "bf16",
        "baselines": baselines,
    }
    return {"key": key, "status": "finished", "run_dir": "/nonexistent", "summary": summary}


def test_a_sweep_table_of_a_forecast_picks_the_lowest_val_mse_and_shows_the_baselines():
    from fpt.experiments.sweep import expand
    from fpt.experiments.tables import aggregate, chosen_lr, main_table

    grid = expand(
        {
            "tasks": ["f"],
            "task_settings": {"f": {"task": "forecast", "task_options": SMALL}},
            "lrs": [1e-4, 1e-3],
            "seeds": [0, 1],
            "settings": {"steps": 2},
        }
    )
    baselines = {"test": {"last value": {"mse": 0.5, "mae": 0.6}}, "val": {"last value": {"mse": 0.4, "mae": 0.5}}}
    val = {1e-4: 0.2, 1e-3: 0.1}  # the larger lr has the lower error
    records = [_regression_record(r.key, val[r.lr], val[r.lr] + 0.01 * r.seed, baselines) for r in grid.runs]
    assert chosen_lr(grid, "f", grid.conditions[0], records) == 1e-3
    (cell,) = aggregate(grid, records)
    assert cell.test == [0.1, 0.11] and cell.mae == [1.0, 1.1] and cell.lower_is_better
    lines = main_table(grid, {("f", cell.condition): cell})
    assert "0.1050 ± 0.0071 (MAE 1.0500 ± 0.0707; n=2, bf16" in lines[2]
    assert lines[3].startswith("| baseline: last value | 0.5000 (MAE 0.6000; exact, no seed) | 0.4000 |")

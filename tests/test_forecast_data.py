"""Forecasting data: series sources (statsmodels' bundled ones, CSV/NPZ files), chronological windows,
train-only standardisation, patches, instance normalisation, and the exact baselines."""

from __future__ import annotations

import numpy as np
import pytest

from fpt import FPTError
from fpt.data.series import PACKAGED, packaged, read_file
from fpt.tasks import forecast_baselines as fb
from fpt.tasks.windows import instance_norm, patch_count, patches, split_lengths, windows

RAMP = [("ramp", np.arange(100.0))]


def test_windows_are_chronological_and_standardised_on_train_alone():
    splits = windows(RAMP, lookback=8, horizon=4, val_fraction=0.1, test_fraction=0.2)
    assert split_lengths(100, 0.1, 0.2) == (70, 10, 20)
    train, val, test = (splits[s] for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (70 - 12 + 1, 10 - 4 + 1, 20 - 4 + 1)
    mean, std = np.arange(70.0).mean(), np.arange(70.0).std()
    raw = lambda a: np.rint(a * std + mean)  # noqa: E731
    assert raw(train.future).max() == 69  # training targets never reach validation
    np.testing.assert_array_equal(raw(val.past[0]), np.arange(62, 70))  # the lookback reaches back into train
    np.testing.assert_array_equal(raw(val.future[0]), np.arange(70, 74))
    assert raw(val.future).max() == 79 and raw(test.future[0]).min() == 80 and raw(test.future).max() == 99
    assert abs(train.past[:, 0].mean()) < 1 and test.future.min() > 1.7  # test values scaled by train's stats


def test_every_series_is_split_on_its_own_and_remembered():
    splits = windows([("a", np.arange(60.0)), ("b", np.sin(np.arange(90.0)))], 6, 3, 0.2, 0.2)
    assert set(splits["test"].series) == {0, 1}
    assert (splits["test"].series == 1).sum() == 18 - 3 + 1


def test_short_and_constant_series_are_refused_by_name():
    with pytest.raises(FPTError, match=r"series tiny has 20 steps, split 14/2/4.*lookback \+ horizon = 16"):
        windows([("tiny", np.arange(20.0))], 12, 4, 0.1, 0.2)
    with pytest.raises(FPTError, match="flat is constant over its 70 training steps"):
        windows([("flat", np.r_[np.ones(70), np.arange(30.0)])], 8, 4, 0.1, 0.2)


def test_patches_end_at_the_most_recent_step():
    past = np.arange(11.0)[None]
    assert patch_count(11, 4, 3) == 3
    np.testing.assert_array_equal(patches(past, 4, 3)[0], [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10]])
    assert patches(np.zeros((5, 96)), 16, 8).shape == (5, 11, 16)


def test_instance_norm_is_undone_by_its_loc_and_scale():
    past = np.random.default_rng(0).normal(3, 5, (4, 20))
    normal, loc, scale = instance_norm(past)
    np.testing.assert_allclose(normal.mean(1), 0, atol=1e-12)
    np.testing.assert_allclose(normal * scale + loc, past)
    assert np.isfinite(instance_norm(np.ones((1, 5)))[0]).all()  # a flat window does not divide by zero


def test_baselines_are_exact_where_their_model_is_true():
    wave = [("wave", np.sin(np.arange(400) * 2 * np.pi / 12) + 0.01 * np.arange(400))]
    splits = windows(wave, 24, 6, 0.1, 0.2)
    scores = fb.baselines(splits, season=12)
    assert scores["linear"]["mse"] < 1e-16  # a trend plus a sinusoid is a linear recurrence
    assert scores["last value"]["mse"] > 0.1
    periodic = windows([("p", np.tile([0.0, 3, 1, 2], 50))], 8, 5, 0.1, 0.2)
    assert fb.baselines(periodic, season=4)["seasonal naive"] == {"mse": 0.0, "mae": 0.0}


def test_baseline_forecasts_by_hand():
    past = np.array([[1.0, 2, 3, 4, 5, 6]])
    np.testing.assert_array_equal(fb.last_value(past, 3), [[6, 6, 6]])
    np.testing.assert_array_equal(fb.seasonal_naive(past, 5, 2), [[5, 6, 5, 6, 5]])
    np.testing.assert_array_equal(fb.seasonal_naive(past, 2, 1), [[6, 6]])
    assert fb.errors(np.array([[1.0, 3]]), np.array([[0.0, 0]])) == {"mse": 5.0, "mae": 2.0}
    with pytest.raises(FPTError, match="season of 1 to lookback"):
        fb.seasonal_naive(past, 2, 7)


def test_packaged_series_load_offline_with_gaps_filled():
    pytest.importorskip("statsmodels")
    co2 = packaged("co2")
    assert len(co2) == 1 and len(co2[0][1]) == 2284 and np.isfinite(co2[0][1]).all()
    assert len(packaged("elnino")[0][1]) == 732
    macro = packaged("macrodata")
    assert len(macro) == 12 and {len(v) for _, v in macro} == {203}
    assert set(PACKAGED) == {"co2", "elnino", "sunspots", "macrodata", "nile"}
    with pytest.raises(FPTError, match="Did you mean 'co2'"):
        packaged("co3")


def test_csv_files_with_dates_header_and_gaps(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("date,load,temp\n2020-01,1,10\n2020-02,,11\n2020-03,3,NA\n2020-04,4,13\n")
    (load, a), (temp, b) = read_file(path)
    assert (load, temp) == ("load", "temp")
    np.testing.assert_array_equal(a, [1, 2, 3, 4])
    np.testing.assert_array_equal(b, [10, 11, 12, 13])
    bare = tmp_path / "bare.csv"
    bare.write_text("1.5\n2.5\n")
    assert read_file(bare)[0][0] == "series0"


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b\n1,2\n3,x\n", r"line 3, column 'b': 'x' is not a number"),
        ("a,b\n1,2\n3\n", "line 3: 1 cells where the first row has 2"),
        ("", "is empty"),
        ("a,b\n", "a header but no rows"),
        ("a\n\n\n", "a header but no rows"),
        ("a,b\n1,\n2,\n", "Series b of .* holds no values"),
    ],
)
def test_bad_csv_files_are_refused_clearly(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(FPTError, match=message):
        read_file(path)


def test_npz_files_and_their_refusals(tmp_path):
    good = tmp_path / "s.npz"
    np.savez(good, one=np.arange(5.0), two=np.ones((5, 2)))
    assert [name for name, _ in read_file(good)] == ["one", "two[0]", "two[1]"]
    bad = tmp_path / "bad.npz"
    np.savez(bad, text=np.array(["a", "b"]))
    with pytest.raises(FPTError, match="numbers shaped"):
        read_file(bad)
    inf = tmp_path / "inf.npz"
    np.savez(inf, x=np.array([1.0, np.inf]))
    with pytest.raises(FPTError, match="infinite values at step 1"):
        read_file(inf)
    for name, message in (("x.txt", "expected a .csv"), ("none.csv", "does not exist")):
        with pytest.raises(FPTError, match=message):
            read_file(tmp_path / name)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(FPTError, match="cannot be read as .npz"):
        read_file(tmp_path / "junk.npz")

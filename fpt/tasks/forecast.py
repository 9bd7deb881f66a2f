"""Forecasting, One-Fits-All style (Zhou et al. 2023, GPT4TS): `fpt train --task forecast`.

Each example is one series' lookback window; the model reads it as overlapping patches (tokens of
`patch_len` steps every `stride` steps), instance-normalised per window (RevIN), and a linear head over
the flattened features of every patch predicts the next `horizon` steps, which are restored to the
series' scale (`Batch.output_loc/output_scale`) before the MSE loss and the MSE/MAE metrics.
Multivariate data is modelled channel by channel, one shared model. Series come from statsmodels'
bundled datasets (`series=co2|elnino|sunspots|macrodata|nile`, offline) or a file of the user's
(`path=FILE.csv|.npz`, see fpt.data.series); splits, standardisation and windows: fpt.tasks.windows.

The task also gives the forecasts it must beat on its own windows (`baselines()`: last value, seasonal
naive, least-squares linear; fpt.tasks.forecast_baselines), which a run records beside its own errors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from fpt.data.series import PACKAGED, Series, packaged, read_file
from fpt.errors import FPTError
from fpt.tasks.base import Batch
from fpt.tasks.forecast_baselines import baselines
from fpt.tasks.outputs import Regression
from fpt.tasks.tensors import TensorTask
from fpt.tasks.windows import SPLITS, Windows, instance_norm, patch_count, patches, windows

OPTIONS = {  # refinements of the `forecast` factory's options (fpt.tasks.options)
    "series": {"type": str, "choices": tuple(sorted(PACKAGED)), "help": "a series statsmodels bundles (default co2)"},
    "path": {"type": str, "help": "your own series: a .csv (a column per series) or .npz (arrays (time,[series]))"},
    "sha256": {"type": str, "help": "the file's SHA-256, checked when given (runs record it)"},
    "lookback": {"min": 2, "help": "steps the model reads"},
    "horizon": {"min": 1, "help": "steps it forecasts"},
    "patch_len": {"min": 1, "help": "steps per token"},
    "stride": {"min": 1, "help": "steps between the starts of consecutive tokens"},
    "val_fraction": {"min": 0.01, "max": 0.9, "help": "share of each series' steps (after train) that validate"},
    "test_fraction": {"min": 0.01, "max": 0.9, "help": "share of each series' last steps that test"},
    "season": {
        "type": int,
        "min": 1,
        "nullable": True,
        "help": "the seasonal naive baseline's period (null: the series')",
    },
    "revin": {"help": "normalise each window by its own mean and std (RevIN), restoring the forecast after"},
}


def _rules() -> tuple:
    def one_source(values: dict) -> str | None:
        if values["series"] is not None and values["path"] is not None:
            return "give series (a packaged one) or path (a file), not both"
        return None

    def patch_fits(values: dict) -> str | None:
        if values["patch_len"] > values["lookback"]:
            return f"patch_len ({values['patch_len']}) must be at most lookback ({values['lookback']})"
        return None

    def horizon_fits(values: dict) -> str | None:
        if values["patch_len"] > values["lookback"]:
            return None
        tokens = patch_count(values["lookback"], values["patch_len"], values["stride"])
        if values["horizon"] % tokens:
            return (
                f"horizon ({values['horizon']}) must be a multiple of the {tokens} patches the lookback is cut into "
                "(the flattened head predicts horizon / patches steps per patch read); change horizon, lookback, "
                "patch_len or stride"
            )
        return None

    def fractions(values: dict) -> str | None:
        if values["val_fraction"] + values["test_fraction"] >= 0.9:
            return "val_fraction + test_fraction must leave at least a tenth of each series to train on"
        return None

    return (one_source, patch_fits, horizon_fits, fractions)


RULES = _rules()


class ForecastTask(TensorTask):
    """Windows of series as patch tokens, with float targets restored per window; see the module docstring."""

    def __init__(self, series: Series, options: dict, season: int, data_fingerprint: dict | None = None):
        o = options
        self.windows = windows(series, o["lookback"], o["horizon"], o["val_fraction"], o["test_fraction"])
        self.season, self._options, self.data_fingerprint = season, dict(options), data_fingerprint
        self.series_names = [name for name, _ in series]
        parts = {split: self._batch(self.windows[split], o["patch_len"], o["stride"], o["revin"]) for split in SPLITS}
        tokens = patch_count(o["lookback"], o["patch_len"], o["stride"])
        super().__init__(parts["train"], parts["val"], parts["test"], None, tokens, "forecast", Regression(), "flatten")
        where = o["path"] or f"statsmodels' {o['series']}"
        self.split_sources = {
            split: f"{len(self.windows[split]):,} windows of {len(series)} series of {where}" for split in SPLITS
        }

    @staticmethod
    def _batch(cut: Windows, patch_len: int, stride: int, revin: bool) -> Batch:
        past, loc, scale = instance_norm(cut.past) if revin else (cut.past, None, None)
        tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        restore = (None, None) if loc is None else (tensor(loc), tensor(scale))
        return Batch(tensor(patches(past, patch_len, stride)), tensor(cut.future), None, *restore)

    def options(self) -> dict:
        return dict(self._options)

    def baselines(self, split: str) -> dict[str, dict[str, float]]:
        """{name: {"mse", "mae"}} of the baselines on `split`'s windows, on the task's scale."""
        return baselines(self.windows, self.season, split)


def _file_series(path: str, sha256: str | None) -> tuple[Series, str]:
    file = Path(path).expanduser().absolute()
    try:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError:
        digest = None  # read_file says what is wrong with it
    series = read_file(file)
    if sha256 is not None and sha256 != digest:
        raise FPTError(
            f"Series file {file} changed since the run recorded it (SHA-256 {sha256[:12]}..., now "
            f"{str(digest)[:12]}...); restore it, or train a new run on the new data."
        )
    return series, str(digest)


def _fingerprint(name: str, series: Series) -> dict:
    """What a run records of a packaged series (checked by --resume and fpt eval): a hash of its values."""
    import statsmodels

    digest = hashlib.sha256()
    for column, values in series:
        digest.update(column.encode() + b"\0" + np.ascontiguousarray(values, dtype="<f8").tobytes())
    where = f"statsmodels {statsmodels.__version__}"
    return {"dataset": f"statsmodels {name}", "directory": where, "sha256": digest.hexdigest(), "generated": None}


def forecast(
    series: str | None = None,
    path: str | None = None,
    sha256: str | None = None,
    lookback: int = 96,
    horizon: int = 24,
    patch_len: int = 16,
    stride: int = 8,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    season: int | None = None,
    revin: bool = True,
) -> ForecastTask:
    """Forecast `horizon` steps from `lookback` steps of a packaged series (default co2) or of a file."""
    options: dict = dict(lookback=lookback, horizon=horizon, patch_len=patch_len, stride=stride)
    options |= dict(val_fraction=val_fraction, test_fraction=test_fraction, revin=revin)
    if path is not None:
        values, digest = _file_series(path, sha256)
        source = dict(series=None, path=str(Path(path).expanduser().absolute()), sha256=digest)
        fingerprint, default_season = None, 1
    else:
        name = series or "co2"
        values = packaged(name)
        source = dict(series=name, path=None, sha256=None)
        fingerprint, default_season = _fingerprint(name, values), PACKAGED[name].season
    chosen = default_season if season is None else season
    if chosen > lookback:
        raise FPTError(
            f"season {chosen} is longer than the lookback ({lookback}): the seasonal naive baseline repeats the last "
            "season of the lookback. Give a lookback of at least one season, or season=N."
        )
    return ForecastTask(values, source | options | {"season": chosen}, chosen, fingerprint)

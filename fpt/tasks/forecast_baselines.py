"""The forecasts a trained model must beat, computed exactly on the task's own windows: the last value
repeated, the last season repeated (seasonal naive), and a linear map from the lookback to the horizon
fitted by least squares on the training windows (the DLinear line of work found such a map hard to beat).

Errors are MSE and MAE over every window, step and series of a split, on the standardised scale the
task reports its own errors on, so a table can set them beside trained runs.
"""

from __future__ import annotations

import numpy as np

from fpt.errors import FPTError
from fpt.tasks.windows import Windows

NAMES = ("last value", "seasonal naive", "linear")


def last_value(past: np.ndarray, horizon: int) -> np.ndarray:
    return np.repeat(past[:, -1:], horizon, axis=1)


def seasonal_naive(past: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Step h forecasts the value one season before it, from the last `season` steps (season 1: last value)."""
    if not 1 <= season <= past.shape[1]:
        raise FPTError(
            f"The seasonal naive forecast needs a season of 1 to lookback ({past.shape[1]}) steps; got {season}."
        )
    return past[:, past.shape[1] - season + np.arange(horizon) % season]


def linear_fit(train: Windows) -> np.ndarray:
    """(lookback + 1, horizon) weights (the last row the intercept), least squares over the training windows."""
    design = np.hstack([train.past, np.ones((len(train), 1))])
    weights, *_ = np.linalg.lstsq(design, train.future, rcond=None)
    return weights


def linear(past: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return past @ weights[:-1] + weights[-1]


def errors(predicted: np.ndarray, future: np.ndarray) -> dict[str, float]:
    difference = predicted - future
    return {"mse": float(np.mean(difference**2)), "mae": float(np.mean(np.abs(difference)))}


def baselines(splits: dict[str, Windows], season: int, split: str = "test") -> dict[str, dict[str, float]]:
    """{baseline name: {"mse", "mae"}} of each baseline on `split`, the linear one fitted on "train"."""
    windows = splits[split]
    horizon = windows.future.shape[1]
    predictions = {
        "last value": last_value(windows.past, horizon),
        "seasonal naive": seasonal_naive(windows.past, horizon, season),
        "linear": linear(windows.past, linear_fit(splits["train"])),
    }
    return {name: errors(predicted, windows.future) for name, predicted in predictions.items()}

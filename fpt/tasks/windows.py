"""Forecasting examples cut from series: chronological splits, train-only standardisation, lookback/horizon
windows, patches and per-window instance normalisation (RevIN), in numpy so baselines and the task share them.

Each series is split in time: the first steps train, the next validate, the last test. A window's horizon
lies wholly inside its split; its lookback may reach back into the split before (as the Informer / One-Fits-All
data loaders do), so the first validation forecast starts right where training ends. Every series is
standardised by the mean and standard deviation of its training steps alone, and errors are reported on
that scale (as the One-Fits-All paper reports MSE and MAE).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fpt.errors import FPTError

SPLITS = ("train", "val", "test")
REVIN_EPS = 1e-5  # added to each window's variance, as RevIN does, so a flat window does not divide by zero


@dataclass(frozen=True)
class Windows:
    """The examples of one split: each a lookback, the horizon after it (standardised) and its series' index."""

    past: np.ndarray  # (n, lookback) float64
    future: np.ndarray  # (n, horizon) float64
    series: np.ndarray  # (n,) int

    def __len__(self) -> int:
        return len(self.past)


def split_lengths(length: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """Steps of (train, val, test) in a series of `length` steps."""
    test, val = round(length * test_fraction), round(length * val_fraction)
    return length - val - test, val, test


def standardised(values: np.ndarray, train_steps: int, name: str) -> np.ndarray:
    """`values` less the mean, over the standard deviation, of its first `train_steps` steps."""
    train = values[:train_steps]
    scale = float(train.std())
    if not scale > 1e-12 * max(1.0, abs(float(train.mean()))):
        raise FPTError(
            f"Series {name} is constant over its {train_steps} training steps, so it cannot be standardised by "
            "them; drop it, or give it a larger training share (lower val_fraction/test_fraction)."
        )
    return (values - train.mean()) / scale


def _too_short(name: str, length: int, steps: tuple[int, int, int], lookback: int, horizon: int) -> str | None:
    train, val, test = steps
    if train < lookback + horizon or min(val, test) < horizon:
        return (
            f"series {name} has {length} steps, split {train}/{val}/{test} (train/val/test): training needs at "
            f"least lookback + horizon = {lookback + horizon} steps and val and test at least horizon = {horizon} "
            "each"
        )
    return None


def windows(
    series: list[tuple[str, np.ndarray]], lookback: int, horizon: int, val_fraction: float, test_fraction: float
) -> dict[str, Windows]:
    """Every window of every series, by split (see the module docstring); an FPTError naming each series too
    short for the lookback, horizon and split fractions."""
    problems = []
    cut: dict[str, list] = {split: [] for split in SPLITS}
    for index, (name, values) in enumerate(series):
        steps = split_lengths(len(values), val_fraction, test_fraction)
        problem = _too_short(name, len(values), steps, lookback, horizon)
        if problem:
            problems.append(problem)
            continue
        scaled = standardised(values, steps[0], name)
        begin = 0
        for split, span in zip(SPLITS, steps, strict=True):
            first, last = max(begin, lookback), begin + span - horizon  # horizon starts, inclusive
            starts = np.arange(first, last + 1)
            past = np.lib.stride_tricks.sliding_window_view(scaled, lookback + horizon)[starts - lookback]
            cut[split].append((past[:, :lookback], past[:, lookback:], np.full(len(starts), index)))
            begin += span
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise FPTError(
            f"Too short to forecast: {shown}. Lower lookback or horizon, or change val_fraction/test_fraction."
        )
    return {
        split: Windows(*(np.concatenate([part[i] for part in parts]) for i in range(3))) for split, parts in cut.items()
    }


def patch_count(lookback: int, patch_len: int, stride: int) -> int:
    """Tokens a lookback is cut into: patches of `patch_len` steps every `stride` steps, the last ending at
    the lookback's end (the oldest (lookback - patch_len) % stride steps are left out)."""
    return (lookback - patch_len) // stride + 1


def patches(past: np.ndarray, patch_len: int, stride: int) -> np.ndarray:
    """(n, lookback) -> (n, tokens, patch_len): overlapping patches, oldest first, the last one the most recent."""
    tokens = patch_count(past.shape[1], patch_len, stride)
    starts = past.shape[1] - patch_len - stride * np.arange(tokens - 1, -1, -1)
    return np.stack([past[:, s : s + patch_len] for s in starts], axis=1)


def instance_norm(past: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RevIN without its affine weights: (past - loc) / scale per window, with the (n, 1) loc and scale that
    map a prediction made on that scale back (prediction * scale + loc)."""
    loc = past.mean(axis=1, keepdims=True)
    scale = np.sqrt(past.var(axis=1, keepdims=True) + REVIN_EPS)
    return (past - loc) / scale, loc, scale

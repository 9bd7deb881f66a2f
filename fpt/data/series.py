"""Time series to forecast: real series that install offline with statsmodels, and the user's own files.

Every source gives a list of named univariate series (a multivariate table is one series per column,
modelled channel by channel, as One-Fits-All and PatchTST do). Missing values are filled by linear
interpolation between their neighbours (the nearest value at either end), so a gap never becomes a
zero the model would learn from.

Files (`--task-option path=...`):
  .csv  one column per series, an optional header row, an optional first column of dates or labels;
        empty or NaN cells are missing values
  .npz  one or more arrays (numpy.savez), each (time,) or (time, series)
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpt.errors import FPTError, install_hint, unknown_name

Series = list[tuple[str, np.ndarray]]  # (name, float64 values over time)


@dataclass(frozen=True)
class Packaged:
    """A series bundled with statsmodels: what it is, its seasonal period, and how to read it."""

    description: str
    season: int  # the seasonal naive baseline's period, in steps (1: no season, the last value)
    read: Callable[[Any], Series]  # statsmodels.datasets -> series


def _columns(frame, drop: tuple[str, ...] = ()) -> Series:
    return [(str(c), frame[c].to_numpy(dtype=float)) for c in frame.columns if c not in drop]


def _elnino(datasets) -> Series:
    table = datasets.elnino.load_pandas().data.drop(columns="YEAR")  # one row per year, a column per month
    return [("elnino", table.to_numpy(dtype=float).reshape(-1))]


PACKAGED: dict[str, Packaged] = {
    "co2": Packaged(
        "weekly atmospheric CO2 at Mauna Loa, 1958-2001 (2,284 weeks, 59 missing)",
        52,
        lambda d: _columns(d.co2.load_pandas().data),
    ),
    "elnino": Packaged("monthly Pacific sea surface temperature (El Nino), 1950-2010 (732 months)", 12, _elnino),
    "sunspots": Packaged(
        "yearly sunspot activity, 1700-2008 (309 years)",
        11,
        lambda d: _columns(d.sunspots.load_pandas().data, ("YEAR",)),
    ),
    "macrodata": Packaged(
        "quarterly US macroeconomic series, 1959-2009 (12 series of 203 quarters)",
        4,
        lambda d: _columns(d.macrodata.load_pandas().data, ("year", "quarter")),
    ),
    "nile": Packaged(
        "yearly flow of the Nile at Aswan, 1871-1970 (100 years)",
        1,
        lambda d: _columns(d.nile.load_pandas().data, ("year",)),
    ),
}


def packaged(name: str) -> Series:
    """The series of statsmodels dataset `name` (a key of PACKAGED), gaps filled."""
    if name not in PACKAGED:
        raise unknown_name("series", name, sorted(PACKAGED), "Or pass path=FILE.csv|.npz for series of your own.")
    try:
        import statsmodels.datasets as datasets
    except ImportError as err:
        raise FPTError(
            f"The packaged series ({name}) come with statsmodels: {install_hint('forecast', 'statsmodels')}."
        ) from err
    return [(column, filled(values, f"{name}/{column}")) for column, values in PACKAGED[name].read(datasets)]


def filled(values: np.ndarray, name: str) -> np.ndarray:
    """`values` with NaNs linearly interpolated; an FPTError for infinities or a series with no values."""
    values = np.asarray(values, dtype=float).reshape(-1)
    known = ~np.isnan(values)
    if not known.any():
        raise FPTError(f"Series {name} holds no values (every entry is missing).")
    if np.isinf(values).any():
        raise FPTError(f"Series {name} holds infinite values at step {int(np.flatnonzero(np.isinf(values))[0])}.")
    if known.all():
        return values
    steps = np.arange(len(values))
    return np.interp(steps, steps[known], values[known])


def read_file(path: Path) -> Series:
    """The series of a user's .csv or .npz file (see the module docstring), gaps filled."""
    if path.suffix not in (".csv", ".npz"):
        raise FPTError(
            f"Series file {path}: expected a .csv (one column per series) or a .npz (arrays of shape (time,) or "
            "(time, series)) file."
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise FPTError(f"Series file {path} does not exist; pass --task-option path=FILE.csv (or .npz).") from err
    except OSError as err:
        raise FPTError(f"Cannot read series file {path}: {err}.") from err
    found = _read_csv(data, path) if path.suffix == ".csv" else _read_npz(data, path)
    return [(name, filled(values, f"{name} of {path}")) for name, values in found]


def _number(cell: str) -> float | None:
    """A cell as a number (empty, 'nan' and 'NA' are NaN), or None when it is text."""
    cell = cell.strip()
    if cell in ("", "NA", "N/A", "null"):
        return math.nan
    try:
        return float(cell)
    except ValueError:
        return None


def _read_csv(data: bytes, path: Path) -> Series:
    try:
        rows = [row for row in csv.reader(io.StringIO(data.decode("utf-8-sig"))) if any(c.strip() for c in row)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise FPTError(f"Series file {path} is not a readable UTF-8 CSV file ({str(err)[:120]}).") from err
    if not rows:
        raise FPTError(f"Series file {path} is empty; it needs one column of values per series.")
    header = [c.strip() for c in rows[0]] if any(_number(c) is None for c in rows[0]) else None
    body = rows[1:] if header else rows
    width = len(rows[0])
    labels = bool(body) and all(_number(row[0]) is None for row in body if row)  # a first column of dates
    names = (header or [f"series{i}" for i in range(width)])[int(labels) :]
    values = np.full((len(body), width - int(labels)), math.nan)
    for line, row in enumerate(body, start=2 if header else 1):
        if len(row) != width:
            raise FPTError(f"Series file {path}, line {line}: {len(row)} cells where the first row has {width}.")
        for column, cell in enumerate(row[int(labels) :]):
            number = _number(cell)
            if number is None:
                raise FPTError(
                    f"Series file {path}, line {line}, column {names[column]!r}: {cell[:40]!r} is not a number. "
                    "Every column but an optional first one of dates or labels must hold numbers (empty cells "
                    "are missing values)."
                )
            values[line - (2 if header else 1), column] = number
    if values.size == 0:
        raise FPTError(f"Series file {path} holds a header but no rows of values.")
    return [(name, values[:, i]) for i, name in enumerate(names)]


def _read_npz(data: bytes, path: Path) -> Series:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError) as err:
        raise FPTError(
            f"Series file {path} cannot be read as .npz ({str(err)[:160]}); save plain numeric arrays with "
            "numpy.savez(path, name=values)."
        ) from err
    if not arrays:
        raise FPTError(f"Series file {path} holds no arrays; save each series with numpy.savez(path, name=values).")
    found: Series = []
    for key, array in arrays.items():
        if array.dtype.kind not in "iuf" or array.ndim not in (1, 2) or array.size == 0:
            raise FPTError(
                f"Series file {path}: array {key!r} is {array.shape} {array.dtype}; each array must be non-empty "
                "numbers shaped (time,) or (time, series)."
            )
        columns = array.reshape(len(array), -1).astype(float)
        found += [(key if columns.shape[1] == 1 else f"{key}[{i}]", columns[:, i]) for i in range(columns.shape[1])]
    return found

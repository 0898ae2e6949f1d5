"""Numbers and arrays as text, shared by every renderer.

An array gets one number format for all its entries, so a grid's columns line up: fixed-point
with at most ``precision`` decimals (fewer when every entry needs fewer), or scientific when a
nonzero entry is below 1e-4 or one reaches 1e8 — NumPy's rule for printing arrays.
An array of rank above 2 is shown as one 2-D grid per leading index (``conv1[0]``, ``conv1.kernel[1,0]``).
"""
from __future__ import annotations

import numpy as np

from ..record import Record

SCIENTIFIC_BELOW = 1e-4
SCIENTIFIC_FROM = 1e8


class Grid(Record):
    """One 2-D slice of an array as text: ``cells[i][j]``; ``vector`` for a 1-D array (one row)."""

    __slots__ = ("label", "cells", "vector", "values")

    def __init__(self, label: str, cells: list[list[str]], vector: bool = False,
                 values: np.ndarray | None = None):
        self.label, self.cells, self.vector = label, cells, vector
        self.values = values     # the numbers shown, same layout as ``cells``


def shape_text(shape) -> str:
    """``(4, 4)`` as ``4×4``; a scalar as ``scalar``."""
    return "×".join(map(str, shape)) if len(shape) else "scalar"


def index_text(index) -> str:
    """``(0, 1)`` as ``[0,1]``."""
    return f"[{','.join(map(str, index))}]"


def format_array(array, precision: int) -> np.ndarray:
    """Every entry of ``array`` as text in one common format; same shape, dtype object."""
    values = np.asarray(array, dtype=np.float64) + 0.0          # + 0.0 turns -0.0 into 0.0
    finite = np.abs(values[np.isfinite(values)])
    nonzero = finite[finite > 0]
    scientific = nonzero.size > 0 and (nonzero.min() < SCIENTIFIC_BELOW or nonzero.max() >= SCIENTIFIC_FROM)
    code = "e" if scientific else "f"
    needed = max((_digits_needed(v, code, precision) for v in finite.ravel()), default=1)
    digits = min(max(needed, 1), precision)
    text = np.empty(values.shape, dtype=object)
    for index, value in np.ndenumerate(values):
        text[index] = _number(value, code, digits)
    return text


def number_text(value: float, precision: int) -> str:
    """One number, formatted as a one-entry array would be."""
    return format_array(value, precision).item()


def grids(name: str, array, precision: int) -> list[Grid]:
    """``array`` as 2-D grids labelled by ``name`` and, above rank 2, the leading index."""
    text = format_array(array, precision)
    values = np.asarray(array, dtype=np.float64)
    if text.ndim <= 1:
        return [Grid(name, [list(text.reshape(-1))], vector=True, values=values.reshape(1, -1))]
    if text.ndim == 2:
        return [Grid(name, text.tolist(), values=values)]
    return [Grid(f"{name}{index_text(index)}", text[index].tolist(), values=values[index])
            for index in np.ndindex(text.shape[:-2])]


def _digits_needed(value: float, code: str, precision: int) -> int:
    """Decimals ``value`` needs in format ``code`` once trailing zeros are dropped (at most ``precision``)."""
    text = f"{value:.{precision}{code}}"
    mantissa = text.split("e")[0]
    if "." not in mantissa:
        return 0
    return len(mantissa.rstrip("0").split(".")[1])


def nonfinite_text(value: float) -> str:
    """±inf reaches output only as a value beyond float64 (a fused ∂E/∂y, a difference that
    overflowed): say so."""
    return "nan" if np.isnan(value) else ("inf (overflow)" if value > 0 else "-inf (overflow)")


def _number(value: float, code: str, digits: int) -> str:
    if not np.isfinite(value):
        return nonfinite_text(value)
    text = f"{value:.{digits}{code}}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]                                          # -0.000 rounds to 0
    return text

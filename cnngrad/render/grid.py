"""Numbers and arrays as text, shared by every renderer.

An array gets one number format for all its entries, so a grid's columns line up: fixed-point
with at most ``precision`` decimals (fewer when every entry needs fewer), or scientific when a
nonzero entry is below 1e-4 or one reaches 1e8 — NumPy's rule for printing arrays.
An array of rank above 2 is shown as one 2-D grid per leading index (``conv1[0]``, ``conv1.kernel[1,0]``).
"""
from __future__ import annotations

import re

import numpy as np

from ..record import Record

SCIENTIFIC_BELOW = 1e-4
SCIENTIFIC_FROM = 1e8
FORMAT_CHUNK = 4096       # entries formatted at a time while looking for the decimals a grid needs


class Grid(Record):
    """One 2-D slice of an array as text: ``cells[i][j]``; ``vector`` for a 1-D array (one row)."""

    __slots__ = ("label", "cells", "vector", "values")

    def __init__(self, label: str, cells: list[list[str]], vector: bool = False,
                 values: np.ndarray | None = None):
        self.label, self.cells, self.vector = label, cells, vector
        self.values = values     # the numbers shown, same layout as ``cells``


def index_text(index) -> str:
    """``(0, 1)`` as ``[0,1]``."""
    return f"[{','.join(map(str, index))}]"


def format_array(array, precision: int) -> np.ndarray:
    """Every entry of ``array`` as text in one common format; same shape, dtype object."""
    values = np.asarray(array, dtype=np.float64) + 0.0          # + 0.0 turns -0.0 into 0.0
    return format_values(values, array_format(values, precision))


def array_format(values: np.ndarray, precision: int) -> str:
    """The one %-format for every entry of ``values``: fixed or scientific (NumPy's rule), with the
    fewest decimals, up to ``precision``, that show every finite entry rounded to ``precision``."""
    finite = np.abs(values[np.isfinite(values)])
    nonzero = finite[finite > 0]
    scientific = nonzero.size > 0 and (nonzero.min() < SCIENTIFIC_BELOW or nonzero.max() >= SCIENTIFIC_FROM)
    code = "e" if scientific else "f"
    if precision == 0:
        return f"%.0{code}"
    # the entries at full precision, one per line, a chunk at a time until one needs them all: an
    # entry needs d decimals when its last nonzero decimal is the d-th (precision − d zeros end
    # its mantissa)
    end, needed = "e" if scientific else "\n", 1
    for start in range(0, finite.size, FORMAT_CHUNK):
        text = "\n".join(map(f"%.{precision}{code}".__mod__, finite[start:start + FORMAT_CHUNK].tolist())) + "\n"
        needed = next((d for d in range(precision, needed, -1) if re.search(f"[1-9]0{{{precision - d}}}{end}", text)),
                      needed)
        if needed == precision:
            break
    return f"%.{needed}{code}"


def format_values(values: np.ndarray, fmt: str) -> np.ndarray:
    """Each entry of float64 ``values`` formatted with ``fmt`` (from ``array_format``); a negative
    entry that rounds to zero loses its sign, ±inf and NaN say what they are. Same shape, dtype object."""
    flat = values.ravel()
    text = np.array(list(map(fmt.__mod__, flat.tolist())), dtype=object)
    negative_zero = fmt % -0.0
    rounds_to_zero = 10.0 ** -int(fmt[2:-1]) if fmt.endswith("f") else 0.0
    for k in np.flatnonzero(np.signbit(flat) & (flat >= -rounds_to_zero)):
        if text[k] == negative_zero:
            text[k] = negative_zero[1:]                          # -0.000 rounds to 0
    for k in np.flatnonzero(~np.isfinite(flat)):
        text[k] = nonfinite_text(flat[k])
    return text.reshape(values.shape)


def number_text(value: float, precision: int) -> str:
    """One number, formatted as a one-entry array would be."""
    return format_array(value, precision).item()


def grids(name: str, array, precision: int) -> list[Grid]:
    """``array`` as 2-D grids labelled by ``name`` and, above rank 2, the leading index."""
    values = np.asarray(array, dtype=np.float64) + 0.0
    fmt = array_format(values, precision)
    return [Grid(label, format_values(part, fmt).tolist(), vector, part)
            for label, part, vector in slices(name, values)]


def slices(name: str, values: np.ndarray) -> list[tuple[str, np.ndarray, bool]]:
    """``values`` as its 2-D grids: ``(label, grid, vector)``; a vector is one row."""
    if values.ndim <= 1:
        return [(name, values.reshape(1, -1), True)]
    if values.ndim == 2:
        return [(name, values, False)]
    return [(f"{name}{index_text(index)}", values[index], False) for index in np.ndindex(values.shape[:-2])]


def nonfinite_text(value: float) -> str:
    """±inf reaches output only as a value beyond float64 (a fused ∂E/∂y, a difference that
    overflowed): say so."""
    return "nan" if np.isnan(value) else ("inf (overflow)" if value > 0 else "-inf (overflow)")

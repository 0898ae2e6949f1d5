"""The heatmap every format draws: one colour rule and one rule for how much of a grid is shown.

Colour: red below 0, blue above, from a floor colour at 0 to full at the largest |value| of the
quantity (the terminal fades text towards grey, pictures fill cells from white). Pictures and
notebooks write a grid's values in its cells only while it is small, draw larger grids as bare
cells, and stop after ``CELLS_UP_TO`` cells or ``COLUMNS_UP_TO`` columns with a note (the numbers are in ``--format json``).
"""
from __future__ import annotations

import numpy as np

HEAT = {-1: (230, 60, 60), 1: (70, 140, 255)}    # negative red, positive blue, at the largest |value|
HEAT_FLOOR = (150, 150, 150)                    # the grey that small values fade towards on a terminal
PAPER = (255, 255, 255)                         # the white that small cells fade towards in a picture
NON_FINITE = (200, 0, 200)                      # magenta: an overflow or NaN, as the terminal shows it
VALUES_UP_TO = 400        # a grid of at most this many entries shows its numbers
CELLS_UP_TO = 10_000      # at most this many cells of one grid are drawn; the rows after are elided
COLUMNS_UP_TO = 400       # and at most this many columns


def largest(values) -> float:
    """The largest finite |value|: the full colour of a quantity (0 when there is none)."""
    magnitudes = np.abs(np.asarray(values, dtype=np.float64))
    return float(magnitudes[np.isfinite(magnitudes)].max(initial=0.0))


def rgb(values, top: float, floor=PAPER) -> np.ndarray:
    """Colour of each value as integer RGB (shape ``values.shape + (3,)``):
    floor + (full − floor)·|v|/top, full red below 0 and blue above; non-finite values magenta."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    share = np.abs(np.where(finite, values, 0.0)) / top if top > 0 else np.zeros(values.shape)
    full = np.where((values < 0)[..., None], HEAT[-1], HEAT[1])
    colours = np.rint(np.asarray(floor) + (full - np.asarray(floor)) * share[..., None]).astype(int)
    colours[~finite] = NON_FINITE
    return colours


def ink(colours: np.ndarray) -> np.ndarray:
    """True where text on a fill of ``colours`` should be white (the fill is dark), by luma."""
    return colours @ np.array([0.299, 0.587, 0.114]) < 150


def shown(rows: int, columns: int) -> tuple[int, int]:
    """How much of a ``rows``×``columns`` grid is drawn: at most ``COLUMNS_UP_TO`` columns, and as
    many rows as ``CELLS_UP_TO`` cells hold (at least one)."""
    columns = min(columns, COLUMNS_UP_TO)
    return min(rows, max(1, CELLS_UP_TO // columns)), columns


def elided_note(label: str, shape: tuple[int, int], drawn: tuple[int, int]) -> str | None:
    """What a picture says under a grid it cut short (None when all of it is drawn)."""
    if tuple(shape) == tuple(drawn):
        return None
    (rows, columns), (r, c) = shape, drawn
    return (f"{label}: {r}×{c} of {rows}×{columns} drawn ({rows * columns:,} entries; "
            f"--format json has every value)")


def hex_colour(colour) -> str:
    """An RGB triple as CSS and SVG write it: ``#e63c3c``."""
    return "#{:02x}{:02x}{:02x}".format(*colour)

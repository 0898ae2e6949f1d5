"""How much of a grid the table shows: on a terminal, what fits its width and height; piped,
everything up to ``PIPE_ENTRIES`` entries per grid. What does not fit is elided as NumPy summarises
an array: the first and the last rows (columns, grids) with ``…`` between them. ``--full`` shows all.
"""
from __future__ import annotations

import os
import shutil
import sys

from ..record import Record

ELLIPSIS = "…"
PIPE_ENTRIES = 10_000     # piped output shows a grid whole up to this many entries
MAX_GRIDS = 8             # on a terminal, a quantity of more 2-D grids shows the first and last
EDGE_GRIDS = 3            # ... this many each
MIN_ROWS, MIN_COLUMNS = 6, 2
LINES_PER_GRID = 6        # a grid's title, header, rule, note and a blank line beside its rows


class Budget(Record):
    """The room for one grid: ``width`` characters, ``height`` lines; ``min_entries``: grids of
    at most this many entries are shown whole anyway; ``grids``: whether to elide 2-D grids too."""

    __slots__ = ("width", "height", "min_entries", "grids")

    def __init__(self, width: int, height: int, min_entries: int = 0, grids: bool = True):
        self.width, self.height, self.min_entries, self.grids = width, height, min_entries, grids


def budget(full: bool, stream=None) -> Budget | None:
    """The budget for output to ``stream`` (stdout): None (everything) with ``full``; a terminal's
    size (``COLUMNS`` and ``LINES`` override it); piped, 80×24 for grids above ``PIPE_ENTRIES``."""
    if full:
        return None
    size = shutil.get_terminal_size()
    if on_terminal(sys.stdout if stream is None else stream):
        return Budget(size.columns, size.lines)
    return Budget(size.columns, size.lines, min_entries=PIPE_ENTRIES, grids=False)


def on_terminal(stream) -> bool:
    """Whether ``stream`` is a terminal (``TTY_COMPATIBLE=1`` or ``0`` says so, as for rich)."""
    override = os.environ.get("TTY_COMPATIBLE", "")
    if override in ("0", "1"):
        return override == "1"
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def edges(count: int, keep: int) -> list[int] | None:
    """The positions shown of ``count`` when only ``keep`` fit: the first ⌈keep/2⌉ and the last
    ⌊keep/2⌋; None when all fit."""
    if count <= keep:
        return None
    head = (keep + 1) // 2
    return list(range(head)) + list(range(count - (keep - head), count))


def shown_grids(count: int, room: Budget | None) -> list[int] | None:
    """Which 2-D grids of a quantity are shown (None: all)."""
    if room is None or not room.grids or count <= MAX_GRIDS:
        return None
    return edges(count, 2 * EDGE_GRIDS)


def shown_rows(rows: int, columns: int, room: Budget | None) -> list[int] | None:
    """Which rows of a ``rows``×``columns`` grid are shown (None: all)."""
    if room is None or rows * columns <= room.min_entries:
        return None
    return edges(rows, max(room.height - LINES_PER_GRID - 1, MIN_ROWS))


def shown_columns(widths: list[int], index_width: int | None, rows: int, room: Budget | None) -> list[int] | None:
    """Which columns are shown of a grid whose columns are ``widths`` characters wide (title
    included), after an index column ``index_width`` wide (None: no index column), in the table
    layout (three spaces between columns); None: all."""
    count = len(widths)
    if room is None or rows * count <= room.min_entries:
        return None
    fixed = 0 if index_width is None else index_width + 3

    def width(keep: int) -> int:
        picked = edges(count, keep)
        if picked is None:
            return fixed + sum(widths) + 3 * (count - 1)
        return fixed + sum(widths[k] for k in picked) + 3 * keep + len(ELLIPSIS)

    if width(count) <= room.width:
        return None
    keep = MIN_COLUMNS
    while keep + 1 < count and width(keep + 1) <= room.width:
        keep += 1
    return edges(count, keep)

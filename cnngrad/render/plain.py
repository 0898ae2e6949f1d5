"""The table format's text without colour, laid out here exactly as rich lays it out, without rich.

Piped output (a CI log, ``| less``, a test) has no colour, and then rich's layout of our parts is
plain arithmetic: a line of text is printed as is; a table has one column per header, each as
wide as its widest cell, cells justified within it (right-justified ones first lose trailing spaces), one space of padding on each side of a cell
but not at the table's outer edges, a space between columns, and under the header a rule of
``─`` across the whole width. Importing rich costs a small check about a fifth of its run time
(tens of milliseconds), so ``table`` uses this whenever the result is certain to be identical:
``usable`` says when (not a terminal, colour not forced, UTF-8, and only characters whose
width rich and we agree on); otherwise rich renders, as before. ``tests/unit/test_render_plain.py``
compares the two.

Measured (2026-11-30, a shared 2-core machine): ``cnngrad check
configs/seed001_fc_sigmoid_deltas.yaml | cat`` takes 310 ms (median of 30 runs) with this module
and 400 ms when rich renders the same text; ``python -X importtime`` puts importing rich's
console and table at 27–40 ms of that, rich's layout the rest.
"""
from __future__ import annotations

import builtins
import itertools
import os
import sys

import numpy as np

# Characters one cell wide for rich too (letters, digits, punctuation and symbols of these blocks;
# no marks, no control, format or separator characters): Latin-1 and Latin Extended-A, Greek and
# Coptic, general punctuation, super- and subscripts, arrows, mathematical operators, box drawing,
# phonetic extensions (ᵀ).
_NARROW_BLOCKS = ((0x00A1, 0x017F), (0x0370, 0x03FF), (0x1D00, 0x1DBF), (0x2010, 0x2027),
                  (0x2030, 0x205E), (0x2070, 0x209F), (0x2190, 0x21FF), (0x2200, 0x22FF),
                  (0x2500, 0x257F))
RULE = "─"


def usable(lines_and_tables, stream=None) -> bool:
    """True when rich would print these parts to ``stream`` (default stdout) with no colour codes
    and every character is one that both layouts measure alike, so the plain layout is identical."""
    stream = sys.stdout if stream is None else stream
    if stream is None or sys.platform == "win32" or hasattr(builtins, "get_ipython"):
        return False                       # rich's special cases: no stream, legacy Windows, Jupyter
    if _may_be_terminal(stream):
        return False
    encoding = (getattr(stream, "encoding", None) or "utf-8").lower()
    if not encoding.startswith("utf"):
        return False                       # rich would swap the rule for ASCII
    return all(_narrow(text) for text in _texts(lines_and_tables))


def render(lines_and_tables) -> str:
    """The parts as rich prints them without colour: each line, each table, a newline after each."""
    out = []
    for part in lines_and_tables:
        if getattr(part, "is_grid", False):
            out += _grid_lines(part)
        elif part.is_table:
            out += _table_lines(part)
        else:
            out.append("".join(text for text, _ in part.spans))
    return "".join(line + "\n" for line in out)


def _table_lines(table) -> list[str]:
    columns = table.columns
    widths = [max([len(title)] + [len(row[i][0]) for row in table.rows]) for i, (title, *_) in enumerate(columns)]
    last = len(columns) - 1
    if last == 0 and widths[0] == 0:
        widths[0] = 1                      # rich draws an all-empty single column one cell wide

    def line(cells):
        out = []
        for i, ((text, _), (_, justify, *_), width) in enumerate(zip(cells, columns, widths)):
            cell = text.rstrip().rjust(width) if justify == "right" else text.ljust(width)
            out.append(("" if i == 0 else " ") + cell + ("" if i == last else " "))
        return " ".join(out)

    rule_width = sum(widths) + 3 * last
    return [line([(title, None) for title, *_ in columns]), RULE * rule_width,
            *(line(row) for row in table.rows)]


def _grid_lines(grid) -> list[str]:
    """A number grid (``table.NumberGrid``): every column right-aligned, an optional index column
    first; the same layout as ``_table_lines``, a row at a time for grids of a million entries."""
    header, rows = grid.header, grid.rows
    if grid.index is not None:
        header, rows = ["", *header], [[title, *cells] for title, cells in zip(grid.index, rows)]
    lengths = np.fromiter(map(len, itertools.chain.from_iterable(rows)), dtype=np.int64,
                          count=len(rows) * len(header)).reshape(len(rows), len(header))
    widths = np.maximum(lengths.max(axis=0, initial=0), list(map(len, header))).tolist()
    return ["   ".join(map(str.rjust, header, widths)), RULE * (sum(widths) + 3 * (len(widths) - 1)),
            *("   ".join(map(str.rjust, cells, widths)) for cells in rows)]


def _may_be_terminal(stream) -> bool:
    """rich's ``Console.is_terminal`` for ``stream``, erring towards True (then rich renders)."""
    if getattr(sys.stdin, "__module__", "").startswith("idlelib"):
        return True
    tty_compatible = os.environ.get("TTY_COMPATIBLE", "")
    if tty_compatible in ("0", "1"):
        return tty_compatible == "1"
    force_color = os.environ.get("FORCE_COLOR")
    if force_color is not None:
        return force_color != ""
    try:
        return bool(stream.isatty())
    except Exception:
        return True


def _texts(parts):
    for part in parts:
        if getattr(part, "is_grid", False):          # numbers and indices only: their titles suffice
            yield from part.header
        elif part.is_table:
            yield from (title for title, *_ in part.columns)
            for row in part.rows:
                yield from (text for text, _ in row)
        else:
            yield from (text for text, _ in part.spans)


def _narrow(text: str) -> bool:
    if text.isascii():
        return text.isprintable()
    return all(_narrow_char(char) for char in text)


def _narrow_char(char: str) -> bool:
    if " " <= char <= "~":
        return True
    import unicodedata            # only for text beyond ASCII
    code = ord(char)
    return (any(low <= code <= high for low, high in _NARROW_BLOCKS)
            and unicodedata.category(char)[0] in "LNPS")

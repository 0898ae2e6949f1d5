"""GitHub-flavoured Markdown: headings per quantity, grids as tables with index row and column.

Text is escaped so that it shows as written: control characters as escapes, ``& < >`` as HTML
entities (no raw HTML), and the characters that would start emphasis, code or a table cell
backslashed; text from the spec or a path (its name, file names) also gets ``[ ] #`` escaped, so
it can make no link or heading.
"""
from __future__ import annotations

import re

import numpy as np

from . import rows
from .blocks import Formula, Note, Problem, Table, Value, Verdict, Where
from .grid import grids, number_text
from .reports import BackwardReport, ForwardReport
from ..quantities import gradient_of, shape_text
from ..text import printable

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# an underscore between two letters or digits starts no emphasis (GFM), so conv_1 stays as is
_ACTIVE = re.compile(r"[\\`*~|&<>]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_LINK_OR_HEADING = re.compile(r"[\[\]#]")


def forward(report: ForwardReport, precision: int, full: bool = True) -> str:
    """Every grid whole (``full`` is accepted for symmetry with the table, which may elide)."""
    blocks = [f"# {_heading(report.spec, report.name)}",
              _table(rows.SUMMARY_HEADER, rows.summary_rows(report), numeric=(3,))]
    blocks += [_cell(note) for note in report.notes]
    blocks += _quantity("input", "input", report.input, precision)
    for layer in report.layers:
        blocks += _quantity(layer.name, layer.name, layer.output, precision)
        for key, value in layer.statistics.items():
            blocks += _quantity(f"{layer.name}.{key}", f"{layer.name}.{key}", value, precision)
    blocks += _quantity("output", "output", report.output, precision)
    for key, value in report.loss_parts.items():
        blocks += _quantity(key, key, value, precision)
    blocks.append(_loss(report.loss, report.loss_kind, precision))
    return "\n\n".join(blocks) + "\n"


def backward(report: BackwardReport, precision: int, full: bool = True) -> str:
    blocks = [f"# {_heading(report.spec, report.name)}",
              _loss(report.loss, report.loss_kind, precision)]
    blocks += [_cell(note) for note in report.notes]
    for quantity, gradient in report.gradients.items():
        blocks += _quantity(gradient_of(quantity), gradient_of(quantity), gradient, precision)
    for param, value in report.updates.items():
        blocks += _quantity(rows.update_title(param, report.lr), param, value, precision)
    return "\n\n".join(blocks) + "\n"


def check(results) -> str:
    blocks = []
    for result in results:
        if result.error is not None:
            continue                       # its one-line error went to stderr
        blocks.append(f"## {_heading(result.spec, result.name)}")
        blocks += [BLOCKS[type(block)](block) for block in rows.check_blocks(result)]
    blocks.append(f"**{_cell(rows.total_line(results))}**")
    return "\n\n".join(blocks) + "\n"


def explain(explained, precision: int) -> str:
    blocks = [f"# {_heading(explained.spec, explained.name)}"]
    blocks += [BLOCKS[type(block)](block) for block in rows.explain_blocks(explained, precision)]
    return "\n\n".join(blocks) + "\n"


BLOCKS = {   # block type → its Markdown
    Value: lambda b: f"## `{b.text}`",
    Formula: lambda b: f"`{b.text}`",
    Where: lambda b: _cell(b.text),
    Note: lambda b: _cell(b.text),
    Problem: lambda b: _cell(b.text),
    Verdict: lambda b: f"**{_spec_text(b.text)}**",
    Table: lambda b: _table(b.header, b.rows, b.numeric),
}


def _quantity(title: str, name: str, value, precision: int) -> list[str]:
    """A heading with the shape, then one table per 2-D slice; a scalar is one line."""
    if np.ndim(value) == 0:
        return [f"`{title}` = {number_text(value, precision)}"]
    blocks = [f"## `{title}` ({shape_text(np.shape(value))})"]
    for grid in grids(name, value, precision):
        if grid.label != name:
            blocks.append(f"### `{grid.label}`")
        columns = [str(j) for j in range(len(grid.cells[0]))]
        if grid.vector:
            blocks.append(_table(columns, grid.cells, numeric=range(len(columns))))
        else:
            body = [[str(i), *cells] for i, cells in enumerate(grid.cells)]
            blocks.append(_table(["", *columns], body, numeric=range(len(columns) + 1), bold_index=True))
    return blocks


def _loss(loss, loss_kind: str, precision: int) -> str:
    return f"**{_cell(rows.loss_text(loss_kind, loss, precision))}**"


def _table(header, body, numeric=(), bold_index: bool = False) -> str:
    """A pipe table; columns in ``numeric`` are right-aligned; ``bold_index``: the first cell of
    each body row (a row index) in bold."""
    align = ["--:" if column in numeric else "---" for column in range(len(header))]
    lines = ["| " + " | ".join(map(_cell, header)) + " |", "| " + " | ".join(align) + " |"]
    for first, *rest in body:
        first = f"**{_cell(first)}**" if bold_index else _cell(first)
        lines.append("| " + " | ".join([first, *map(_cell, rest)]) + " |")
    return "\n".join(lines)


def _heading(spec: str, name: str | None) -> str:
    return _spec_text(rows.heading(spec, name))


def _cell(text: str) -> str:
    """Our own words, numbers and quantity names, escaped to show as written."""
    return _ACTIVE.sub(_escape, printable(text))


def _spec_text(text: str) -> str:
    """Text that holds a spec's name or a path, which may be anything: no link, no heading either."""
    return _LINK_OR_HEADING.sub(r"\\\g<0>", _cell(text))


def _escape(match: re.Match) -> str:
    char = match.group()
    return _ENTITIES.get(char) or "\\" + char

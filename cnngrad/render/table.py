"""Tables for people: a model summary, aligned number grids, check tables with coloured verdicts.

Colour appears only when stdout is a terminal and NO_COLOR is unset (rich's own detection); with
NO_COLOR, bold and dim go too.
The console is widened to the widest grid, so numbers are never squeezed or cut off; instead a
grid too large for the terminal is elided to it (``fit``; ``--full`` shows all).
The parts are built as plain ``Line``, ``Table`` and ``NumberGrid`` records; rich (imported only
then) renders them when colour is possible, and ``plain`` lays out the very same text when it is
not (a pipe).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from . import blocks, fit, plain, rows
from .grid import array_format, format_values, number_text, slices
from .heatmap import HEAT, HEAT_FLOOR, rgb   # noqa: F401 (HEAT: the colours, as tests read them)
from ..quantities import gradient_of, shape_text
from ..text import printable

if TYPE_CHECKING:                 # annotations only: check output needs no report records
    from .reports import BackwardReport, ForwardReport

UNBOUNDED = 100_000       # width at which to measure what a part needs
STYLES = {rows.PASSED: "bold green", rows.FAILED: "bold red", rows.UNVERIFIED: "bold yellow", "ok": "green",
          "fail": "red", "kink": "yellow"}
ROW_STYLES = {rows.FAILED: "red", rows.UNVERIFIED: "yellow", "fail": "red", "kink": "yellow"}   # the whole row of a failure or kink
HEAT_LIMIT = 10_000       # a grid showing more entries is printed without colour (rich is slow there)


class Line:
    """One line of text in styled pieces: ``spans`` is ``((text, style), ...)``."""

    is_table = False

    def __init__(self, *spans):
        self.spans = tuple((printable(span), "") if isinstance(span, str) else (printable(span[0]), span[1])
                           for span in spans)


class Table:
    """A table: ``columns`` is ``[(title, justify, style, no_wrap), ...]``, ``rows`` ``[[(text, style), ...], ...]``."""

    is_table = True

    def __init__(self, header_style: str):
        self.header_style, self.columns, self.rows = header_style, [], []

    def add_column(self, title: str, justify: str = "left", style: str = "", no_wrap: bool = True) -> None:
        self.columns.append((printable(title), justify, style, no_wrap))

    def add_row(self, *cells) -> None:
        self.rows.append([(printable(cell), "") if isinstance(cell, str) else (printable(cell[0]), cell[1])
                          for cell in cells])


class NumberGrid:
    """A grid of numbers, every column right-aligned: ``header`` the column titles, ``index`` the
    row titles (None for a vector, one row), ``rows`` the cells, ``values`` their numbers for the
    heatmap (NaN where a cell is the ``…`` of an elision) and ``largest`` the quantity's largest |value|.
    Its text is ours (numbers and indices), so it needs no escaping."""

    is_table = is_grid = True

    def __init__(self, header: list[str], index: list[str] | None, rows: list[list[str]],
                 values: np.ndarray, largest: float):
        self.header, self.index, self.rows, self.values, self.largest = header, index, rows, values, largest


def Text(text: str, style: str = "") -> Line:        # noqa: N802 (reads as rich's Text did)
    return Line((text, style))


def forward(report: ForwardReport, precision: int, full: bool = False) -> str:
    """``full``: every grid whole, even where it does not fit the terminal (see ``fit``)."""
    room = fit.budget(full)
    parts = [Text(rows.heading(report.spec, report.name), style="bold"),
             _table(rows.SUMMARY_HEADER, rows.summary_rows(report), numeric=(3,))]
    parts += [Text(printable(note), style="yellow") for note in report.notes]
    parts += _quantity("input", "input", report.input, precision, room)
    for layer in report.layers:
        parts += _quantity(layer.name, layer.name, layer.output, precision, room)
        for key, value in layer.statistics.items():
            parts += _quantity(f"{layer.name}.{key}", f"{layer.name}.{key}", value, precision, room)
    parts += _quantity("output", "output", report.output, precision, room)
    for key, value in report.loss_parts.items():
        parts += _quantity(key, key, value, precision, room)
    parts += [Text(""), _loss(report.loss, report.loss_kind, precision)]
    return _render(parts)


def backward(report: BackwardReport, precision: int, full: bool = False) -> str:
    room = fit.budget(full)
    parts = [Text(rows.heading(report.spec, report.name), style="bold"),
             _loss(report.loss, report.loss_kind, precision)]
    parts += [Text(printable(note), style="yellow") for note in report.notes]
    for quantity, gradient in report.gradients.items():
        parts += _quantity(gradient_of(quantity), gradient_of(quantity), gradient, precision, room)
    for param, value in report.updates.items():
        parts += _quantity(rows.update_title(param, report.lr), param, value, precision, room)
    return _render(parts)


def check(results) -> str:
    """Per spec: its gradients, layer deltas, expect values, the entries that need a look, a verdict."""
    return "".join(map(check_spec, results)) + check_total(results)


def check_spec(result) -> str:
    """One spec's part of ``check``, to print as soon as it is checked; nothing for a spec that
    could not run (its error line is on stderr)."""
    return "" if result.error is not None else _render(_spec_check(result))


def check_total(results) -> str:
    """The last line of ``check``: how many specs passed, failed, could not run."""
    return _render([_verdict(rows.total_line(results), all(r.passed for r in results))])


def plain_check(results, total: bool = True) -> str:
    """``check``'s report without colour wherever it goes (a CI log, a JUnit failure message);
    ``total=False`` leaves out the line counting the specs."""
    parts = [part for result in results if result.error is None for part in _spec_check(result)]
    if total:
        parts.append(_verdict(rows.total_line(results), all(r.passed for r in results)))
    return plain.render(parts)


def explain(explained, precision: int) -> str:
    """One gradient entry: its value, the chain-rule formula, what the symbols are, the sum term by term."""
    parts = [Text(rows.heading(explained.spec, explained.name), style="bold")]
    for block in rows.explain_blocks(explained, precision):
        parts += BLOCKS[type(block)](block)
    return _render(parts)


def _spec_check(result) -> list:
    parts = [Text(rows.heading(result.spec, result.name), style="bold")]
    for block in rows.check_blocks(result):
        parts += BLOCKS[type(block)](block)
    return parts


BLOCKS = {   # block type → its parts (a blank line sets off values, formulas, tables and verdicts)
    blocks.Value: lambda b: [Text(""), Text(b.text, style="bold cyan")],
    blocks.Formula: lambda b: [Text(""), Text(b.text)],
    blocks.Where: lambda b: [Text(b.text, style="dim")],
    blocks.Note: lambda b: [Text(b.text, style="dim")],
    blocks.Problem: lambda b: [Text(b.text, style="red")],
    blocks.Verdict: lambda b: [Text(""), _verdict(b.text, b.passed), Text("")],
    blocks.Table: lambda b: [Text(""), _table(b.header, b.rows, b.numeric)],
}


def _quantity(title: str, name: str, value, precision: int, room: fit.Budget | None = None) -> list:
    """A titled value: ``name = x`` for a scalar, else its shape and one grid per 2-D slice, each
    elided to ``room`` (None: whole)."""
    if np.ndim(value) == 0:
        return [Text(""), Line((title, "bold cyan"), " = ", number_text(value, precision))]
    values = np.asarray(value, dtype=np.float64) + 0.0
    parts = [Text(""), Line((title, "bold cyan"), "  ", (shape_text(values.shape), "dim"))]
    fmt = array_format(values, precision)
    magnitudes = np.abs(values)
    largest = float(magnitudes[np.isfinite(magnitudes)].max(initial=0.0))
    grids = slices(name, values)
    shown = fit.shown_grids(len(grids), room)
    resume = None if shown is None else shown[_gap(shown)]            # the first grid after those left out
    for position, (label, grid, vector) in enumerate(grids):
        if shown is not None and position not in shown:
            continue
        if position == resume:
            hidden = grids[shown[_gap(shown) - 1] + 1:resume]
            parts.append(Text(f"{fit.ELLIPSIS} {len(hidden)} more grids, {hidden[0][0]} to {hidden[-1][0]} "
                              "(--full shows them)", style="dim"))
        if label != name:
            parts.append(Text(label, style="cyan"))
        parts += _grid(grid, vector, fmt, largest, room)
    return parts


def _grid(values: np.ndarray, vector: bool, fmt: str, largest: float, room: fit.Budget | None) -> list:
    """One 2-D grid as a ``NumberGrid``, elided to ``room``, and a note of what was left out."""
    count_rows, count_columns = values.shape
    rows = None if vector else fit.shown_rows(count_rows, count_columns, room)
    if rows is not None:
        values = values[rows]
    cells = format_values(values, fmt)
    header = [str(j) for j in range(count_columns)]
    lengths = np.fromiter(map(len, cells.ravel()), dtype=np.int64, count=cells.size).reshape(cells.shape)
    widths = np.maximum(lengths.max(axis=0, initial=0), [len(title) for title in header]).tolist()
    row_titles = None if vector else list(map(str, range(count_rows) if rows is None else rows))
    index_width = None if vector else max(max(map(len, row_titles)), len(fit.ELLIPSIS))
    columns = fit.shown_columns(widths, index_width, count_rows, room)
    if columns is not None:
        cells, values, header = cells[:, columns], values[:, columns], [header[j] for j in columns]
    body = cells.tolist()
    values = _mark_gaps(header, row_titles, body, values, rows, columns)
    return [NumberGrid(header, row_titles, body, values, largest), *_left_out_note(rows, columns)]


def _left_out_note(rows, columns) -> list:
    """A dim line saying which rows and columns an elided grid leaves out; none when it shows all."""
    left_out = [f"{what} {picked[_gap(picked) - 1] + 1}–{picked[_gap(picked)] - 1}"
                for what, picked in (("rows", rows), ("columns", columns)) if picked is not None]
    if not left_out:
        return []
    return [Text(f"{' and '.join(left_out)} not shown (--full shows every entry)", style="dim")]


def _mark_gaps(header: list, row_titles: list | None, body: list, values: np.ndarray, rows, columns) -> np.ndarray:
    """Insert a … column and a … row where the shown ``columns`` and ``rows`` skip some (in
    ``header``, ``row_titles`` and ``body`` in place); the values with NaN there."""
    if columns is not None:                              # a … column at the gap
        gap = _gap(columns)
        header.insert(gap, fit.ELLIPSIS)
        for row in body:
            row.insert(gap, fit.ELLIPSIS)
        values = np.insert(values, gap, np.nan, axis=1)
    if rows is not None:                                 # and a … row
        gap = _gap(rows)
        row_titles.insert(gap, fit.ELLIPSIS)
        body.insert(gap, [fit.ELLIPSIS] * len(header))
        values = np.insert(values, gap, np.nan, axis=0)
    return values


def _gap(picked: list[int]) -> int:
    """Where the positions ``picked`` (from ``fit.edges``) skip some: the first position after the gap."""
    return next(k for k in range(1, len(picked)) if picked[k] != picked[k - 1] + 1)


def _table(header, body, numeric=()) -> Table:
    """A plain table; columns listed in ``numeric`` are right-aligned, status words coloured."""
    table = Table(header_style="bold")
    for column, title in enumerate(header):
        table.add_column(title, justify="right" if column in numeric else "left")
    for cells in body:
        row_style = next((ROW_STYLES[cell] for cell in cells if cell in ROW_STYLES), "")
        table.add_row(*((cell, STYLES.get(cell, row_style)) for cell in cells))
    return table


def _heat(number: float, largest: float) -> str:
    """A heatmap colour: red below 0, blue above, from grey to full as |number| / largest goes to 1."""
    return _heats(np.array([number]), largest)[0]


def _heats(numbers: np.ndarray, largest: float) -> list[str]:
    """``_heat`` of each entry of ``numbers``, flattened: a value that is not finite stands out."""
    numbers = np.ravel(numbers)
    colours = rgb(numbers, largest, HEAT_FLOOR).tolist()
    return ["bold magenta" if not np.isfinite(number) else "" if number == 0 or largest == 0
            else "rgb({},{},{})".format(*colour)
            for number, colour in zip(numbers.tolist(), colours)]


def _loss(loss, loss_kind: str, precision: int) -> Text:
    return Text(rows.loss_text(loss_kind, loss, precision), style="bold")


def _verdict(line: str, passed: bool) -> Text:
    return Text(line, style="bold green" if passed else "bold red")


def _render(parts) -> str:
    """Everything printed through one console, as a string (with colour codes on a terminal)."""
    if plain.usable(parts):
        return plain.render(parts)
    return _render_with_rich(parts)


def _render_with_rich(parts) -> str:
    """rich's rendering of ``parts``; a grid of more than ``HEAT_LIMIT`` entries (shown whole by
    ``--full``) is laid out by ``plain`` instead, uncoloured, as rich would take minutes over it."""
    out, run = [], []
    for part in parts:
        if getattr(part, "is_grid", False) and part.values.size > HEAT_LIMIT:
            out += [_rich_text(run), plain.render([part])]
            run = []
        else:
            run.append(part)
    return "".join(out + [_rich_text(run)])


def _rich_text(parts) -> str:
    if not parts:
        return ""
    from rich.measure import Measurement
    parts = [_rich(part) for part in parts]
    console = _console()
    unbounded = console.options.update_width(UNBOUNDED)
    widest = max(Measurement.get(console, unbounded, part).maximum for part in parts)
    if widest > console.width:
        console = _console(width=widest)
    with console.capture() as captured:
        for part in parts:
            console.print(part)
    return captured.get()


def _rich(part):
    """A ``Line``, ``Table`` or ``NumberGrid`` as the rich object that prints it."""
    from rich import box, table, text
    if not part.is_table:
        if len(part.spans) == 1:
            return text.Text(*part.spans[0])
        return text.Text.assemble(*part.spans)
    if getattr(part, "is_grid", False):
        return _rich_grid(part)
    rich_table = table.Table(box=box.SIMPLE_HEAD, show_edge=False, header_style=part.header_style,
                             pad_edge=False)
    for title, justify, style, no_wrap in part.columns:
        rich_table.add_column(title, justify=justify, style=style, no_wrap=no_wrap)
    for cells in part.rows:
        rich_table.add_row(*(text.Text(cell, style=style) if style else cell for cell, style in cells))
    return rich_table


def _rich_grid(grid: NumberGrid):
    """A number grid as a rich table: a dim row index, each number in its heatmap colour."""
    from rich import box, table, text
    rich_table = table.Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="dim", pad_edge=False)
    if grid.index is not None:
        rich_table.add_column("", style="dim", justify="right", no_wrap=False)
    for title in grid.header:
        rich_table.add_column(title, justify="right")
    heats = _heats(grid.values, grid.largest)
    width = len(grid.header)
    for k, cells in enumerate(grid.rows):
        styled = [text.Text(cell, style=style) if style and cell != fit.ELLIPSIS else cell
                  for cell, style in zip(cells, heats[k * width:(k + 1) * width])]
        rich_table.add_row(*([] if grid.index is None else [grid.index[k]]), *styled)
    return rich_table


def _console(width: int | None = None):
    """A console on stdout that prints text as given: no markup, emoji codes or number highlighting;
    with NO_COLOR set (non-empty) plain text, no bold or dim either (rich would drop colours only)."""
    from rich.console import Console
    plain_text = os.environ.get("NO_COLOR", "") != ""
    return Console(width=width, highlight=False, markup=False, emoji=False,
                   color_system=None if plain_text else "auto")

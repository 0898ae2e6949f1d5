"""Tables for people: a model summary, aligned number grids, check tables with coloured verdicts.

Colour appears only when stdout is a terminal and NO_COLOR is unset (rich's own detection); with
NO_COLOR, bold and dim go too.
The console is widened to the widest grid, so numbers are never squeezed or cut off.
The parts are built as plain ``Line`` and ``Table`` records; rich (imported only then) renders them
when colour is possible, and ``plain`` lays out the very same text when it is not (a pipe).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from . import plain, rows
from .grid import grids, number_text, shape_text

if TYPE_CHECKING:                 # annotations only: check output needs no report records
    from .reports import BackwardReport, ForwardReport

UNBOUNDED = 100_000       # width at which to measure what a part needs
STYLES = {rows.PASSED: "bold green", rows.FAILED: "bold red", "ok": "green", "fail": "red", "kink": "yellow"}
ROW_STYLES = {rows.FAILED: "red", "fail": "red", "kink": "yellow"}   # the whole row of a failure or kink
HEAT = {-1: (230, 60, 60), 1: (70, 140, 255)}    # negative red, positive blue, at the largest |value|
HEAT_FLOOR = (150, 150, 150)                    # the grey that small values fade towards


class Line:
    """One line of text in styled pieces: ``spans`` is ``((text, style), ...)``."""

    is_table = False

    def __init__(self, *spans):
        self.spans = tuple((span, "") if isinstance(span, str) else span for span in spans)


class Table:
    """A table: ``columns`` is ``[(title, justify, style, no_wrap), ...]``, ``rows`` ``[[(text, style), ...], ...]``."""

    is_table = True

    def __init__(self, header_style: str):
        self.header_style, self.columns, self.rows = header_style, [], []

    def add_column(self, title: str, justify: str = "left", style: str = "", no_wrap: bool = True) -> None:
        self.columns.append((title, justify, style, no_wrap))

    def add_row(self, *cells) -> None:
        self.rows.append([(cell, "") if isinstance(cell, str) else cell for cell in cells])


def Text(text: str, style: str = "") -> Line:        # noqa: N802 (reads as rich's Text did)
    return Line((text, style))


def forward(report: ForwardReport, precision: int) -> str:
    parts = [Text(rows.heading(report.spec, report.name), style="bold"),
             _table(rows.SUMMARY_HEADER, rows.summary_rows(report), numeric=(3,))]
    parts += _quantity("input", "input", report.input, precision)
    for layer in report.layers:
        parts += _quantity(layer.name, layer.name, layer.output, precision)
    parts += _quantity("output", "output", report.output, precision)
    parts += [Text(""), _loss(report.loss, report.loss_kind, precision)]
    return _render(parts)


def backward(report: BackwardReport, precision: int) -> str:
    parts = [Text(rows.heading(report.spec, report.name), style="bold"),
             _loss(report.loss, report.loss_kind, precision)]
    for quantity, gradient in report.gradients.items():
        parts += _quantity(f"grad.{quantity}", f"grad.{quantity}", gradient, precision)
    for param, value in report.updates.items():
        parts += _quantity(rows.update_title(param, report.lr), param, value, precision)
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


def explain(explained, precision: int) -> str:
    """One gradient entry: its value, the chain-rule formula, what the symbols are, the sum term by term."""
    parts = [Text(rows.heading(explained.spec, explained.name), style="bold")]
    for kind, *content in rows.explain_blocks(explained, precision):
        if kind == "value":
            parts += [Text(""), Text(content[0], style="bold cyan")]
        elif kind == "formula":
            parts += [Text(""), Text(content[0])]
        elif kind == "note":
            parts.append(Text(content[0], style="dim"))
        else:
            parts += [Text(""), _table(*content)]
    return _render(parts)


def _spec_check(result) -> list:
    parts = [Text(rows.heading(result.spec, result.name), style="bold")]
    for kind, *content in rows.check_blocks(result):
        if kind == "table":
            parts += [Text(""), _table(*content)]
        elif kind == "note":
            parts.append(Text(content[0], style="dim"))
        elif kind == "problem":
            parts.append(Text(content[0], style="red"))
        else:
            parts += [Text(""), _verdict(*content), Text("")]
    return parts


def _quantity(title: str, name: str, value, precision: int) -> list:
    """A titled value: ``name = x`` for a scalar, else its shape and one grid per 2-D slice."""
    if np.ndim(value) == 0:
        return [Text(""), Line((title, "bold cyan"), " = ", number_text(value, precision))]
    parts = [Text(""), Line((title, "bold cyan"), "  ", (shape_text(np.shape(value)), "dim"))]
    magnitudes = np.abs(np.asarray(value, dtype=np.float64))
    largest = float(magnitudes[np.isfinite(magnitudes)].max(initial=0.0))
    for grid in grids(name, value, precision):
        if grid.label != name:
            parts.append(Text(grid.label, style="cyan"))
        table = Table(header_style="dim")
        if not grid.vector:
            table.add_column("", style="dim", justify="right", no_wrap=False)
        for column in range(len(grid.cells[0])):
            table.add_column(str(column), justify="right")
        for index, (cells, values) in enumerate(zip(grid.cells, grid.values)):
            heat = (_heat(number, largest) for number in values)
            table.add_row(*([] if grid.vector else [str(index)]), *zip(cells, heat))
        parts.append(table)
    return parts


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
    if not np.isfinite(number):
        return "bold magenta"
    if number == 0 or largest == 0:
        return ""
    share = abs(number) / largest
    rgb = (round(grey + (full - grey) * share) for grey, full in zip(HEAT_FLOOR, HEAT[np.sign(number)]))
    return "rgb({},{},{})".format(*rgb)


def _loss(loss, loss_kind: str, precision: int) -> Text:
    value = None if loss is None else number_text(loss, precision)
    return Text(rows.loss_line(loss_kind, value), style="bold")


def _verdict(line: str, passed: bool) -> Text:
    return Text(line, style="bold green" if passed else "bold red")


def _render(parts) -> str:
    """Everything printed through one console, as a string (with colour codes on a terminal)."""
    if plain.usable(parts):
        return plain.render(parts)
    return _render_with_rich(parts)


def _render_with_rich(parts) -> str:
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
    """A ``Line`` or ``Table`` as the rich object that prints it."""
    from rich import box, table, text
    if not part.is_table:
        if len(part.spans) == 1:
            return text.Text(*part.spans[0])
        return text.Text.assemble(*part.spans)
    rich_table = table.Table(box=box.SIMPLE_HEAD, show_edge=False, header_style=part.header_style,
                             pad_edge=False)
    for title, justify, style, no_wrap in part.columns:
        rich_table.add_column(title, justify=justify, style=style, no_wrap=no_wrap)
    for cells in part.rows:
        rich_table.add_row(*(text.Text(cell, style=style) if style else cell for cell, style in cells))
    return rich_table


def _console(width: int | None = None):
    """A console on stdout that prints text as given: no markup, emoji codes or number highlighting;
    with NO_COLOR set (non-empty) plain text, no bold or dim either (rich would drop colours only)."""
    from rich.console import Console
    plain_text = os.environ.get("NO_COLOR", "") != ""
    return Console(width=width, highlight=False, markup=False, emoji=False,
                   color_system=None if plain_text else "auto")

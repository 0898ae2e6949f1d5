"""HTML: tables with heatmap cells, as a fragment for notebooks (``_repr_html_``) or a whole page.

Styles are inline attributes only, so Jupyter, nbviewer and GitHub's notebook view show the same
colours, and one output cannot restyle another. Every text is escaped (a spec's name and path are
the user's). Cells follow ``heatmap``: numbers in small grids, bare cells with the number as a
tooltip in larger ones, the rows after ``heatmap.CELLS_UP_TO`` cells left out with a note. The
network strip is ``svg``'s, embedded as an image so its styles stay its own.
"""
from __future__ import annotations

import base64
import numpy as np

from . import heatmap, rows, svg
from .blocks import Formula, Note, Problem, Table, Value, Verdict, Where
from .grid import grids, number_text
from ..quantities import gradient_of, shape_text
from ..text import markup as escape

FONT = "font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace"
GREEN, RED, AMBER = "color:#1a7f37;font-weight:bold", "color:#c62828;font-weight:bold", "color:#a07000;font-weight:bold"
STATUS = {rows.PASSED: GREEN, rows.FAILED: RED, rows.UNVERIFIED: AMBER, "ok": GREEN, "fail": RED, "kink": AMBER}
CELL = "padding:2px 6px;text-align:right;border:1px solid #e4e4e4"
BARE = "padding:0;width:7px;height:7px;line-height:0;border:0"
INDEX = "padding:2px 4px;color:#999;font-weight:normal;text-align:center;border:0"


def forward(report, precision: int, full: bool = True) -> str:
    return page(forward_fragment(report, precision), rows.heading(report.spec, report.name))


def backward(report, precision: int, full: bool = True) -> str:
    return page(backward_fragment(report, precision), rows.heading(report.spec, report.name))


def check(results) -> str:
    return page(check_fragment(results), "cnngrad check")


def explain(explained, precision: int) -> str:
    return page(explain_fragment(explained, precision), rows.heading(explained.spec, explained.name))


def page(fragment: str, title: str) -> str:
    """A self-contained HTML document around ``fragment``."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<title>{escape(title)}</title>\n</head>\n<body style="margin:20px;font-family:sans-serif">\n{fragment}\n</body>\n</html>\n')


def forward_fragment(report, precision: int) -> str:
    """The heading, the network strip, the summary table and notes, then the input, every layer's
    output and the output as heatmap tables, and the loss."""
    parts = [_heading(rows.heading(report.spec, report.name)), _network(report),
             _table(rows.SUMMARY_HEADER, rows.summary_rows(report), numeric=(3,))]
    parts += [_paragraph(note, "color:#a07000") for note in report.notes]
    parts.append(_quantity("input", "input", report.input, precision))
    for layer in report.layers:
        parts.append(_quantity(layer.name, layer.name, layer.output, precision))
        parts += [_quantity(f"{layer.name}.{key}", f"{layer.name}.{key}", value, precision)
                  for key, value in layer.statistics.items()]
    parts.append(_quantity("output", "output", report.output, precision))
    parts += [_quantity(key, key, value, precision) for key, value in report.loss_parts.items()]
    parts.append(_paragraph(rows.loss_text(report.loss_kind, report.loss, precision), "font-weight:bold"))
    return _wrap(parts)


def backward_fragment(report, precision: int) -> str:
    """The heading, the network strip, the loss and notes, then ∂E/∂ everything, loss to input, as heatmaps."""
    parts = [_heading(rows.heading(report.spec, report.name)), _network(report),
             _paragraph(rows.loss_text(report.loss_kind, report.loss, precision), "font-weight:bold")]
    parts += [_paragraph(note, "color:#a07000") for note in report.notes]
    parts += [_quantity(gradient_of(name), gradient_of(name), gradient, precision)
              for name, gradient in report.gradients.items()]
    parts += [_quantity(rows.update_title(param, report.lr), param, value, precision)
              for param, value in report.updates.items()]
    return _wrap(parts)


def check_fragment(results) -> str:
    """Each spec's tables (status words coloured), details and verdict; the total when there are several."""
    parts = []
    for result in results:
        if result.error is not None:
            parts += [_heading(result.spec), _paragraph(result.error, RED)]
            continue
        parts.append(_heading(rows.heading(result.spec, result.name)))
        parts += [BLOCKS[type(block)](block) for block in rows.check_blocks(result)]
    if len(results) != 1:
        parts.append(_paragraph(rows.total_line(results), GREEN if all(r.passed for r in results) else RED))
    return _wrap(parts)


def explain_fragment(explained, precision: int) -> str:
    """The entry's value, its formula, and the sum term by term with each term's value as a heatmap
    cell (on the scale of the largest term or total)."""
    parts = [_heading(rows.heading(explained.spec, explained.name))]
    draw = {**BLOCKS, Table: lambda b: _table(b.header, b.rows, b.numeric, heat=_term_values(explained))}
    parts += [draw[type(block)](block) for block in rows.explain_blocks(explained, precision)]
    return _wrap(parts)


BLOCKS = {   # block type → its HTML; explain's table adds heat to its cells
    Value: lambda b: _paragraph(b.text, "font-weight:bold;font-size:1.15em"),
    Formula: lambda b: f'<p><code>{escape(b.text)}</code></p>',
    Where: lambda b: _paragraph(b.text, "color:#777"),
    Note: lambda b: _paragraph(b.text, "color:#777"),
    Problem: lambda b: _paragraph(b.text, RED),
    Verdict: lambda b: _paragraph(b.text, GREEN if b.passed else RED),
    Table: lambda b: _table(b.header, b.rows, b.numeric),
}


def _term_values(explained) -> list[float | None]:
    """The number behind each row of the explain table: each term, the zero terms' row (if any), the total."""
    values = [term.value for term in explained.terms]
    return values + ([None] if explained.zeros else []) + [explained.total]


def _quantity(title: str, name: str, value, precision: int) -> str:
    """A titled value: ``title = x`` for a scalar, else its shape and one heatmap table per 2-D
    slice, side by side, on one colour scale (the largest |value| of the quantity)."""
    if np.ndim(value) == 0:
        return _paragraph(f"{title} = {number_text(value, precision)}", "font-weight:bold")
    top = heatmap.largest(value)
    slices = "".join(_grid(grid, top, grid.label if grid.label != name else None)
                     for grid in grids(name, value, precision))
    return (f'<h4 style="margin:14px 0 4px">{escape(title)} <span style="color:#777;font-weight:normal">'
            f'{escape(shape_text(np.shape(value)))}</span></h4>\n'
            f'<div style="display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start">{slices}</div>')


def _grid(grid, top: float, label: str | None) -> str:
    """One 2-D slice as a table of coloured cells (with index row and column when it shows numbers)."""
    values = np.asarray(grid.values)
    r, c = heatmap.shown(*values.shape)
    fills = heatmap.rgb(values[:r, :c], top)
    light = heatmap.ink(fills)
    with_text = values.size <= heatmap.VALUES_UP_TO
    lines = [_index_row(grid, c)] if with_text else []
    lines += ["<tr>" + "".join(_grid_row(grid, i, c, fills, light, with_text)) + "</tr>" for i in range(r)]
    spacing = "border-collapse:collapse" if with_text else "border-collapse:separate;border-spacing:0"
    caption = f'<div style="color:#777">{escape(label)}</div>' if label else ""
    note = heatmap.elided_note(grid.label, values.shape, (r, c))
    note = f'<div style="color:#777">{escape(note)}</div>' if note else ""
    return (f'<div>{caption}<table style="{spacing};{FONT};font-size:11px;margin:0">'
            f'{"".join(lines)}</table>{note}</div>')


def _index_row(grid, c: int) -> str:
    """The row of column indices over a grid that shows numbers (a blank corner over the row indices)."""
    corner = "" if grid.vector else f'<th style="{INDEX}"></th>'
    return f"<tr>{corner}" + "".join(f'<th style="{INDEX}">{j}</th>' for j in range(c)) + "</tr>"


def _grid_row(grid, i: int, c: int, fills, light, with_text: bool) -> list[str]:
    """The cells of row ``i``: its index (numbers shown, not a vector), then each coloured cell,
    with its number in light or dark ink, or bare with the number as its tooltip."""
    cells = [] if grid.vector or not with_text else [f'<th style="{INDEX}">{i}</th>']
    for j in range(c):
        fill = f"background:{heatmap.hex_colour(fills[i, j])}"
        text = escape(grid.cells[i][j])
        if with_text:
            ink = ";color:#fff" if light[i, j] else ";color:#222"
            cells.append(f'<td style="{CELL};{fill}{ink}">{text}</td>')
        else:
            cells.append(f'<td title="{text}" style="{BARE};{fill}"></td>')
    return cells


def _table(header, body, numeric=(), heat=None) -> str:
    """A plain table; ``numeric`` columns right-aligned, status words coloured; ``heat`` gives a
    number per row whose heatmap colour fills the last cell (None: no fill)."""
    top = heatmap.largest([v for v in heat if v is not None]) if heat else 0.0
    align = ["right" if k in numeric else "left" for k in range(len(header))]
    lines = ["<tr>" + "".join(f'<th style="text-align:{a};padding:2px 8px;border-bottom:1px solid #888">'
                              f'{escape(h)}</th>' for h, a in zip(header, align)) + "</tr>"]
    lines += [_body_row(cells, align, heat[k] if heat else None, top) for k, cells in enumerate(body)]
    return f'<table style="border-collapse:collapse;{FONT};font-size:12px;margin:6px 0">{"".join(lines)}</table>'


def _body_row(cells, align: list[str], heat: float | None, top: float) -> str:
    """One row of a plain table, status words coloured, its last cell filled by ``heat`` if given."""
    row = []
    for j, text in enumerate(cells):
        style = f"text-align:{align[j]};padding:2px 8px;" + STATUS.get(text, "")
        if heat is not None and j == len(cells) - 1:
            style += _heat_style(heat, top)
        row.append(f'<td style="{style}">{escape(text)}</td>')
    return "<tr>" + "".join(row) + "</tr>"


def _heat_style(number: float, top: float) -> str:
    """CSS filling a cell with ``number``'s heatmap colour, in ink that reads on it."""
    fill = heatmap.rgb(number, top)
    return f";background:{heatmap.hex_colour(fill)};color:{'#fff' if heatmap.ink(fill) else '#222'}"


def _network(report) -> str:
    """The layer strip, as an SVG image (alt text: the names and shapes in order)."""
    document = svg.network(report).encode("utf-8")
    source = "data:image/svg+xml;base64," + base64.b64encode(document).decode("ascii")
    return f'<div><img alt="network strip" src="{source}"></div>'


def _heading(text: str) -> str:
    return f'<h3 style="margin:8px 0">{escape(text)}</h3>'


def _paragraph(text: str, style: str = "") -> str:
    attribute = f' style="{style}"' if style else ""
    return f"<p{attribute}>{escape(text)}</p>"


def _wrap(parts) -> str:
    return '<div class="cnngrad">\n' + "\n".join(parts) + "\n</div>"

"""Pictures for a tutorial or a slide: one SVG document per command, written directly (no plotting library).

The network is a strip of layer boxes with their output shapes; every map and gradient is a
heatmap (``heatmap``: red below 0, blue above, one scale per quantity) with its numbers in the
cells while the grid is small. Check and explain results are drawn as the same tables the other
formats print. Layout is arithmetic on a monospace font: a character is 0.6 of its font size.
"""
from __future__ import annotations

import numpy as np

from . import heatmap, rows
from .blocks import Formula, Note, Problem, Table, Value, Verdict, Where
from .grid import grids, number_text
from ..quantities import gradient_of, shape_text
from ..text import markup as escape

WIDTH = 1160              # the widest a row of grids or boxes grows before it wraps
MARGIN = 20
GAP = 12                  # between blocks stacked or flowed
CHAR = 0.6                # a monospace character's advance, in font sizes
SIZES = {"title": 18, "head": 14, "text": 12, "value": 11, "index": 10}
STATUS = {rows.PASSED: "ok", rows.FAILED: "bad", rows.UNVERIFIED: "kink", "ok": "ok", "fail": "bad", "kink": "kink"}
STYLE = """
text { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 12px; fill: #222; }
.title { font-size: 18px; font-weight: bold; } .head { font-size: 14px; font-weight: bold; }
.dim { fill: #777; } .name { font-weight: bold; }
.value, .index { text-anchor: middle; dominant-baseline: central; }
.value { font-size: 11px; } .index { font-size: 10px; fill: #999; } .light { fill: #fff; }
.num { text-anchor: end; } .ok { fill: #1a7f37; font-weight: bold; }
.bad { fill: #c62828; font-weight: bold; } .kink { fill: #a07000; font-weight: bold; }
.cell { stroke: #e4e4e4; stroke-width: 0.5; } .frame { fill: none; stroke: #bbb; }
.box { fill: #f3f6fa; stroke: #567; stroke-width: 1.2; } .loss { fill: #fdf6ec; stroke-dasharray: 4 3; }
.arrow { stroke: #567; stroke-width: 1.5; marker-end: url(#head); } .rule { stroke: #888; }
"""
ARROW_HEAD = ('<marker id="head" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
              '<path d="M0,0 L8,4 L0,8 z" fill="#567"/></marker>')


class Block:
    """A piece of the picture in its own coordinates (origin top left) and the size it takes."""

    __slots__ = ("width", "height", "body")

    def __init__(self, width: float, height: float, body: str):
        self.width, self.height, self.body = width, height, body


def forward(report, precision: int, full: bool = True) -> str:
    """The strip, the summary's notes, and the input and every layer's output as heatmaps (the
    output is the last layer's, so it is not drawn twice)."""
    blocks = [_line(rows.heading(report.spec, report.name), "title"), strip(_forward_boxes(report))]
    blocks += [_line(note, "dim") for note in report.notes]
    blocks.append(_quantity("input", "input", report.input, precision))
    for layer in report.layers:
        blocks.append(_quantity(layer.name, layer.name, layer.output, precision))
        blocks += [_quantity(f"{layer.name}.{key}", f"{layer.name}.{key}", value, precision)
                   for key, value in layer.statistics.items()]
    blocks += [_quantity(key, key, value, precision) for key, value in report.loss_parts.items()]
    blocks.append(_line(rows.loss_text(report.loss_kind, report.loss, precision), "head"))
    return _document(blocks, rows.heading(report.spec, report.name))


def backward(report, precision: int, full: bool = True) -> str:
    """The strip, the loss and notes, then ∂E/∂ every layer's output and parameter, loss to input, as heatmaps."""
    blocks = [_line(rows.heading(report.spec, report.name), "title"), strip(_backward_boxes(report)),
              _line(rows.loss_text(report.loss_kind, report.loss, precision), "head")]
    blocks += [_line(note, "dim") for note in report.notes]
    blocks += [_quantity(gradient_of(name), gradient_of(name), gradient, precision)
               for name, gradient in report.gradients.items()]
    blocks += [_quantity(rows.update_title(param, report.lr), param, value, precision)
               for param, value in report.updates.items()]
    return _document(blocks, rows.heading(report.spec, report.name))


def check(results) -> str:
    """Each spec's check tables and verdict, as ``table`` prints them, status words coloured."""
    blocks = []
    for result in results:
        if result.error is not None:
            continue                       # its one-line error went to stderr
        blocks.append(_line(rows.heading(result.spec, result.name), "head"))
        blocks += [BLOCKS[type(block)](block) for block in rows.check_blocks(result)]
    passed = all(r.passed for r in results)
    blocks.append(_line(rows.total_line(results), "ok" if passed else "bad"))
    return _document(blocks, "cnngrad check")


def explain(explained, precision: int) -> str:
    """One gradient entry: its value, the chain-rule formula and the sum term by term."""
    blocks = [_line(rows.heading(explained.spec, explained.name), "title")]
    blocks += [BLOCKS[type(block)](block) for block in rows.explain_blocks(explained, precision)]
    return _document(blocks, rows.heading(explained.spec, explained.name))


BLOCKS = {   # block type → its SVG block (a line's class is its style)
    Value: lambda b: _line(b.text, "head"),
    Formula: lambda b: _line(b.text, "text"),
    Where: lambda b: _line(b.text, "dim"),
    Note: lambda b: _line(b.text, "dim"),
    Problem: lambda b: _line(b.text, "bad"),
    Verdict: lambda b: _line(b.text, "ok" if b.passed else "bad"),
    Table: lambda b: _table(b.header, b.rows, b.numeric),
}


def network(report) -> str:
    """The strip of a forward or backward report alone, as an SVG document (for an HTML page)."""
    boxes = _forward_boxes(report) if hasattr(report, "layers") else _backward_boxes(report)
    return _document([strip(boxes)], "network")


def strip(boxes) -> Block:
    """The network left to right: one box per ``(name, lines, is_loss)``, an arrow into each but the
    first, wrapping onto a new row when wider than ``WIDTH``."""
    blocks = []
    for k, (name, lines, is_loss) in enumerate(boxes):
        arrow = 0 if k == 0 else 30
        width = max(_width(name, "head"), *(_width(line, "text") for line in lines)) + 20
        height = 28 + 16 * len(lines)
        body = [f'<line class="arrow" x1="2" y1="28" x2="{arrow - 4}" y2="28"/>'] if arrow else []
        body.append(f'<rect class="box{" loss" if is_loss else ""}" x="{arrow}" y="0.5" rx="6" '
                    f'width="{width:g}" height="{height - 1:g}"/>')
        body.append(_text(arrow + 10, 18, name, "head"))
        body += [_text(arrow + 10, 36 + 16 * i, line, "dim" if i == 0 else "text") for i, line in enumerate(lines)]
        blocks.append(Block(arrow + width, height, "".join(body)))
    return _flow(blocks, gap=0)


def _forward_boxes(report):
    boxes = [("input", ["", shape_text(np.shape(report.input))], False)]
    for layer in report.layers:
        params = [f"{layer.params} params"] if layer.params else []
        boxes.append((layer.name, [rows.kind_text(layer), shape_text(layer.shape), *params], False))
    return boxes + _loss_box(report.loss_kind)


def _backward_boxes(report):
    """Forward order, each layer with its output's shape and its parameters' (the report holds the
    gradients, which have the shapes of what they differentiate)."""
    names = [name for name in report.gradients if "." not in name]
    boxes = []
    for name in reversed(names):
        params = [f"{quantity[len(name) + 1:]} {shape_text(np.shape(g))}"
                  for quantity, g in report.gradients.items() if quantity.startswith(f"{name}.")]
        boxes.append((name, ["", shape_text(np.shape(report.gradients[name])), *params], False))
    return boxes + _loss_box(report.loss_kind)


def _loss_box(loss_kind):
    return [] if loss_kind is None else [("loss", [loss_kind], True)]


def _quantity(title: str, name: str, value, precision: int) -> Block:
    """A titled value: ``title = x`` for a scalar, else its shape and one heatmap per 2-D slice,
    coloured on one scale (the largest |value| of the whole quantity)."""
    if np.ndim(value) == 0:
        return _line(f"{title} = {number_text(value, precision)}", "head")
    head = Block(0, 22, _text(0, 16, title, "head") +
                 _text(_width(title, "head") + 10, 16, shape_text(np.shape(value)), "dim"))
    head.width = _width(title, "head") + 10 + _width(shape_text(np.shape(value)), "text")
    top = heatmap.largest(value)
    return _stack([head, _flow([_grid(g, top, g.label if g.label != name else None)
                                for g in grids(name, value, precision)])], gap=4)


def _grid(grid, top: float, label: str | None) -> Block:
    """One 2-D slice as coloured cells: with its numbers and row and column indices while it has
    at most ``heatmap.VALUES_UP_TO`` entries and fits in ``WIDTH``, bare cells beyond, cut short (with a note) beyond
    ``heatmap.CELLS_UP_TO``."""
    values = np.asarray(grid.values)
    shape = values.shape
    r, c = heatmap.shown(*shape)
    fills = heatmap.rgb(values[:r, :c], top)
    with_text, left, y0, cell_w, cell_h = _layout(grid, c, label)
    body = [_text(0, 12, label, "dim")] if label else []
    if with_text:
        body += _indices(grid.vector, r, c, left, y0, cell_w, cell_h)
    body += _cells(grid, fills, with_text, left, y0, cell_w, cell_h)
    body.append(f'<rect class="frame" x="{left:g}" y="{y0:g}" width="{c * cell_w:g}" height="{r * cell_h:g}"/>')
    width, height = max(left + c * cell_w, _width(label or "", "text")), y0 + r * cell_h
    note = heatmap.elided_note(grid.label, shape, (r, c))
    if note:
        body.append(_text(0, height + 14, note, "dim"))
        width, height = max(width, _width(note, "text")), height + 20
    return Block(width, height, "".join(body))


def _layout(grid, c: int, label: str | None) -> tuple[bool, float, float, float, float]:
    """How a grid of ``c`` shown columns is drawn: with text (while it has at most
    ``heatmap.VALUES_UP_TO`` entries and fits in ``WIDTH``) or bare; the left and top of its
    cells (room for indices and the label) and a cell's width and height."""
    values = np.asarray(grid.values)
    cell_w = max(len(text) for row in grid.cells for text in row) * CHAR * SIZES["value"] + 12
    y0 = 18 if label else 0
    if values.size <= heatmap.VALUES_UP_TO and c * cell_w <= WIDTH:
        left = 0 if grid.vector else _width(str(values.shape[0] - 1), "index") + 8
        return True, left, y0 + 14, cell_w, 22
    cell = float(min(14, max(3, WIDTH // c)))
    return False, 0, y0, cell, cell


def _indices(vector: bool, r: int, c: int, left: float, y0: float, cell_w: float, cell_h: float) -> list[str]:
    """The column indices over a grid's ``c`` columns and, unless a vector, the row indices left of its ``r`` rows."""
    body = [_text(left + (j + 0.5) * cell_w, y0 - 8, str(j), "index") for j in range(c)]
    if not vector:
        body += [_text(left / 2, y0 + (i + 0.5) * cell_h, str(i), "index") for i in range(r)]
    return body


def _cells(grid, fills, with_text: bool, left: float, y0: float, cell_w: float, cell_h: float) -> list[str]:
    """A rectangle of its heatmap colour per shown entry, with its number in light or dark ink
    when ``with_text``."""
    light = heatmap.ink(fills)
    r, c = fills.shape[:2]
    cell = ' class="cell"' if with_text else ' shape-rendering="crispEdges"'   # no seams between bare cells
    body = []
    for i in range(r):
        for j in range(c):
            x, y = left + j * cell_w, y0 + i * cell_h
            body.append(f'<rect{cell} x="{x:g}" y="{y:g}" width="{cell_w:g}" height="{cell_h:g}" '
                        f'fill="{heatmap.hex_colour(fills[i, j])}"/>')
            if with_text:
                body.append(_text(x + cell_w / 2, y + cell_h / 2, grid.cells[i][j],
                                  "value light" if light[i, j] else "value"))
    return body


def _table(header, body, numeric=()) -> Block:
    """A table as text columns: the header, a rule, the rows; numeric columns right-aligned,
    status words coloured as the terminal colours them."""
    widths = [max(len(text) for text in column) * CHAR * SIZES["text"] + 16 for column in zip(header, *body)]
    starts = np.concatenate([[0], np.cumsum(widths)])
    out = []
    for k, cells in enumerate([header, *body]):
        y = 14 + 20 * k + (6 if k else 0)
        for j, text in enumerate(cells):
            x, cls = (starts[j + 1] - 16, "num") if j in numeric else (starts[j], "")
            if k == 0:
                cls += " name"
            elif text in STATUS:
                cls += " " + STATUS[text]
            out.append(_text(x, y, text, cls.strip()))
    out.append(f'<line class="rule" x1="0" y1="22" x2="{starts[-1] - 16:g}" y2="22"/>')
    return Block(float(starts[-1]), 26 + 20 * len(body), "".join(out))


def _line(text: str, cls: str = "text") -> Block:
    size = SIZES.get(cls, SIZES["text"])
    return Block(_width(text, cls), size * 1.6, _text(0, size * 1.15, text, cls))


def _text(x: float, y: float, text: str, cls: str = "") -> str:
    attribute = f' class="{cls}"' if cls and cls != "text" else ""
    return f'<text{attribute} x="{x:g}" y="{y:g}">{escape(text, quote=False)}</text>'


def _width(text: str, cls: str) -> float:
    return len(text) * CHAR * SIZES.get(cls, SIZES["text"])


def _stack(blocks, gap: float = GAP) -> Block:
    """Blocks one under the other."""
    y, body = 0.0, []
    for block in blocks:
        body.append(_placed(block, 0, y))
        y += block.height + gap
    return Block(max((b.width for b in blocks), default=0), max(y - gap, 0), "".join(body))


def _flow(blocks, gap: float = 20) -> Block:
    """Blocks left to right, top-aligned, starting a new row when the next would pass ``WIDTH``."""
    x = y = row_height = width = 0.0
    body = []
    for block in blocks:
        if x > 0 and x + block.width > WIDTH:
            x, y, row_height = 0.0, y + row_height + GAP, 0.0
        body.append(_placed(block, x, y))
        width = max(width, x + block.width)
        x, row_height = x + block.width + gap, max(row_height, block.height)
    return Block(width, y + row_height, "".join(body))


def _placed(block: Block, x: float, y: float) -> str:
    return f'<g transform="translate({x:g},{y:g})">{block.body}</g>'


def _document(blocks, title: str) -> str:
    """The standalone SVG file: white background, the blocks stacked inside a margin."""
    page = _stack(blocks, gap=16)
    width, height = int(np.ceil(page.width + 2 * MARGIN)), int(np.ceil(page.height + 2 * MARGIN))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">\n<title>{escape(title, quote=False)}</title>\n'
            f'<defs>{ARROW_HEAD}</defs>\n<style>{STYLE}</style>\n'
            f'<rect width="100%" height="100%" fill="#fff"/>\n'
            f'{_placed(page, MARGIN, MARGIN)}\n</svg>\n')

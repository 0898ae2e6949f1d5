r"""LaTeX fragments to ``\input`` into notes (needs ``amsmath``): grids as ``bmatrix``, tables as ``tabular``.

A vector is written as a row with ``^\top`` (a column vector, compactly); a matrix wider than
amsmath's default 10 columns raises ``MaxMatrixCols`` first.
"""
from __future__ import annotations

import re

import numpy as np

from . import rows
from .grid import grids, number_text, shape_text
from .reports import BackwardReport, ForwardReport
from .text import printable

HEADER = "% cnngrad output; needs \\usepackage{amsmath}"
_TEXT_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "×": r"$\times$", "−": "$-$", "·": r"$\cdot$", "∂": r"$\partial$", "—": "---",
                 "…": r"\dots{}", "θ": r"$\theta$", "η": r"$\eta$",
                 "Σ": r"$\Sigma$", "δ": r"$\delta$", "σ": r"$\sigma$", "′": r"$'$", "²": r"$^2$", "°": r"$^\circ$",
                 # characters the default OT1 text font lacks (it prints ¡ ¿ and — for < > |), and
                 # symbols a spec's name or description may hold
                 "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}", "→": r"$\rightarrow$",
                 "←": r"$\leftarrow$", "≤": r"$\le$", "≥": r"$\ge$", "±": r"$\pm$", "√": r"$\surd$",
                 "∞": r"$\infty$", "⊙": r"$\odot$", "ᵀ": r"$^\top$", "½": r"$\frac12$", "§": r"\S{}",
                 "α": r"$\alpha$", "β": r"$\beta$", "γ": r"$\gamma$", "ε": r"$\varepsilon$",
                 "λ": r"$\lambda$", "μ": r"$\mu$", "π": r"$\pi$"}
_SPECIAL = re.compile("|".join(map(re.escape, _TEXT_ESCAPES)))
_NON_FINITE = {"nan": r"\mathrm{NaN}", "inf (overflow)": r"\infty\ (\text{overflow})",
               "-inf (overflow)": r"-\infty\ (\text{overflow})"}


def forward(report: ForwardReport, precision: int, full: bool = True) -> str:
    """Every grid whole (``full`` is accepted for symmetry with the table, which may elide)."""
    blocks = [HEADER, _title(report.spec, report.name),
              _tabular(rows.SUMMARY_HEADER, rows.summary_rows(report), numeric=(3,))]
    blocks += _quantity(_name("input"), "input", report.input, precision)
    for layer in report.layers:
        blocks += _quantity(_name(layer.name), layer.name, layer.output, precision)
    blocks += _quantity(_name("output"), "output", report.output, precision)
    blocks.append(_loss(report.loss, report.loss_kind, precision))
    return "\n\n".join(blocks) + "\n"


def backward(report: BackwardReport, precision: int, full: bool = True) -> str:
    blocks = [HEADER, _title(report.spec, report.name), _loss(report.loss, report.loss_kind, precision)]
    for quantity, gradient in report.gradients.items():
        blocks += _quantity(_partial(quantity), f"grad.{quantity}", gradient, precision)
    if report.updates:
        blocks.append(rf"\[ \eta = {_number(repr(report.lr))} \]")
    for param, value in report.updates.items():
        blocks += _quantity(rf"{_name(param)} - \eta\,{_partial(param)}", param, value, precision)
    return "\n\n".join(blocks) + "\n"


def check(results) -> str:
    blocks = [HEADER]
    for result in results:
        if result.error is not None:
            continue                       # its one-line error went to stderr
        blocks.append(_title(result.spec, result.name))
        for kind, *content in rows.check_blocks(result):
            if kind == "table":
                blocks.append(_tabular(*content))
            elif kind == "verdict":
                blocks.append(_line(content[0], bold=True))
            else:
                blocks.append(_line(content[0]))
    blocks.append(_line(rows.total_line(results), bold=True))
    return "\n\n".join(blocks) + "\n"


def explain(explained, precision: int) -> str:
    blocks = [HEADER, _title(explained.spec, explained.name)]
    for kind, *content in rows.explain_blocks(explained, precision):
        if kind == "value":
            blocks.append(_line(content[0], bold=True))
        elif kind == "table":
            blocks.append(_tabular(*content))
        else:
            blocks.append(_line(content[0]))
    return "\n\n".join(blocks) + "\n"


def _quantity(symbol: str, name: str, value, precision: int) -> list[str]:
    """``symbol = value`` as display maths: one ``bmatrix`` per 2-D slice, labelled by its index."""
    if np.ndim(value) == 0:
        return [rf"\[ {symbol} = {_number(number_text(value, precision))} \]"]
    blocks = [f"% {name}: {shape_text(np.shape(value))}"]
    for grid in grids(name, value, precision):
        label = symbol + grid.label[len(name):]        # the slice index, e.g. [0,1]
        width = len(grid.cells[0])
        # one row per line: TeX cannot read a line longer than 200,000 characters
        body = " \\\\\n".join(" & ".join(map(_number, cells)) for cells in grid.cells)
        matrix = f"\\begin{{bmatrix}}\n{body}\n\\end{{bmatrix}}" + (r"^\top" if grid.vector else "")
        wide = rf"\setcounter{{MaxMatrixCols}}{{{width}}}" + "\n" if width > 10 else ""
        blocks.append(rf"{wide}\[ {label} = {matrix} \]")
    return blocks


def _loss(loss, loss_kind: str, precision: int) -> str:
    if loss is None:
        return _line(rows.loss_line(loss_kind, None))
    return rf"\[ E = {_number(number_text(loss, precision))} \quad \text{{({_text(loss_kind)})}} \]"


def _tabular(header, body, numeric=()) -> str:
    """A paragraph of its own holding the table, flush left, a little space above it."""
    spec = "".join("r" if column in numeric else "l" for column in range(len(header)))
    return "\n".join([rf"\smallskip\noindent\begin{{tabular}}{{{spec}}}", " & ".join(map(_text, header)) + r" \\ \hline",
                      *map(_row, body), r"\end{tabular}"])


def _row(cells) -> str:
    """One tabular row; one starting with an index like [0,1] gets a {} first, or the \\ ending the
    row before would read [0,1] as a length."""
    text = " & ".join(map(_text, cells))
    return ("{}" + text if text.startswith("[") else text) + r" \\"


def _title(spec: str, name: str | None) -> str:
    """A bold line of its own: a sectioning command such as \\paragraph would run into the table
    or line after it, and would impose a level on the notes the fragment is pasted into."""
    return _line(rows.heading(spec, name), bold=True)


def _line(text: str, bold: bool = False) -> str:
    """``text`` as a paragraph of its own, flush left like the tables."""
    escaped = _text(text)
    return rf"\noindent\textbf{{{escaped}}}" if bold else rf"\noindent {escaped}"


def _name(quantity: str) -> str:
    return rf"\texttt{{{_text(quantity)}}}"


def _partial(quantity: str) -> str:
    return rf"\frac{{\partial E}}{{\partial\,{_name(quantity)}}}"


def _number(text: str) -> str:
    """A formatted number as maths: ``1.5e-05`` becomes ``1.5\\times10^{-5}``."""
    if text in _NON_FINITE:
        return _NON_FINITE[text]
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return rf"{mantissa}\times10^{{{int(exponent)}}}"


def _text(text: str) -> str:
    """Plain text with LaTeX's special characters escaped (and the few symbols used in our wording);
    a control character shows as its escape (``\\x1b``), which TeX would refuse."""
    return _SPECIAL.sub(lambda match: _TEXT_ESCAPES[match.group()], printable(text))

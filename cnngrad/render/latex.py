r"""LaTeX fragments to ``\input`` into notes (needs ``amsmath``): grids as ``bmatrix``, tables as ``tabular``.

A vector is written as a row with ``^\top`` (a column vector, compactly); a matrix wider than
amsmath's default 10 columns raises ``MaxMatrixCols`` first.
"""
from __future__ import annotations

import re
import string

import numpy as np

from . import rows
from .blocks import Formula, Note, Problem, Table, Value, Verdict, Where
from .grid import grids, number_text
from .reports import BackwardReport, ForwardReport
from ..quantities import gradient_of, shape_text, value_of
from ..text import printable

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
                 "λ": r"$\lambda$", "μ": r"$\mu$", "π": r"$\pi$", "Δ": r"$\Delta$", "≠": r"$\ne$"}
# a number in text that plain text would set wrongly (a hyphen for its minus, 1e-05 literally) is
# set as maths; other numbers read the same either way and stay text
_NUMBER = r"(?<![\w.\]\-])-?\d+(?:\.\d+)?(?:e[+-]\d+)?(?![\w.])"
_HAT = "\u0302"           # the combining circumflex of x̂ (a standardised value)
_SUBSCRIPTS = {chr(0x2080 + digit): str(digit) for digit in range(10)}   # x₁ + x₂
_TEXT_ESCAPES.update({char: f"$_{digit}$" for char, digit in _SUBSCRIPTS.items()})
_SPECIAL = re.compile(_NUMBER + f"|[A-Za-z]{_HAT}|" + "|".join(map(re.escape, _TEXT_ESCAPES)))
_FORMULA_TOKEN = re.compile(r"Σ_\{[^}]*\}|Σ_\([^)]*\)|Σ_\w|[A-Za-z]\u0302|[A-Za-z](?:[A-Za-z_]|['-](?=[A-Za-z]))*|\s+|.")
_MATH_WORDS = {"kh": "k_h", "kw": "k_w"}
_FUNCTIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log", "exp")
_MATH_SYMBOLS = {"∂": r"\partial", "δ": r"\delta", "σ": r"\sigma", "θ": r"\theta", "η": r"\eta",
                 "ε": r"\varepsilon", "λ": r"\lambda", "α": r"\alpha", "β": r"\beta", "·": r"\cdot",
                 "×": r"\times", "−": "-", "′": "'", "²": "^2", "≤": r"\le", "≥": r"\ge", "→": r"\to",
                 "⊙": r"\odot", "…": r"\dots", "∞": r"\infty", "Σ": r"\sum", "½": r"\tfrac12", ":": r"\colon",
                 "Δ": r"\Delta", "≠": r"\ne"}
_MATH_SYMBOLS.update({char: f"_{digit}" for char, digit in _SUBSCRIPTS.items()})
_MATH_SYMBOLS.update({letter + _HAT: rf"\hat{{{letter}}}" for letter in string.ascii_letters})
_MATH_ESCAPES = {"{": r"\{", "}": r"\}", "_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#", "$": r"\$",
                 "\\": r"\backslash ", "^": r"\hat{}", "~": r"\sim "}
TEXT_WIDTH = 345.0        # pt: the text width of LaTeX's article class (10pt, letter or A4)
PAGE_ROWS = 40            # matrix rows in one display, which cannot break across pages (56 fill one)
COLUMN_SEP = 10.0         # pt between matrix columns (2 \arraycolsep)
MATRIX_EDGES = 30.0       # pt: " = ", the brackets, ^\top
_NON_FINITE = {"nan": r"\mathrm{NaN}", "inf (overflow)": r"\infty\ (\text{overflow})",
               "-inf (overflow)": r"-\infty\ (\text{overflow})"}


def forward(report: ForwardReport, precision: int, full: bool = True) -> str:
    """Every grid whole (``full`` is accepted for symmetry with the table, which may elide)."""
    blocks = [HEADER, _title(report.spec, report.name),
              _tabular(rows.SUMMARY_HEADER, rows.summary_rows(report), numeric=(3,))]
    blocks += [_line(note) for note in report.notes]
    blocks += _quantity(_name("input"), "input", report.input, precision)
    for layer in report.layers:
        blocks += _quantity(_name(layer.name), layer.name, layer.output, precision)
        for key, value in layer.statistics.items():
            blocks += _quantity(_name(f"{layer.name}.{key}"), f"{layer.name}.{key}", value, precision)
    blocks += _quantity(_name("output"), "output", report.output, precision)
    for key, value in report.loss_parts.items():
        blocks += _quantity(_name(key), key, value, precision)
    blocks.append(_loss(report.loss, report.loss_kind, precision))
    return "\n\n".join(blocks) + "\n"


def backward(report: BackwardReport, precision: int, full: bool = True) -> str:
    blocks = [HEADER, _title(report.spec, report.name), _loss(report.loss, report.loss_kind, precision)]
    blocks += [_line(note) for note in report.notes]
    for quantity, gradient in report.gradients.items():
        blocks += _quantity(_partial(quantity), gradient_of(quantity), gradient, precision)
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
        blocks += [BLOCKS[type(block)](block) for block in rows.check_blocks(result)]
    blocks.append(_line(rows.total_line(results), bold=True))
    return "\n\n".join(blocks) + "\n"


def explain(explained, precision: int) -> str:
    """The entry as ∂E/∂θ[index] = value, the formula typeset (maths in ``$…$``, its words as text),
    what its symbols stand for, the notes and the table of terms."""
    blocks = [HEADER, _title(explained.spec, explained.name)]
    blocks += [BLOCKS[type(block)](block) for block in rows.explain_blocks(explained, precision)]
    return "\n\n".join(blocks) + "\n"


def _value(block: Value) -> str:
    """``grad.conv1[0,1] = 0.25`` as display maths: ∂E/∂ of the name, its index, the number."""
    quantity, _, value = block.text.partition(" = ")
    name, bracket, index = quantity.partition("[")
    return rf"\[ {_partial(value_of(name))}{bracket}{index} = {_number(value)} \]"


def _where(block: Where) -> str:
    """``where $x$ is input, …``, each symbol typeset as maths."""
    where = ", ".join(f"${_formula_math(symbol).strip()}$ is {_name(name)}" for symbol, name in block.pairs)
    return rf"{{\raggedright\noindent where {where}\par}}"


BLOCKS = {   # block type → its LaTeX
    Value: _value,
    Formula: lambda b: rf"{{\raggedright\noindent {_formula(b.text)}\par}}",
    Where: _where,
    Note: lambda b: _line(b.text),
    Problem: lambda b: _line(b.text),
    Verdict: lambda b: _line(b.text, bold=True),
    Table: lambda b: _tabular(b.header, b.rows, b.numeric),
}


def _quantity(symbol: str, name: str, value, precision: int) -> list[str]:
    """``symbol = value`` as display maths: one ``bmatrix`` per 2-D slice, labelled by its index."""
    if np.ndim(value) == 0:
        return [rf"\[ {symbol} = {_number(number_text(value, precision))} \]"]
    blocks = [f"% {name}: {shape_text(np.shape(value))}"]
    for grid in grids(name, value, precision):
        cells = np.empty((len(grid.cells), len(grid.cells[0])), dtype=object)
        cells[:] = grid.cells
        blocks += _page_blocks(symbol + grid.label[len(name):], cells, grid.vector)   # label: e.g. K[0,1]
    return blocks


def _page_blocks(label: str, cells: np.ndarray, vector: bool) -> list[str]:
    """``label = cells`` as one display, or, when that is wider than ``TEXT_WIDTH`` or taller than
    ``PAGE_ROWS``, as blocks that fit a page, each labelled with its Python slice
    (``[0{:}40,\\,8{:}16]``); a long vector is written as a column, in blocks of rows. A matrix
    goes under its label instead of beside it where that fits twice the columns."""
    count_rows, count_columns = cells.shape
    column = max(map(_cell_width, cells.ravel().tolist())) + COLUMN_SEP
    beside = TEXT_WIDTH - _label_width(label) - MATRIX_EDGES      # room for the matrix beside its label
    below = TEXT_WIDTH - MATRIX_EDGES                             # or under it

    def fitting(room: float) -> int:
        return int((room + COLUMN_SEP) // column)

    if count_rows <= PAGE_ROWS and count_columns <= fitting(beside):
        return [_matrix(label, cells, vector)]
    if count_rows <= PAGE_ROWS and count_columns <= fitting(below) and not vector:
        return [_matrix(label, cells, vector, stacked=True)]
    if vector:                                                    # too long for a row: a column
        cells, vector, count_rows, count_columns = cells.T, False, count_columns, 1
        if count_rows <= PAGE_ROWS:
            return [_matrix(label, cells, vector)]
    slice_width = 4.5 * len(f"[{count_rows}:{count_rows},{count_columns}:{count_columns}]")
    stacked = 2 * fitting(beside - slice_width) < fitting(below)
    per_block = max(1, fitting(below if stacked else beside - slice_width))
    return _sliced_blocks(label, cells, per_block, stacked)


def _sliced_blocks(label: str, cells: np.ndarray, per_block: int, stacked: bool) -> list[str]:
    """``cells`` cut into blocks of ``PAGE_ROWS`` rows and ``per_block`` columns, each labelled
    with its Python slice (just the rows for a column)."""
    count_rows, count_columns = cells.shape
    blocks = []
    for r in range(0, count_rows, PAGE_ROWS):
        rows = rf"{r}{{:}}{min(r + PAGE_ROWS, count_rows)}"
        for c in range(0, count_columns, per_block):
            place = f"[{rows}]" if count_columns == 1 else rf"[{rows},\,{c}{{:}}{min(c + per_block, count_columns)}]"
            blocks.append(_matrix(label + place, cells[r:r + PAGE_ROWS, c:c + per_block], False, stacked))
    return blocks


def _matrix(label: str, cells: np.ndarray, vector: bool, stacked: bool = False) -> str:
    """``label = [cells]`` as display maths (a vector as a transposed row); ``stacked``: the
    matrix on a line under its label."""
    width = cells.shape[1]
    # one row per line: TeX cannot read a line longer than 200,000 characters
    body = " \\\\\n".join(" & ".join(map(_number, row)) for row in cells.tolist())
    matrix = f"\\begin{{bmatrix}}\n{body}\n\\end{{bmatrix}}" + (r"^\top" if vector else "")
    wide = rf"\setcounter{{MaxMatrixCols}}{{{width}}}" + "\n" if width > 10 else ""
    if stacked:
        return rf"{wide}\begin{{gather*}} {label} \\ = {matrix} \end{{gather*}}"
    return rf"{wide}\[ {label} = {matrix} \]"


def _cell_width(text: str) -> float:
    """Roughly how wide (pt) a formatted number is as maths in 10pt Computer Modern (measured:
    a digit 5pt, the point 2.8pt, a minus 7.8pt, ×10⁻⁵ 36pt); a little more, never less."""
    if text in _NON_FINITE:
        return 70.0
    mantissa, _, exponent = text.partition("e")
    width = 5.0 * sum(c.isdigit() for c in mantissa) + 2.8 * ("." in mantissa) + 7.8 * mantissa.startswith("-")
    return width + (30.0 + 6.0 * exponent.startswith("-") if exponent else 0.0)


def _label_width(label: str) -> float:
    """Roughly how wide (pt) a label is: 5.25pt a character (a \\texttt one; commands and braces
    count nothing), a fraction as its denominator, 8pt a ∂."""
    label = label.replace(r"\frac{\partial E}", "")
    return 5.25 * len(re.sub(r"\\[A-Za-z]+|[{}\\]", "", label)) + 8.0 * label.count(r"\partial")


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
    or line after it, and would impose a level on the notes the fragment is pasted into. A path
    may break after each /."""
    return _line(rows.heading(spec, name), bold=True).replace("/", r"/\allowbreak{}")


def _line(text: str, bold: bool = False) -> str:
    """``text`` as a paragraph of its own, flush left like the tables and ragged right (a line of
    paths and numbers has too few spaces to justify)."""
    escaped = _text(text)
    if bold:
        escaped = rf"\textbf{{{escaped}}}"
    return rf"{{\raggedright\noindent{'' if bold else ' '}{escaped}\par}}"


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


def _formula(text: str) -> str:
    """A formula in our notation (``∂E/∂x[i] = Σ_k δ[k] · y[k] (softmax …)``) as LaTeX text: the
    maths in ``$…$`` (∂ \\partial, Σ_{i,j} \\sum_{i,j}, · \\cdot, − a minus, relu′ an operator), its
    words as text between, so the paragraph can break where the sentence does."""
    tokens = _FORMULA_TOKEN.findall(text)
    pieces, maths, k = [], [], 0

    def flush_maths():
        joined = "".join(maths)
        if joined.strip():
            lead, trail = joined[:len(joined) - len(joined.lstrip())], joined[len(joined.rstrip()):]
            pieces.append(f"{lead and ' '}${joined.strip()}${trail and ' '}")
        elif joined:
            pieces.append(" ")
        maths.clear()

    while k < len(tokens):
        end = _words_end(tokens, k) if tokens[k] != ";" else k + 1     # ; ends a clause of maths
        if end > k:
            flush_maths()
            pieces.append(_text("".join(tokens[k:end])))
            k = end
        else:
            maths.append(_formula_math(tokens[k]))
            k += 1
    flush_maths()
    return "".join(pieces).replace("  ", " ")


def _words_end(tokens: list[str], k: int) -> int:
    """Where the run of words of a sentence starting at token ``k`` ends (``k`` when none starts
    there): words, and the spaces, commas and colons between them, and a parenthesis opened
    before one of them with its closing one."""
    if not _starts_words(tokens, k):
        return k
    depth, j = 0, k
    while j < len(tokens):
        step = _words_step(tokens, j, depth)
        if step is None:
            break
        j, depth = step
    return j


def _words_step(tokens: list[str], j: int, depth: int) -> tuple[int, int] | None:
    """The position and parenthesis depth after token ``j`` when it continues a run of words at
    ``depth`` open parentheses; None when the run ends before it."""
    if tokens[j] == "(" and _starts_words(tokens, j):
        return j + 1, depth + 1
    if _is_word(tokens, j):
        return j + 1, depth
    if tokens[j] == ")" and depth:
        return j + 1, depth - 1
    if tokens[j].isspace() or tokens[j] in ",:;":
        after = j + 1 + (j + 1 < len(tokens) and tokens[j + 1].isspace())
        return (after, depth) if _starts_words(tokens, after) else None
    return None


def _starts_words(tokens: list[str], j: int) -> bool:
    """Whether a run of words starts at token ``j``: a word, or ``(`` before one."""
    return j < len(tokens) and (_is_word(tokens, j) or (tokens[j] == "(" and _is_word(tokens, j + 1)))


def _is_word(tokens: list[str], k: int) -> bool:
    """Whether token ``k`` is a word of the sentence rather than a symbol of the maths: two
    letters or more, not ``kh``/``kw``, not a function applied (``relu′(``, ``log(``)."""
    token = tokens[k] if k < len(tokens) else ""
    if len(token) < 2 or not (token[0].isascii() and token[0].isalpha()) or token in _MATH_WORDS:
        return False
    return not (token in _FUNCTIONS and k + 1 < len(tokens) and tokens[k + 1] in ("′", "("))


def _formula_math(token: str) -> str:
    """One token of a formula's maths as LaTeX maths."""
    if token.startswith("Σ_"):
        below = token[2:].strip("{}") if token[2] == "{" else token[2:]
        return rf"\sum_{{{''.join(ch if ch.isascii() else _formula_math(ch) for ch in below)}}}"
    if token in _MATH_WORDS:
        return _MATH_WORDS[token]
    if token in _FUNCTIONS:
        return r"\operatorname{" + token.replace("_", r"\_") + "}"
    if token in _MATH_SYMBOLS:
        symbol = _MATH_SYMBOLS[token]
        return symbol + " " if symbol[-1].isalpha() else symbol
    if token.isascii():
        return _MATH_ESCAPES.get(token, token)
    return rf"\text{{{_text(token)}}}"


def _text(text: str) -> str:
    """Plain text with LaTeX's special characters escaped (and the few symbols used in our wording);
    a control character shows as its escape (``\\x1b``), which TeX would refuse."""
    return _SPECIAL.sub(_escape, printable(text))


def _escape(match: re.Match) -> str:
    found = match.group()
    if found.endswith(_HAT):
        return rf"$\hat{{{found[0]}}}$"
    if found in _TEXT_ESCAPES:
        return _TEXT_ESCAPES[found]
    return f"${_number(found)}$" if "-" in found or "e" in found else found

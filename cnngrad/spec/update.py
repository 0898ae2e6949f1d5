"""``check --update-expect``: rewrite a spec's failing ``expect:`` numbers with the computed values.

Only the characters of each number that changes are replaced, at the position the YAML parser
gives it, so comments, layout, alignment and every other byte stay as written (a YAML
round-trip writer such as ruamel.yaml re-indents sequences and re-spaces aligned grids). Rules:

- an ``expect`` entry that passes is left alone, and so is each number of a failing entry that
  is within its own tolerance; a file whose expectations all pass is not touched;
- a number written with decimals gets the computed value rounded to as many decimals (in the
  same notation: ``2.5e-3`` stays ``…e-3``); if that is not within the tolerance (a numeric
  ``tolerance:`` tighter than the decimals), to the fewest more decimals that are;
- a number written without a decimal point (an exact value) gets the computed value if that is
  a whole number, else the value to 10 significant digits, trailing zeros kept (``1`` →
  ``0.1000000000``), which ``tolerance: auto`` holds nearly as strictly as an exact number (a
  shorter ``0.1`` would accept ±0.05); under a numeric tolerance, the fewest decimals within it;
- a value that is not finite is left as written (the check goes on failing).
"""
from __future__ import annotations

import codecs
import math

import numpy as np
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from ..gradcheck.expect import NUMBER, allowed_error, auto_tolerance, verify
from ..model import Model
from .errors import SpecError
from .limits import Limits
from .source import STDIN, display_name, read_text
from .yamlload import compose

MAX_DECIMALS = 17
SIGNIFICANT = 10     # digits of a value that replaces an exact number


def update_expect(source: str, model: Model, limits: Limits | None = None) -> int:
    """Rewrite the failing ``expect`` numbers of the spec file ``source`` (``model`` is what it
    loaded to); the number of numbers changed. SpecError for standard input or an alias."""
    refuse_stdin([source])
    name = display_name(source)
    if not model.expect:
        return 0
    values = model.values()
    failing = [(e, values[e.quantity]) for e in model.expect if not verify(e, values[e.quantity]).passed]
    if not failing:
        return 0
    limits = limits or Limits()
    text = read_text(source, limits)
    root = compose(text, name, limits)
    nodes, uses = _expect_values(root), _uses(root)
    edits = [edit for expectation, actual in failing for edit in _edits(name, text, nodes, uses, expectation, actual)]
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    _write(source, text)
    return len(edits)


def _edits(name: str, text: str, nodes: dict, uses: dict, expectation, actual) -> list[tuple[int, int, str]]:
    """(start, end, new text) of each number of one failing expectation to rewrite; SpecError for
    one that cannot be rewritten in place (reached through an alias, quoted or tagged)."""
    edits = []
    for node, new in zip(_scalars(nodes[(expectation.line, expectation.column)]), _new_texts(expectation, actual)):
        if new is None or new == node.value:
            continue
        start, end = node.start_mark.index, node.end_mark.index
        if uses[id(node)] > 1:
            why = ("is reached through a YAML alias (rewriting it would change every place "
                   "that refers to it); write the numbers out")
        elif text[start:end] != node.value:
            why = "is not a plain number (quoted or tagged); write it as a plain number"
        else:
            edits.append((start, end, new))
            continue
        raise SpecError(name, node.start_mark.line + 1, node.start_mark.column + 1,
                        f"expect.{expectation.label}", f"--update-expect cannot rewrite "
                        f"{node.value!r}: it {why}")
    return edits


def _write(source: str, text: str) -> None:
    """Write ``text`` back to the spec file ``source``, with a UTF-8 byte-order mark if it had one."""
    with open(source, "rb") as file:
        bom = file.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8
    with open(source, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as file:
        file.write(text)


def refuse_stdin(sources) -> None:
    """SpecError if one of ``sources`` is standard input, which cannot be written back."""
    if STDIN in sources:
        raise SpecError(display_name(STDIN), None, None, "", "--update-expect rewrites spec files; "
                        "standard input cannot be updated (give the file's path)")


def _expect_values(root) -> dict[tuple[int, int], object]:
    """(line, column) of each key under ``expect:`` → its value node."""
    for key, value in root.value:
        if key.value == "expect" and isinstance(value, MappingNode):
            return {(k.start_mark.line + 1, k.start_mark.column + 1): v for k, v in value.value}
    return {}


def _uses(root) -> dict[int, int]:
    """id of each node → how many places of the document hold it (more than 1: through an alias,
    its own or a list's around it). Bounded: the loader limits the nodes after alias expansion."""
    uses: dict[int, int] = {}

    def walk(node):
        uses[id(node)] = uses.get(id(node), 0) + 1
        if isinstance(node, ScalarNode):
            return
        for child in node.value:
            if isinstance(node, MappingNode):
                walk(child[0])
                walk(child[1])
            else:
                walk(child)

    walk(root)
    return uses


def _scalars(node) -> list[ScalarNode]:
    """The number nodes of a value, in row-major order (the order of ``Expectation.texts``)."""
    if isinstance(node, SequenceNode):
        return [scalar for child in node.value for scalar in _scalars(child)]
    return [node]


def _new_texts(expectation, actual) -> list[str | None]:
    """For each number of an expectation, its new text, or None to keep it as written."""
    actual = np.asarray(actual, dtype=np.float64)
    scale = float(np.max(np.abs(actual), initial=0.0))
    if expectation.index is not None:
        actual = actual[expectation.index]
    texts = np.asarray(expectation.texts).reshape(-1).tolist()
    computed = actual.reshape(-1).tolist()
    expected = np.asarray(expectation.values, dtype=np.float64).reshape(-1)
    tolerance = expectation.tolerance
    out = []
    for text, value, old in zip(texts, computed, expected.tolist()):
        if not math.isfinite(value) or _within(old, text, value, tolerance, scale):
            out.append(None)
        else:
            out.append(_rewritten(text, value, tolerance, scale))
    return out


def _within(written: float, text: str, value: float, tolerance: float | None, scale: float) -> bool:
    """Whether ``value`` is within the tolerance of the number ``written`` as ``text`` (the rule of
    ``cnngrad.gradcheck.expect.verify``, for one entry)."""
    allowed = auto_tolerance(text) if tolerance is None else tolerance
    limit = allowed_error(np.array(allowed), np.array(written), max(scale, abs(written)))
    return abs(value - written) <= float(limit)


def _rewritten(text: str, value: float, tolerance: float | None, scale: float) -> str:
    """The computed ``value`` written like ``text`` (see the module's rules)."""
    match = NUMBER.match(text.strip().replace("_", ""))
    if match is None:          # .inf, .nan and the like: write the value itself
        return _exact(value)
    exponent = match["exp"]
    if (match["frac"] is None and tolerance is None) or abs(int(exponent or 0)) > 300:
        return _exact(value)       # (an exponent beyond ±300 cannot scale a float64 mantissa)
    start = 0 if match["frac"] is None else len(match["frac"])
    for decimals in range(start, MAX_DECIMALS + 1):
        candidate = _decimal(value, decimals, exponent, text, point=match["frac"] is not None)
        if _within(float(candidate), candidate, value, tolerance, scale):
            return candidate
    return _exact(value)


def _decimal(value: float, decimals: int, exponent: str | None, text: str, point: bool) -> str:
    """``value`` with ``decimals`` decimals, scaled by the exponent written in ``text`` if any;
    ``point`` keeps a decimal point even with no decimals (``2.`` as written)."""
    mantissa = value / 10.0 ** int(exponent) if exponent is not None else value
    digits = f"{mantissa:.{decimals}f}" + ("." if point and decimals == 0 else "")
    if float(digits) == 0:
        digits = digits.lstrip("-")            # no "-0.000"
    if exponent is not None:     # with its sign, or YAML would read 1.5e3 as a string
        digits += ("E" if "E" in text else "e") + (exponent if exponent[0] in "+-" else "+" + exponent)
    if text.lstrip().startswith("+") and not digits.startswith("-"):
        digits = "+" + digits
    return digits


def _exact(value: float) -> str:
    """``value`` for a number that was written as exact: a whole number as is (``3``), else to
    SIGNIFICANT digits with trailing zeros (``1.541000000``), which ``tolerance: auto`` holds to
    half a unit in the tenth digit, about as strictly as an exact number (1e-9 of its size)."""
    if value == int(value) and abs(value) < 2 ** 53:
        return str(int(value))
    if 1e-4 <= abs(value) < 1e10:
        return f"{value:.{SIGNIFICANT - 1 - math.floor(math.log10(abs(value)))}f}"
    return f"{value:.{SIGNIFICANT - 1}e}"

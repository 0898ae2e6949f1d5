"""Typed reading of one YAML node that knows its place, so every error can blame it.

A ``Cursor`` is a node plus its quantity path (``layers[0].conv.kernel``) and file name; its
readers return plain Python values or raise a ``SpecError`` at the node.
"""
from __future__ import annotations

import math
import re
from typing import NoReturn, Sequence

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import SpecError, quoted, shortened

INT, FLOAT, BOOL, NULL, STR = (f"tag:yaml.org,2002:{t}" for t in ("int", "float", "bool", "null", "str"))
NUMBER_LIMIT = 24   # characters of a number quoted in a message (a 5000-digit one is cut)

# YAML 1.2's core schema: the plain scalars that are null, booleans and numbers, in the order they
# are tried; anything else is a string. No YAML 1.1 forms: 010 is not octal 8, 1:30 is not 90,
# yes/no/on/off are words. yamlload resolves plain scalars by these and checks explicit tags' contents.
CORE_FORMS = {
    NULL: re.compile(r"(?:~|null|Null|NULL|)\Z"),
    BOOL: re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z"),
    INT: re.compile(r"(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z"),
    FLOAT: re.compile(r"(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                      r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z"),
}
_SPECIAL_FLOATS = {f"{sign}.{inf}": float(f"{sign}inf")
                   for sign in ("", "+", "-") for inf in ("inf", "Inf", "INF")}
_SPECIAL_FLOATS.update({f".{nan}": math.nan for nan in ("nan", "NaN", "NAN")})
MAX_DIGITS = 400          # beyond float64's 309; Python's int() refuses more than 4300
MAX_SETTING = 2**31 - 1   # the largest size, stride, padding or dilation a layer may be given


def kind_of(node: Node) -> str:
    """How a node reads to a user: 'a number', 'a string 'x'', 'a list', ..."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag in (INT, FLOAT):
        return f"the number {shortened(node.value, NUMBER_LIMIT)}"
    if node.tag == BOOL:
        return f"the boolean {node.value}"
    if node.tag == NULL:
        return "nothing (null)"
    return f"the string {quoted(node.value)}"


def suggest(word: str, allowed: Sequence[str]) -> str:
    """`; did you mean 'kernel'?` for the nearest allowed word, or nothing."""
    import difflib   # only a mistyped spec needs it: not on every start-up
    near = difflib.get_close_matches(word, allowed, n=1)
    return f"; did you mean {near[0]!r}?" if near else ""


def whole_value(node: ScalarNode) -> int:
    """The value of an int node (decimal, ``0o`` octal or ``0x`` hex, as YAML 1.2 writes them).

    OverflowError beyond MAX_DIGITS digits; ValueError, saying what to write, for a decimal with
    a leading zero, which YAML 1.1 read as octal (``010`` = 8) and YAML 1.2 as ten.
    """
    text = node.value
    base, digits = {"0o": (8, text[2:]), "0x": (16, text[2:])}.get(text[:2], (10, text.lstrip("+-")))
    if len(digits) > MAX_DIGITS:
        raise OverflowError(f"{shortened(text, NUMBER_LIMIT)} has more than {MAX_DIGITS} digits")
    if base == 10 and len(digits) > 1 and digits[0] == "0":
        raise ValueError(_leading_zero(text, digits))
    return int(text, 0) if base != 10 else int(text)


def _leading_zero(text: str, digits: str) -> str:
    """What to write instead of a decimal with a leading zero: the number without it, or octal."""
    plain = ("-" if text[0] == "-" else "") + (digits.lstrip("0") or "0")
    octal = f", or 0o{digits.lstrip('0')} if you meant octal" \
        if text[0] in "0123456789" and digits.lstrip("0") and max(digits) < "8" else ""
    return f"{text} has a leading zero, which YAML 1.1 read as octal: write {plain}{octal}"


def number_value(node: Node) -> float:
    """The value of a numeric scalar node as a float (±inf beyond float64's range).

    ValueError, with the message to show, for any other node.
    """
    if not isinstance(node, ScalarNode) or node.tag not in (INT, FLOAT):
        raise ValueError(f"expected a number, not {kind_of(node)}")
    text = node.value
    if node.tag == FLOAT:   # yamlload made sure the text is a YAML 1.2 float
        return _SPECIAL_FLOATS[text] if text in _SPECIAL_FLOATS else float(text)
    try:
        return float(whole_value(node))
    except OverflowError:
        return -math.inf if text[0] == "-" else math.inf


def scalar_number(node: Node) -> float | None:
    """``number_value`` for the bulk of a literal: None where it would raise."""
    try:
        return number_value(node)
    except ValueError:
        return None


class Cursor:
    def __init__(self, node: Node, path: str, file: str):
        self.node, self.path, self.file = node, path, file

    @property
    def line(self) -> int | None:
        """1-based; None for a node built from a Python mapping (``fromdict``), which has no place."""
        mark = self.node.start_mark
        return None if mark is None else mark.line + 1

    @property
    def column(self) -> int | None:
        mark = self.node.start_mark
        return None if mark is None else mark.column + 1

    def fail(self, message: str) -> NoReturn:
        raise SpecError(self.file, self.line, self.column, self.path, message)

    def at(self, node: Node, segment: str) -> "Cursor":
        """A child cursor; ``segment`` is ``[i]`` or a key."""
        path = self.path + segment if segment.startswith("[") or not self.path else f"{self.path}.{segment}"
        return Cursor(node, path, self.file)

    @property
    def is_scalar(self) -> bool:
        return isinstance(self.node, ScalarNode)

    @property
    def is_null(self) -> bool:
        return isinstance(self.node, ScalarNode) and self.node.tag == NULL

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.node, MappingNode)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.node, SequenceNode)

    def items(self, what: str = "a mapping of keys to values") -> list[tuple[str, "Cursor", "Cursor"]]:
        """(key, key cursor, value cursor) for each entry; keys must be plain scalars."""
        if not self.is_mapping:
            self.fail(f"expected {what}, not {kind_of(self.node)}")
        out = []
        for key, value in self.node.value:
            key_cursor = Cursor(key, self.path, self.file)
            if isinstance(key, ScalarNode) and key.value == "<<" and not key.style:   # plain, not quoted
                key_cursor.fail("merge keys (<<) are not supported; write the keys out")
            if not isinstance(key, ScalarNode) or key.tag not in (STR, INT):
                key_cursor.fail(f"a key must be a word, not {kind_of(key)}")
            out.append((key.value, key_cursor, self.at(value, key.value)))
        return out

    def mapping(self, allowed: Sequence[str], required: Sequence[str] = (),
                what: str = "a mapping") -> dict[str, "Cursor"]:
        """The entries of a mapping whose keys must be among ``allowed``, with ``required`` present."""
        out = {}
        for key, key_cursor, value in self.items(f"{what} with keys {', '.join(allowed)}"):
            if key not in allowed:
                key_cursor.fail(f"unknown key {quoted(key)}{suggest(key, allowed)} "
                                f"(allowed: {', '.join(allowed)})")
            out[key] = value
        for key in required:
            if key not in out:
                self.fail(f"missing key {key!r}")
        return out

    def sequence(self, what: str = "a list") -> list["Cursor"]:
        if not self.is_sequence:
            self.fail(f"expected {what}, not {kind_of(self.node)}")
        return [self.at(child, f"[{i}]") for i, child in enumerate(self.node.value)]

    def text(self) -> str:
        """A scalar's text as written (a name, a description)."""
        if not self.is_scalar or self.is_null:
            self.fail(f"expected text, not {kind_of(self.node)}")
        return self.node.value

    def word(self, choices: Sequence[str], what: str = "value") -> str:
        """One of ``choices``."""
        if self.is_scalar and self.node.value in choices and self.node.tag in (STR, INT, FLOAT):
            return self.node.value
        got = self.node.value if self.is_scalar and self.node.tag == STR else None
        hint = suggest(got, choices) if got else ""
        self.fail(f"{what} must be one of {', '.join(choices)}, not {kind_of(self.node)}{hint}")

    def number(self) -> float:
        """A finite number (YAML ``.nan``/``.inf``, booleans and strings are refused)."""
        try:
            value = number_value(self.node)
        except ValueError as err:
            self.fail(str(err))
        if not math.isfinite(value):
            self.fail(f"{shortened(self.node.value, NUMBER_LIMIT)} is not a finite number (NaN and infinities are not allowed)")
        return value

    def integer(self, minimum: int, what: str, maximum: int = MAX_SETTING) -> int:
        """An int from ``minimum`` to ``maximum``."""
        if not self.is_scalar or self.node.tag != INT:
            self.fail(f"{what} must be a whole number, not {kind_of(self.node)}")
        try:
            value = whole_value(self.node)
        except OverflowError:
            value = -math.inf if self.node.value.startswith("-") else math.inf
        except ValueError as err:
            self.fail(str(err))
        if value > maximum:
            self.fail(f"{what} {shortened(self.node.value, NUMBER_LIMIT)} is too large (at most {maximum})")
        if value < minimum:
            self.fail(f"{what} must be at least {minimum}, not {shortened(self.node.value, NUMBER_LIMIT)}")
        return value

    def pair(self, minimum: int, what: str) -> tuple[int, int]:
        """An int or an ``[h, w]`` pair of ints, each at least ``minimum``."""
        if self.is_sequence:
            items = self.sequence()
            if len(items) != 2:
                self.fail(f"{what} must be an int or an [h, w] pair, not a list of {len(items)}")
            return items[0].integer(minimum, what), items[1].integer(minimum, what)
        value = self.integer(minimum, what)
        return value, value

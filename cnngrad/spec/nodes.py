"""Typed reading of one YAML node that knows its place, so every error can blame it.

A ``Cursor`` is a node plus its quantity path (``layers[0].conv.kernel``) and file name; its
readers return plain Python values or raise a ``SpecError`` at the node.
"""
from __future__ import annotations

import math
from typing import NoReturn, Sequence

from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import SpecError, quoted, shortened

INT, FLOAT, BOOL, NULL, STR = (f"tag:yaml.org,2002:{t}" for t in ("int", "float", "bool", "null", "str"))
_SCALARS = SafeConstructor()   # only its int/float readers are used, on nodes already checked


def kind_of(node: Node) -> str:
    """How a node reads to a user: 'a number', 'a string 'x'', 'a list', ..."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag in (INT, FLOAT):
        return f"the number {shortened(node.value)}"
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


def scalar_number(node: Node) -> float | None:
    """The value of a numeric scalar node as a float (inf for an int too large), else None."""
    if not isinstance(node, ScalarNode) or node.tag not in (INT, FLOAT):
        return None
    if node.tag == FLOAT:
        try:  # the common spelling; YAML's others (.inf, 1_000.5, 1:30.5) go to PyYAML's reader
            return float(node.value)
        except ValueError:
            return _SCALARS.construct_yaml_float(node)
    try:
        return float(_SCALARS.construct_yaml_int(node))
    except OverflowError:
        return math.inf


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
        value = scalar_number(self.node)
        if value is None:
            self.fail(f"expected a number, not {kind_of(self.node)}")
        if not math.isfinite(value):
            written = self.node.value if len(self.node.value) <= 24 else self.node.value[:20] + "…"
            self.fail(f"{written} is not a finite number (NaN and infinities are not allowed)")
        return value

    def integer(self, minimum: int, what: str) -> int:
        """An int of at least ``minimum``."""
        if not self.is_scalar or self.node.tag != INT:
            self.fail(f"{what} must be a whole number, not {kind_of(self.node)}")
        value = _SCALARS.construct_yaml_int(self.node)
        if value < minimum:
            self.fail(f"{what} must be at least {minimum}, not {value}")
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

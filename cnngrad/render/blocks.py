"""The blocks a check or an explanation is shown as, free of any format (``rows`` makes them).

Each format keeps one dict from block type to the function that lays that block out, and one loop.
"""
from __future__ import annotations

from ..record import Record


class Text(Record):
    """A line of words; the subclasses say what the line is, so a format can style it."""
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


class Value(Text):
    """``grad.conv1[0,1] = 0.25``: the entry explain is about."""
    __slots__ = ()


class Formula(Text):
    """The chain-rule formula, as text (``Σ`` and ``·``)."""
    __slots__ = ()


class Note(Text):
    """A remark under or between tables."""
    __slots__ = ()


class Problem(Text):
    """Something that did not pass: a failed expect's detail, an unverified gradient."""
    __slots__ = ()


class Where(Text):
    """``where x = input, …``: the line, and the (symbol, quantity) pairs for formats that typeset them."""
    __slots__ = ("pairs",)

    def __init__(self, text: str, pairs: list[tuple[str, str]]):
        self.text, self.pairs = text, pairs


class Verdict(Text):
    """One spec's verdict line and whether it passed."""
    __slots__ = ("passed",)

    def __init__(self, text: str, passed: bool):
        self.text, self.passed = text, passed


class Table(Record):
    """A header, rows of cell texts and the columns that hold numbers (aligned right)."""
    __slots__ = ("header", "rows", "numeric")

    def __init__(self, header: tuple[str, ...], rows: list[list[str]], numeric: tuple[int, ...] = ()):
        self.header, self.rows, self.numeric = header, rows, numeric

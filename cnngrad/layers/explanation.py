"""Plain records a layer (or loss) returns to explain one gradient entry: the chain rule one step.

A layer speaks of its own arrays by role (``x`` its input, ``y`` its output, ``dy`` ∂E/∂y, or a
parameter's short name such as ``kernel``) and engine index (no batch axis); ``cnngrad.explain``
turns each ``Ref`` into the quantity name and index the user wrote. Nothing here is rendered.
"""
from __future__ import annotations

import math

from ..record import Record


class Ref(Record):
    """An entry of one of the layer's arrays: ``role`` and engine ``index``."""

    __slots__ = ("role", "index")

    def __init__(self, role: str, index: tuple[int, ...]):
        self.role, self.index = role, index


class Factor(Record):
    """One factor of a term: ``form`` with ``{}`` standing for ``ref`` (``relu′({})``), or a
    constant when ``ref`` is None (``form`` is then its text, e.g. ``1/4``)."""

    __slots__ = ("value", "ref", "form")

    def __init__(self, value: float, ref: Ref | None = None, form: str = "{}"):
        self.value, self.ref, self.form = value, ref, form


class Term(Record):
    """A product of factors: one summand of the chain rule."""

    __slots__ = ("factors",)

    def __init__(self, factors: list[Factor]):
        self.factors = factors

    @property
    def value(self) -> float:
        return math.prod(f.value for f in self.factors)


class Explanation(Record):
    """∂E/∂(entry) = Σ terms (``cnngrad.explain`` sums them with ``math.fsum``). ``formula`` is the
    step in symbols, ``notes`` facts about the point (a pool window and its winner, a derivative),
    each a list of text, numbers and ``Ref`` parts; ``symbols`` maps each role to the symbol the
    formula uses for it (``{"dy": "δ"}``)."""

    __slots__ = ("formula", "terms", "notes", "symbols")

    def __init__(self, formula: str, terms: list[Term], notes: list[list] | None = None,
                 symbols: dict[str, str] | None = None):
        self.formula, self.terms = formula, terms
        self.notes = [] if notes is None else notes
        self.symbols = {} if symbols is None else symbols

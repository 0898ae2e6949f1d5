"""Plain records a layer (or loss) returns to explain one gradient entry: the chain rule one step.

A layer speaks of its own arrays by role (``x`` its input, ``y`` its output, ``dy`` ∂E/∂y, or a
parameter's short name such as ``kernel``) and engine index (no batch axis); ``cnngrad.explain``
turns each ``Ref`` into the quantity name and index the user wrote. Nothing here is rendered.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Ref:
    """An entry of one of the layer's arrays: ``role`` and engine ``index``."""

    role: str
    index: tuple[int, ...]


@dataclass(frozen=True)
class Factor:
    """One factor of a term: ``form`` with ``{}`` standing for ``ref`` (``relu′({})``), or a
    constant when ``ref`` is None (``form`` is then its text, e.g. ``1/4``)."""

    value: float
    ref: Ref | None = None
    form: str = "{}"


@dataclass
class Term:
    """A product of factors: one summand of the chain rule."""

    factors: list[Factor]

    @property
    def value(self) -> float:
        return math.prod(f.value for f in self.factors)


@dataclass
class Explanation:
    """∂E/∂(entry) = Σ terms. ``formula`` is the step in symbols, ``notes`` facts about the point
    (a pool window and its winner, a derivative), each a list of text, numbers and ``Ref`` parts;
    ``symbols`` maps each role to the symbol the formula uses for it (``{"dy": "δ"}``)."""

    formula: str
    terms: list[Term]
    notes: list[list] = field(default_factory=list)
    symbols: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return math.fsum(term.value for term in self.terms)

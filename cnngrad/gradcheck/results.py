"""Plain result records of a check, rendered by ``cnngrad.render`` (no maths there, none here)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EntryResult:
    """One entry of a gradient: analytic against finite-difference value.

    ``status`` is ``ok``, ``fail`` or ``kink``; for a kink, ``left`` and ``right`` are the
    one-sided difference quotients the analytic value must lie between.
    """

    index: tuple[int, ...]
    analytic: float
    numeric: float
    abs_error: float
    status: str
    left: float | None = None
    right: float | None = None


@dataclass
class QuantityResult:
    """The check of one gradient (``input``, ``conv1.kernel``, or a layer's delta ``conv1``)."""

    quantity: str
    shape: tuple[int, ...]
    passed: bool
    max_abs_error: float
    max_rel_error: float
    kinks: int
    entries: list[EntryResult] = field(default_factory=list)
    method: str = "full"     # "full": every entry; "fast": random directional derivatives


@dataclass
class ExpectResult:
    """One ``expect:`` entry against the computed value; ``worst`` indexes the largest error."""

    quantity: str
    passed: bool
    max_abs_error: float
    tolerance: float
    expected: object = None      # as written (number or nested list)
    actual: object = None        # computed, same shape
    worst: tuple[int, ...] | None = None


@dataclass
class SpecResult:
    """Everything ``check`` found for one spec file."""

    spec: str
    name: str | None
    passed: bool
    gradients: list[QuantityResult] = field(default_factory=list)
    expect: list[ExpectResult] = field(default_factory=list)
    deltas: list[QuantityResult] = field(default_factory=list)
    faulty_layer: str | None = None   # first layer, counting back from the loss, whose backward disagrees
    error: str | None = None          # the spec could not be run (the one-line error)

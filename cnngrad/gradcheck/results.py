"""Plain result records of a check, rendered by ``cnngrad.render`` (no maths there, none here)."""
from __future__ import annotations

from ..record import Record


class EntryResult(Record):
    """One entry of a gradient: analytic against finite-difference value.

    ``status`` is ``ok``, ``fail`` or ``kink``; for a kink, ``left`` and ``right`` are the
    one-sided difference quotients the analytic value must lie between.
    """

    __slots__ = ("index", "analytic", "numeric", "abs_error", "status", "left", "right")

    def __init__(self, index: tuple[int, ...], analytic: float, numeric: float, abs_error: float,
                 status: str, left: float | None = None, right: float | None = None):
        self.index, self.analytic, self.numeric, self.abs_error = index, analytic, numeric, abs_error
        self.status, self.left, self.right = status, left, right


class QuantityResult(Record):
    """The check of one gradient (``input``, ``conv1.kernel``, or a layer's delta ``conv1``)."""

    __slots__ = ("quantity", "shape", "passed", "max_abs_error", "max_rel_error", "kinks", "entries",
                 "method", "line", "column")

    def __init__(self, quantity: str, shape: tuple[int, ...], passed: bool, max_abs_error: float,
                 max_rel_error: float, kinks: int, entries: list[EntryResult] | None = None,
                 method: str = "full", line: int | None = None, column: int | None = None):
        self.quantity, self.shape, self.passed = quantity, shape, passed
        self.max_abs_error, self.max_rel_error, self.kinks = max_abs_error, max_rel_error, kinks
        self.entries = [] if entries is None else entries
        self.method = method     # "full": every entry; "fast": random directional derivatives
        self.line, self.column = line, column   # where the spec wrote it (the value, or the layer)


class ExpectResult(Record):
    """One ``expect:`` entry against the computed value; ``worst`` indexes the largest error."""

    __slots__ = ("quantity", "passed", "max_abs_error", "tolerance", "expected", "actual", "worst",
                 "line", "column")

    def __init__(self, quantity: str, passed: bool, max_abs_error: float, tolerance: float,
                 expected: object = None, actual: object = None, worst: tuple[int, ...] | None = None,
                 line: int | None = None, column: int | None = None):
        self.quantity, self.passed = quantity, passed
        self.max_abs_error, self.tolerance = max_abs_error, tolerance
        self.expected = expected      # as written (number or nested list)
        self.actual = actual          # computed, same shape
        self.worst = worst
        self.line, self.column = line, column   # where the entry's key is written in the spec


class SpecResult(Record):
    """Everything ``check`` found for one spec file."""

    __slots__ = ("spec", "name", "passed", "gradients", "expect", "deltas", "faulty_layer", "error")

    def __init__(self, spec: str, name: str | None, passed: bool,
                 gradients: list[QuantityResult] | None = None, expect: list[ExpectResult] | None = None,
                 deltas: list[QuantityResult] | None = None, faulty_layer: str | None = None,
                 error: str | None = None):
        self.spec, self.name, self.passed = spec, name, passed
        self.gradients = [] if gradients is None else gradients
        self.expect = [] if expect is None else expect
        self.deltas = [] if deltas is None else deltas
        self.faulty_layer = faulty_layer   # first layer, counting back from the loss, whose backward disagrees
        self.error = error                 # the spec could not be run (the one-line error)

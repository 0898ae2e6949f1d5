"""Plain result records of a check, rendered by ``cnngrad.render`` (no maths there, none here)."""
from __future__ import annotations

import math

from ..record import Record


class EntryResult(Record):
    """One entry of a gradient: analytic against finite-difference value.

    ``status`` is ``ok``, ``fail``, ``kink`` or ``unresolved`` (within tolerance, but its own
    finite differences cannot resolve its value; the quantity is then unverified); for a kink, ``left`` and ``right`` are the
    one-sided difference quotients the analytic value must lie between, and ``notable`` says
    whether it is worth a look (``check.notable_kinks``).
    """

    __slots__ = ("index", "analytic", "numeric", "abs_error", "status", "left", "right", "notable")

    def __init__(self, index: tuple[int, ...], analytic: float, numeric: float, abs_error: float,
                 status: str, left: float | None = None, right: float | None = None, notable: bool = False):
        self.index, self.analytic, self.numeric, self.abs_error = index, analytic, numeric, abs_error
        self.status, self.left, self.right, self.notable = status, left, right, notable


class QuantityResult(Record):
    """The check of one gradient (``input``, ``conv1.kernel``, or a layer's delta ``conv1``).

    ``status`` is ``passed``, ``failed`` or ``unverified`` (no entry failed, but the finite
    differences resolve no relative error below 1%: ``difference_resolution`` is the smallest
    they do, tolerances left out);
    ``resolution`` is the smallest relative error the check could have caught, tolerances
    included (None when every entry is a kink or exactly 0). Errors are over non-kink entries.

    The checker keeps the entries as arrays (``verdicts``, a ``gradcheck.verdicts.EntryVerdicts``);
    ``entries``, the list of ``EntryResult`` records, is made from them when first read.
    """

    __slots__ = ("quantity", "shape", "passed", "max_abs_error", "max_rel_error", "kinks", "_entries",
                 "method", "status", "resolution", "difference_resolution", "line", "column", "verdicts")
    FIELDS = ("quantity", "shape", "passed", "max_abs_error", "max_rel_error", "kinks", "entries",
              "method", "status", "resolution", "difference_resolution", "line", "column")

    def __init__(self, quantity: str, shape: tuple[int, ...], passed: bool, max_abs_error: float,
                 max_rel_error: float, kinks: int, entries: list[EntryResult] | None = None,
                 method: str = "full", status: str | None = None, resolution: float | None = None,
                 difference_resolution: float | None = None, line: int | None = None,
                 column: int | None = None, verdicts=None):
        self.quantity, self.shape, self.passed = quantity, shape, passed
        self.max_abs_error, self.max_rel_error, self.kinks = max_abs_error, max_rel_error, kinks
        self._entries = [] if entries is None and verdicts is None else entries
        self.verdicts = verdicts
        self.method = method     # "full": every entry; "fast": random directional derivatives
        self.status = status if status is not None else "passed" if passed else "failed"
        self.resolution, self.difference_resolution = resolution, difference_resolution

        self.line, self.column = line, column   # where the spec wrote it (the value, or the layer)

    @property
    def entries(self) -> list[EntryResult]:
        """Every entry's ``EntryResult``, made from ``verdicts`` when first read."""
        if self._entries is None:
            self._entries = self.verdicts.records()
        return self._entries

    @entries.setter
    def entries(self, entries: list[EntryResult]) -> None:
        self._entries, self.verdicts = entries, None

    def as_dict(self) -> dict[str, object]:
        """The fields in order, ``entries`` as records (``verdicts`` is how they are kept)."""
        return {name: getattr(self, name) for name in self.FIELDS}

    def entry_fields(self):
        """Each entry's ``EntryResult`` fields in order, as Python values, without making the
        records where they were not made yet (JSON of a million entries)."""
        if self._entries is None:
            return self.verdicts.fields()
        return (tuple(entry.as_dict().values()) for entry in self._entries)

    def entry_count(self) -> int:
        return len(self.verdicts) if self._entries is None else len(self._entries)

    def failing(self) -> list[EntryResult]:
        """The entries that failed."""
        if self._entries is None:
            return self.verdicts.failing()
        return [entry for entry in self._entries if entry.status == "fail"]

    def failing_count(self) -> int:
        """How many entries failed (no records made)."""
        if self._entries is None:
            return self.verdicts.failing_count()
        return sum(entry.status == "fail" for entry in self._entries)

    def worst_failing(self) -> EntryResult | None:
        """The failed entry of largest |error|, NaN counted as infinite (the first of equals); None
        when none failed."""
        if self._entries is None:
            return self.verdicts.worst_failing()
        return max(self.failing(), key=lambda entry: math.inf if math.isnan(entry.abs_error) else entry.abs_error,
                   default=None)

    def flagged(self, limit: int | None = None) -> list[EntryResult]:
        """The entries to look at: failing, unresolved, or kinks worth a look (``notable``); only
        the first ``limit`` when given (a table lists ten; every entry may fail)."""
        if self._entries is None:
            return self.verdicts.flagged(limit)
        return [entry for entry in self._entries if _is_flagged(entry)][:limit]

    def flagged_count(self) -> int:
        """How many entries ``flagged`` gives without a limit."""
        if self._entries is None:
            return self.verdicts.flagged_count()
        return sum(map(_is_flagged, self._entries))

    def unresolved(self) -> int:
        """How many entries' own finite differences cannot resolve them (``status`` unresolved)."""
        if self._entries is None:
            return self.verdicts.unresolved()
        return sum(entry.status == "unresolved" for entry in self._entries)

    def quiet_kinks(self) -> int:
        """How many kinks passed and are not worth a look."""
        if self._entries is None:
            return self.verdicts.quiet_kinks()
        return sum(entry.status == "kink" and not entry.notable for entry in self._entries)

    def disagrees(self) -> bool:
        """A failed entry whose difference was measured (not one that overflowed)."""
        if self._entries is None:
            return self.verdicts.disagrees()
        return any(entry.status == "fail" and math.isfinite(entry.numeric) for entry in self._entries)


def _is_flagged(entry: EntryResult) -> bool:
    return entry.status in ("fail", "unresolved") or entry.notable


class FailingEntry(Record):
    """One entry of an ``expect:`` value outside its tolerance; ``difference`` = expected − computed."""

    __slots__ = ("index", "expected", "computed", "difference")

    def __init__(self, index: tuple[int, ...], expected: float, computed: float, difference: float):
        self.index, self.expected, self.computed, self.difference = index, expected, computed, difference


class Diagnosis(Record):
    """A classic mistake that reproduces a wrong value: its id (``sign-flipped``, …), the layer
    where it happened (None for the loss), the largest |difference| left, and a sentence."""

    __slots__ = ("mistake", "layer", "max_abs_error", "message")

    def __init__(self, mistake: str, layer: str | None, max_abs_error: float, message: str):
        self.mistake, self.layer, self.max_abs_error, self.message = mistake, layer, max_abs_error, message


class ExpectResult(Record):
    """One ``expect:`` entry against the computed value; ``worst`` indexes the largest error,
    ``failing`` lists every entry outside its tolerance (index in the whole quantity).

    A failed one may carry what ``cnngrad.diagnose`` found: ``origin`` (``introduced`` when the
    error entered here, ``propagated`` when the user's own earlier value explains it) and
    ``diagnosis`` (the mistakes that reproduce it, best first); ``note`` says what else is wrong
    (an array in another layout)."""

    __slots__ = ("quantity", "passed", "max_abs_error", "tolerance", "expected", "actual", "worst",
                 "failing", "diagnosis", "origin", "note", "line", "column")

    def __init__(self, quantity: str, passed: bool, max_abs_error: float, tolerance: float,
                 expected: object = None, actual: object = None, worst: tuple[int, ...] | None = None,
                 failing: list[FailingEntry] | None = None, diagnosis: list[Diagnosis] | None = None,
                 origin: str | None = None, note: str | None = None, line: int | None = None,
                 column: int | None = None):
        self.quantity, self.passed = quantity, passed
        self.max_abs_error, self.tolerance = max_abs_error, tolerance
        self.expected = expected      # as written (number or nested list)
        self.actual = actual          # computed, same shape
        self.worst = worst
        self.failing = [] if failing is None else failing
        self.diagnosis = [] if diagnosis is None else diagnosis
        self.origin, self.note = origin, note
        self.line, self.column = line, column   # where the entry's key is written in the spec


class SpecResult(Record):
    """Everything ``check`` found for one spec file."""

    __slots__ = ("spec", "name", "passed", "gradients", "expect", "deltas", "faulty_layer", "error",
                 "first_wrong", "first_wrong_layer", "notes")

    def __init__(self, spec: str, name: str | None, passed: bool,
                 gradients: list[QuantityResult] | None = None, expect: list[ExpectResult] | None = None,
                 deltas: list[QuantityResult] | None = None, faulty_layer: str | None = None,
                 error: str | None = None, first_wrong: str | None = None,
                 first_wrong_layer: str | None = None, notes: list[str] | None = None):
        self.spec, self.name, self.passed = spec, name, passed
        self.gradients = [] if gradients is None else gradients
        self.expect = [] if expect is None else expect
        self.deltas = [] if deltas is None else deltas
        self.faulty_layer = faulty_layer   # first layer, counting back from the loss, whose backward disagrees
        self.error = error                 # the spec could not be run (the one-line error)
        self.first_wrong = first_wrong     # the first quantity where a wrong expect value's error entered
        self.first_wrong_layer = first_wrong_layer   # the layer whose step made it ("loss": the loss's)
        self.notes = [] if notes is None else notes  # the spec's, as forward shows them (Model.notes)

    def without_entries(self) -> "SpecResult":
        """The same result with each gradient's and delta's entries left out (what a total line and
        an exit code read): a table printed spec by spec keeps no per-entry arrays of those printed."""
        def bare(checked: QuantityResult) -> QuantityResult:
            return QuantityResult(**{name: [] if name == "entries" else getattr(checked, name)
                                     for name in QuantityResult.FIELDS})
        return SpecResult(**{**self.as_dict(), "gradients": [bare(q) for q in self.gradients],
                             "deltas": [bare(q) for q in self.deltas]})

    def _repr_html_(self) -> str:
        """Heatmap tables in a notebook (``render.html``)."""
        from ..render import notebook
        return notebook.html(self, "check")

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """IPython's text display: the table ``cnngrad check`` prints."""
        from ..render import notebook
        notebook.pretty(self, "check", printer)

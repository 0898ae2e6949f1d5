"""``EntryVerdicts``: every entry of one checked quantity as flat arrays.

A record per entry costs about 0.5 KB and, on an fc-heavy network, most of a check's time (and
past 1 GiB at 1.9M entries); the arrays cost 50 bytes an entry. ``EntryResult`` records are made
from them only for the entries asked for: the failing and notable ones a table lists, or all of
them when ``QuantityResult.entries`` is read (JSON, the Python API).
"""
from __future__ import annotations

import numpy as np

from ..record import Record
from .results import EntryResult

STATUSES = np.array(["ok", "fail", "kink", "unresolved"])
OK, FAIL, KINK, UNSEEN = range(4)     # UNSEEN: within tolerance, but its differences cannot resolve it


class EntryVerdicts(Record):
    """Per-entry arrays over the flat entries of a quantity (or its directions, with --fast);
    ``index_shape`` turns a flat position into the entry's index (user rank); ``status`` holds
    ``OK``, ``FAIL``, ``KINK`` or ``UNSEEN`` (``unresolved``); ``left`` and ``right`` matter where ``kink`` holds (a kink that
    failed included)."""

    __slots__ = ("index_shape", "analytic", "numeric", "abs_error", "status", "kink", "left", "right",
                 "notable")

    def __init__(self, index_shape: tuple[int, ...], analytic: np.ndarray, numeric: np.ndarray,
                 abs_error: np.ndarray, status: np.ndarray, kink: np.ndarray, left: np.ndarray,
                 right: np.ndarray, notable: np.ndarray):
        self.index_shape, self.analytic, self.numeric, self.abs_error = index_shape, analytic, numeric, abs_error
        self.status, self.kink, self.left, self.right, self.notable = status, kink, left, right, notable

    def __len__(self) -> int:
        return len(self.status)

    def records(self, which: np.ndarray | None = None) -> list[EntryResult]:
        """``EntryResult`` records of the entries where ``which`` holds (all when None), in order."""
        return [EntryResult(*fields) for fields in self.fields(which)]

    def fields(self, which: np.ndarray | None = None):
        """``EntryResult``'s fields, as Python values, of the entries where ``which`` holds (all when
        None), in order: index, analytic, numeric, abs_error, status, left, right, notable (a
        kink's one-sided quotients, None for the others)."""
        at = np.arange(len(self)) if which is None else np.flatnonzero(which)
        kink = self.kink[at]
        if self.index_shape:
            indices = map(tuple, np.stack(np.unravel_index(at, self.index_shape), axis=1).tolist())
        else:
            indices = [()] * len(at)
        kinks = kink.tolist()
        return zip(indices, self.analytic[at].tolist(), self.numeric[at].tolist(), self.abs_error[at].tolist(),
                   STATUSES[self.status[at]].tolist(),
                   (lo if k else None for lo, k in zip(self.left[at].tolist(), kinks)),
                   (hi if k else None for hi, k in zip(self.right[at].tolist(), kinks)), self.notable[at].tolist())

    def failing(self) -> list[EntryResult]:
        return self.records(self.status == FAIL)

    def flagged(self) -> list[EntryResult]:
        """The entries a table lists: failing, unresolved, or kinks worth a look."""
        return self.records((self.status == FAIL) | (self.status == UNSEEN) | self.notable)

    def unresolved(self) -> int:
        return int(np.count_nonzero(self.status == UNSEEN))

    def quiet_kinks(self) -> int:
        return int(np.count_nonzero((self.status == KINK) & ~self.notable))

    def disagrees(self) -> bool:
        """A failed entry whose difference was measured (not one that overflowed)."""
        return bool(np.any((self.status == FAIL) & np.isfinite(self.numeric)))

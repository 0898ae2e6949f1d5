"""``EntryVerdicts``: every entry of one checked quantity as flat arrays.

A record per entry costs about 0.5 KB and, on an fc-heavy network, most of a check's time (and
past 1 GiB at 1.9M entries); the arrays cost 27 bytes an entry. ``EntryResult`` records are made
from them only for the entries asked for: the first failing and notable ones a table lists, or
all of them when ``QuantityResult.entries`` is read (the Python API); JSON writes each entry from
its fields, a chunk at a time.
"""
from __future__ import annotations

import numpy as np

from ..record import Record
from .results import EntryResult

STATUSES = np.array(["ok", "fail", "kink", "unresolved"])
OK, FAIL, KINK, UNSEEN = range(4)     # UNSEEN: within tolerance, but its differences cannot resolve it
CHUNK = 65_536                        # entries made into Python values at a time


class EntryVerdicts(Record):
    """Per-entry arrays over the flat entries of a quantity (or its directions, with --fast);
    ``index_shape`` turns a flat position into the entry's index (user rank); ``status`` holds
    ``OK``, ``FAIL``, ``KINK`` or ``UNSEEN`` (``unresolved``). ``left`` and ``right``, given per
    entry, matter only where ``kink`` holds (a kink that failed included), so only the kinks' are
    kept: at the flat positions ``kinks``, in order (16 bytes an entry fewer)."""

    __slots__ = ("index_shape", "analytic", "numeric", "abs_error", "status", "kink", "kinks", "left", "right",
                 "notable")

    def __init__(self, index_shape: tuple[int, ...], analytic: np.ndarray, numeric: np.ndarray,
                 abs_error: np.ndarray, status: np.ndarray, kink: np.ndarray, left: np.ndarray,
                 right: np.ndarray, notable: np.ndarray):
        self.index_shape, self.analytic, self.numeric, self.abs_error = index_shape, analytic, numeric, abs_error
        self.status, self.kink, self.notable = status, kink, notable
        self.kinks = np.flatnonzero(kink)
        self.left, self.right = left[self.kinks], right[self.kinks]

    def __len__(self) -> int:
        return len(self.status)

    def records(self, which: np.ndarray | None = None, limit: int | None = None) -> list[EntryResult]:
        """``EntryResult`` records of the entries where ``which`` holds (all when None), in order;
        only the first ``limit`` of them when given."""
        at = self._where(which)
        return [EntryResult(*fields) for fields in self.fields_at(at if limit is None else at[:limit])]

    def fields(self, which: np.ndarray | None = None):
        """``EntryResult``'s fields, as Python values, of the entries where ``which`` holds (all when
        None), in order: index, analytic, numeric, abs_error, status, left, right, notable (a
        kink's one-sided quotients, None for the others)."""
        return self.fields_at(self._where(which))

    def fields_at(self, at: np.ndarray):
        """The fields of the entries at flat positions ``at``, made ``CHUNK`` entries at a time:
        Python values take 30 times the arrays' memory (a float is 24 bytes, a tuple 56 and up)."""
        for start in range(0, len(at), CHUNK):
            yield from self._chunk_fields(at[start:start + CHUNK])

    def _chunk_fields(self, at: np.ndarray):
        kink = self.kink[at]
        if self.index_shape:
            indices = map(tuple, np.stack(np.unravel_index(at, self.index_shape), axis=1).tolist())
        else:
            indices = [()] * len(at)
        left, right = np.zeros(len(at)), np.zeros(len(at))
        rank = np.searchsorted(self.kinks, at[kink])      # each kink's place among the kinks
        left[kink], right[kink] = self.left[rank], self.right[rank]
        kinks = kink.tolist()
        return zip(indices, self.analytic[at].tolist(), self.numeric[at].tolist(), self.abs_error[at].tolist(),
                   STATUSES[self.status[at]].tolist(),
                   (lo if k else None for lo, k in zip(left.tolist(), kinks)),
                   (hi if k else None for hi, k in zip(right.tolist(), kinks)), self.notable[at].tolist())

    def _where(self, which: np.ndarray | None) -> np.ndarray:
        return np.arange(len(self)) if which is None else np.flatnonzero(which)

    def failing(self) -> list[EntryResult]:
        return self.records(self.status == FAIL)

    def failing_count(self) -> int:
        return int(np.count_nonzero(self.status == FAIL))

    def worst_failing(self) -> EntryResult | None:
        """The failing entry of largest |error| (NaN counted as infinite; the first of equals)."""
        at = np.flatnonzero(self.status == FAIL)
        if not len(at):
            return None
        error = self.abs_error[at]
        worst = at[np.argmax(np.where(np.isnan(error), np.inf, error))]
        return EntryResult(*next(self.fields_at(np.array([worst]))))

    def flagged(self, limit: int | None = None) -> list[EntryResult]:
        """The entries a table lists: failing, unresolved, or kinks worth a look (the first
        ``limit`` of them when given: a record costs 0.5 KB, and all may fail)."""
        return self.records(self._flagged(), limit)

    def flagged_count(self) -> int:
        return int(np.count_nonzero(self._flagged()))

    def _flagged(self) -> np.ndarray:
        return (self.status == FAIL) | (self.status == UNSEEN) | self.notable

    def unresolved(self) -> int:
        return int(np.count_nonzero(self.status == UNSEEN))

    def quiet_kinks(self) -> int:
        return int(np.count_nonzero((self.status == KINK) & ~self.notable))

    def disagrees(self) -> bool:
        """A failed entry whose difference was measured (not one that overflowed)."""
        return bool(np.any((self.status == FAIL) & np.isfinite(self.numeric)))

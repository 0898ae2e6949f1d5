"""docs/reference.md §6 JSON: one document, arrays as nested lists in the user's rank, floats at full precision.

NaN and ±infinity, which JSON cannot express, are written as ``null`` (as JavaScript's
``JSON.stringify`` and pandas do), so every document parses with any JSON reader. Every control
character in a string is a ``\\u`` escape (json escapes C0 itself; DEL, C1 and bidi controls
too here), so the document is safe to print on a terminal.
"""
from __future__ import annotations

import itertools
import json
import math

import numpy as np

from ..quantities import gradient_of
from ..record import Record
from .reports import BackwardReport, ForwardReport
from ..text import UNPRINTABLE


def forward(report: ForwardReport, precision: int | None = None, full: bool = True) -> str:
    """``precision`` and ``full`` are accepted for symmetry with the other formats and ignored:
    JSON is exact and whole."""
    return _dump({
        "spec": report.spec, "name": report.name, "loss": report.loss, "output": report.output,
        "layers": [{"name": layer.name, "type": layer.kind, "shape": layer.shape, "reads": list(layer.reads),
                    "output": layer.output, **layer.statistics} for layer in report.layers],
        "notes": report.notes,
        **report.loss_parts,
    })


def backward(report: BackwardReport, precision: int | None = None, full: bool = True) -> str:
    """Gradients keyed by their quantity names (``grad.conv1.kernel``), as ``expect`` and
    ``explain`` name them; ``updated`` keys the parameters themselves (``conv1.kernel``)."""
    gradients = {gradient_of(name): values for name, values in report.gradients.items()}
    doc = {"spec": report.spec, "loss": report.loss, "gradients": gradients, "notes": report.notes}
    if report.lr is not None:
        doc["lr"] = report.lr
        doc["updated"] = report.updates
    return _dump(doc)


def check(results) -> str:
    """``results`` are ``SpecResult`` records; a spec that could not run carries ``error``."""
    return "".join(check_pieces(results))


def check_pieces(results):
    """``check``'s document in pieces to write as they come: a quantity's entries ``CHUNK`` at a
    time, so that a million of them (165 MB of text) are never one string, nor dicts."""
    specs = _Open([_spec(result) for result in results])
    yield from _pieces(_Open({"passed": all(r.passed for r in results), "specs": specs}))
    yield "\n"


def _spec(result) -> _Open:
    """One spec's results; ``error`` only for a spec that could not run, ``deltas`` only when checked."""
    spec = result.as_dict()
    if result.error is None:
        del spec["error"]
    if not result.deltas:
        del spec["deltas"]
    for key in ("gradients", "deltas"):
        if key in spec:
            spec[key] = _Open([_quantity(checked) for checked in spec[key]])
    spec["expect"] = [_expect(e) for e in result.expect]
    return _Open(spec)


class _Open:
    """A dict or list that holds entries (``_Entries``) somewhere inside: ``_pieces`` writes it
    item by item, where any other value is one ``json.dumps``."""

    def __init__(self, value):
        self.value = value


class _Entries:
    """A checked quantity's entries, written from their fields ``CHUNK`` at a time."""

    def __init__(self, checked):
        self.checked = checked


def _pieces(value):
    """The JSON text of ``value`` in pieces, exactly as ``_text`` of it whole would be."""
    if isinstance(value, _Entries):
        yield from _entry_pieces(value.checked)
    elif isinstance(value, _Open) and isinstance(value.value, dict):
        yield "{"
        for k, (key, item) in enumerate(value.value.items()):
            yield f"{', ' if k else ''}{_text(key)}: "
            yield from _pieces(item)
        yield "}"
    elif isinstance(value, _Open):
        yield "["
        for k, item in enumerate(value.value):
            if k:
                yield ", "
            yield from _pieces(item)
        yield "]"
    else:
        yield _text(value)


def _quantity(checked) -> _Open:
    """One checked gradient; its entries written from their fields (a million records through
    ``_plain`` took a minute)."""
    doc = _plain({name: None if name == "entries" else getattr(checked, name) for name in checked.FIELDS})
    doc["entries"] = _Entries(checked)
    doc["quantity"] = gradient_of(checked.quantity)
    return _Open(doc)


CHUNK = 16_384      # entries per piece of text, about 3 MB
_STATUS_TEXT = {status: json.dumps(status) for status in ("ok", "fail", "kink", "unresolved")}


def _entry_pieces(checked):
    """``[entry, …]`` as ``json.dumps`` writes the entries' dicts (``EntryResult``'s fields), a
    chunk of them per piece; numbers as Python's ``repr``, non-finite ones as null."""
    fields = iter(checked.entry_fields())
    yield "["
    first = True
    while chunk := list(itertools.islice(fields, CHUNK)):
        text = ", ".join(_entry_text(*entry) for entry in chunk)
        yield text if first else ", " + text
        first = False
    yield "]"


def _entry_text(index, analytic, numeric, error, status, left, right, notable) -> str:
    return (f'{{"index": [{", ".join([str(int(i)) for i in index])}], "analytic": {_number_text(analytic)}, '
            f'"numeric": {_number_text(numeric)}, "abs_error": {_number_text(error)}, '
            f'"status": {_STATUS_TEXT.get(status) or _text(str(status))}, "left": {_number_text(left)}, '
            f'"right": {_number_text(right)}, "notable": {"true" if notable else "false"}}}')


def _number_text(value) -> str:
    """A float as ``json.dumps`` writes it (its ``repr``); null for NaN, ±infinity and None."""
    return "null" if value is None or not math.isfinite(value) else repr(float(value))


def _expect(result) -> dict:
    """One expect value; ``note`` only when there is one (an array in another layout)."""
    doc = result.as_dict()
    if result.note is None:
        del doc["note"]
    return doc


def explain(explained, precision: int | None = None) -> str:
    """One explained gradient entry (``cnngrad.explain.Explained``), every number at full precision;
    ``more`` and ``more_total`` only when terms were left out."""
    doc = explained.as_dict()
    if not explained.more:
        del doc["more"], doc["more_total"]
    return _dump(doc)




def _dump(doc) -> str:
    return _text(doc) + "\n"


def _text(value) -> str:
    """``value`` as JSON text on one line, every control character escaped (``UNPRINTABLE``)."""
    text = json.dumps(_plain(value), allow_nan=False, ensure_ascii=False)
    return UNPRINTABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _plain(value):
    """``value`` with records as dicts, arrays as lists, numpy scalars as Python numbers and
    non-finite floats as None."""
    if isinstance(value, Record):
        value = value.as_dict()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return _plain_leaf(value)


def _plain_leaf(value):
    """A value that holds no records: arrays as lists, numpy scalars as Python numbers (through
    ``_plain``), non-finite floats as None (JSON has no NaN or infinity), anything else as it is."""
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

"""docs/reference.md §6 JSON: one document, arrays as nested lists in the user's rank, floats at full precision.

NaN and ±infinity, which JSON cannot express, are written as ``null`` (as JavaScript's
``JSON.stringify`` and pandas do), so every document parses with any JSON reader. Every control
character in a string is a ``\\u`` escape (json escapes C0 itself; DEL, C1 and bidi controls
too here), so the document is safe to print on a terminal.
"""
from __future__ import annotations

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
    doc = {"spec": report.spec, "loss": report.loss, "gradients": gradients}
    if report.lr is not None:
        doc["lr"] = report.lr
        doc["updated"] = report.updates
    return _dump(doc)


def check(results) -> str:
    """``results`` are ``SpecResult`` records; a spec that could not run carries ``error``."""
    specs = []
    for result in results:
        spec = result.as_dict()
        if result.error is None:
            del spec["error"]
        if not result.deltas:
            del spec["deltas"]
        for key in ("gradients", "deltas"):
            if key in spec:
                spec[key] = [_quantity(checked) for checked in spec[key]]
        spec["expect"] = [_expect(e) for e in result.expect]
        specs.append(spec)
    return _dump({"passed": all(r.passed for r in results), "specs": specs})


class _Done(list):
    """A list already made of JSON values (``_plain`` passes it through as it is)."""


def _quantity(checked) -> dict:
    """One checked gradient; its entries straight from their fields (a million records through
    ``_plain`` took a minute)."""
    doc = _plain({name: None if name == "entries" else getattr(checked, name) for name in checked.FIELDS})
    doc["entries"] = _Done(dict(zip(_ENTRY_KEYS, ([int(i) for i in index], _number(analytic), _number(numeric),
                                                  _number(error), str(status), _number(left), _number(right),
                                                  bool(notable))))
                           for index, analytic, numeric, error, status, left, right, notable
                           in checked.entry_fields())
    doc["quantity"] = gradient_of(checked.quantity)
    return doc


_ENTRY_KEYS = ("index", "analytic", "numeric", "abs_error", "status", "left", "right", "notable")


def _number(value):
    """A float as JSON has it: None for NaN and ±infinity (and for None)."""
    return None if value is None or not math.isfinite(value) else float(value)


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
    text = json.dumps(_plain(doc), allow_nan=False, ensure_ascii=False)
    return UNPRINTABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text) + "\n"


def _plain(value):
    """``value`` with records as dicts, arrays as lists, numpy scalars as Python numbers and
    non-finite floats as None."""
    if isinstance(value, _Done):
        return value
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

"""Diagnose wrong numbers: where a user's chain of values first went wrong, and which classic
backprop mistake reproduces them.

``diagnose(model, values)`` is the library face of ``cnngrad check SPEC --against FILE``: it
returns the ``SpecResult`` that ``check --format json`` writes (its ``expect`` entries with
``failing``, ``origin`` and ``diagnosis``, ``first_wrong`` and ``first_wrong_layer``), without the finite-difference check.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..gradcheck import expect as expect_check
from ..gradcheck.results import SpecResult
from ..model import CODE_TOLERANCE, Expectation, Model
from .catalogue import CATALOGUE
from .findings import explain_failures

__all__ = ["CATALOGUE", "diagnose", "explain_failures"]


def diagnose(model: Model, values: Mapping[str, np.ndarray], *,
             tolerance: tuple[float, float] = CODE_TOLERANCE) -> SpecResult:
    """Check ``values`` (quantity name, e.g. ``grad.conv1.kernel`` or ``conv1[0,1]``, → array in
    the user's rank) against ``model`` and diagnose the wrong ones. ``tolerance`` is the
    (rtol, atol) of values from code. Raises ValueError for an unknown name or a wrong size."""
    from ..spec.against import expectation_of
    expectations = [expectation_of(name, value, model, tolerance) for name, value in values.items()]
    right = model.values() if expectations else {}
    results = [expect_check.verify(e, right[e.quantity]) for e in expectations]
    first_wrong, layer = (None, None) if all(r.passed for r in results) else \
        explain_failures(model, expectations, results)
    return SpecResult(spec=model.path, name=model.name, passed=all(r.passed for r in results),
                      expect=results, first_wrong=first_wrong, first_wrong_layer=layer, notes=list(model.notes))

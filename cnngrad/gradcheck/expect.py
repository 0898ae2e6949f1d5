"""Verify a spec's ``expect:`` values: numbers written by hand or copied from a text.

``tolerance: auto`` accepts each number within half a unit in the last decimal written, so a
source that rounds (``0.0364`` for 0.0364182) passes and a wrong digit (``0.0365``) does not:
    "0.0364" → 5e-5,   "1.50" → 5e-3,   "2.5e-3" → 5e-5.
A number written without a decimal point ("12", "0", "1e-3") means that exact value, held to
``SLACK`` (1e-9) of the quantity's scale: ``loss: 2`` does not accept 1.541.
"""
from __future__ import annotations

import re

import numpy as np

from ..model import Expectation
from .results import ExpectResult

NUMBER = re.compile(r"^[+-]?(?P<int>\d*)(?:\.(?P<frac>\d*))?(?:[eE](?P<exp>[+-]?\d+))?$")
SLACK = 1e-9   # relative: a value exactly half a unit away passes despite binary rounding


def auto_tolerance(text: str) -> float:
    """Half a unit in the last decimal place of ``text``, a number as written in YAML; 0 (exact)
    for a number written without a decimal point."""
    match = NUMBER.match(text.strip().replace("_", ""))
    if not match or match.group("frac") is None:
        return 0.0   # "12", "1e-3", .inf and .nan carry no decimals: demand the exact value
    decimals = len(match.group("frac"))
    exponent = int(match.group("exp") or 0)
    return 0.5 * 10.0 ** (exponent - decimals)


def verify(expectation: Expectation, actual: np.ndarray) -> ExpectResult:
    """Compare one expectation with the computed quantity (already in the user's rank), entry by
    entry: each within its own tolerance, plus SLACK of its size (of the quantity's scale where the
    tolerance is 0, so that an exact 0 accepts float64 rounding of the quantity's other entries)."""
    actual = np.asarray(actual, dtype=np.float64)
    scale = float(np.max(np.abs(actual), initial=0.0))
    if expectation.index is not None:
        actual = actual[expectation.index]
    expected = np.asarray(expectation.values, dtype=np.float64)
    if expectation.tolerance is None:
        tolerance = np.vectorize(auto_tolerance, otypes=[float])(expectation.texts)
    else:
        tolerance = np.full(expected.shape, float(expectation.tolerance))
    error = np.abs(actual - expected)
    allowed = allowed_error(tolerance, expected, max(scale, float(np.max(np.abs(expected), initial=0.0))))
    shown = np.where(tolerance > 0, tolerance, allowed)
    passed = bool(np.all(error <= allowed))
    with np.errstate(over="ignore"):   # an error of 1e308 over a tolerance of 1e-9 is simply the worst
        ratio = np.where(allowed > 0, error / np.where(allowed > 0, allowed, 1), np.where(error > 0, np.inf, 0))
    # the row shows one tolerance: the largest error's when all passed (so no shown error exceeds
    # its shown tolerance), the worst failing entry's otherwise
    worst = np.unravel_index(int(np.argmax(error if passed else ratio)), expected.shape) if expected.ndim else ()
    return ExpectResult(
        quantity=expectation.label,
        passed=passed,
        max_abs_error=float(error.max()) if error.size else 0.0,
        tolerance=float(shown[worst]) if expected.ndim else float(shown),
        expected=expected.tolist(),
        actual=actual.tolist(),
        worst=tuple(int(i) for i in worst) if expected.ndim else None,
        line=expectation.line,
        column=expectation.column,
    )


def allowed_error(tolerance: np.ndarray, expected: np.ndarray, scale: float) -> np.ndarray:
    """The largest error each entry may have: its tolerance, plus SLACK of its size, or of
    ``scale`` (the quantity's) where the tolerance is 0 (an exact value)."""
    size = np.where(tolerance > 0, np.abs(expected), scale)
    return tolerance * (1 + SLACK) + SLACK * size

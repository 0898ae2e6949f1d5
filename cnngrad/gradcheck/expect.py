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
from . import layout
from .results import ExpectResult, FailingEntry

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


def entry_tolerance(expectation: Expectation, actual: np.ndarray) -> np.ndarray:
    """Each entry's tolerance: the spec's number; under auto half a unit in the last decimal
    written, or for values from code (``code`` = (rtol, atol))
    rtol·|computed entry| + atol·max(1, max|computed quantity|): a value that is 0 up to rounding
    (a sum of softmax deltas) is held to atol, a large one to atol relative to its size."""
    shape = np.shape(expectation.values)
    if expectation.tolerance is not None:
        return np.full(shape, float(expectation.tolerance))
    if expectation.code is None:
        return np.vectorize(auto_tolerance, otypes=[float])(expectation.texts)
    rtol, atol = expectation.code
    finite = np.isfinite(actual)
    scale = max(1.0, float(np.max(np.abs(actual[finite]), initial=0.0)))
    return np.where(finite, rtol * np.abs(np.where(finite, actual, 0.0)) + atol * scale, 0.0)


def verify(expectation: Expectation, actual: np.ndarray) -> ExpectResult:
    """Compare one expectation with the computed quantity (already in the user's rank), entry by
    entry: each within its own tolerance, plus SLACK of its size (of the quantity's scale where the
    tolerance is 0, so that an exact 0 accepts float64 rounding of the quantity's other entries)."""
    actual = np.asarray(actual, dtype=np.float64)
    scale = float(np.max(np.abs(actual[np.isfinite(actual)]), initial=0.0))
    if expectation.index is not None:
        actual = actual[expectation.index]
    expected = np.asarray(expectation.values, dtype=np.float64)
    if expected.shape != actual.shape:
        return layout.misshapen(expectation, expected, actual)
    tolerance = entry_tolerance(expectation, actual)
    finite = np.isfinite(actual) & np.isfinite(expected)
    same = _same_beyond(expected, actual)   # an entry beyond float64 matches only by identity
    with np.errstate(invalid="ignore"):
        error = np.where(finite, np.abs(actual - expected), np.where(same, 0.0, np.inf))
    written = np.abs(expected[np.isfinite(expected)])
    allowed = np.where(finite, allowed_error(tolerance, expected, max(scale, float(np.max(written, initial=0.0)))), 0.0)
    shown = np.where(tolerance > 0, tolerance, allowed)
    failed = np.where(finite, ~(error <= allowed), ~same)
    passed = not bool(np.any(failed))
    with np.errstate(over="ignore", invalid="ignore"):   # an error of 1e308 over 1e-9 is simply the worst
        ratio = np.where(failed, np.where(allowed > 0, error / np.where(allowed > 0, allowed, 1), np.inf), 0.0)
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
        failing=[] if passed else failing_entries(expectation, expected, actual, failed),
        line=expectation.line,
        column=expectation.column,
    )


def allowed_error(tolerance: np.ndarray, expected: np.ndarray, scale: float) -> np.ndarray:
    """The largest error each entry may have: its tolerance, plus SLACK of its size, or of
    ``scale`` (the quantity's) where the tolerance is 0 (an exact value)."""
    with np.errstate(invalid="ignore"):
        size = np.where(tolerance > 0, np.abs(expected), scale)
        return tolerance * (1 + SLACK) + SLACK * size


def _same_beyond(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Entries beyond float64 on both sides: the same ±inf, or a NaN written (JSON null) where
    cnngrad's entry is not finite."""
    return (~np.isfinite(actual)) & ((expected == actual) | np.isnan(expected))


def failing_entries(expectation: Expectation, expected: np.ndarray, actual: np.ndarray,
                    failed: np.ndarray) -> list[FailingEntry]:
    """Every entry outside its tolerance, in index order, indexed within the whole quantity."""
    where = [tuple(int(i) for i in at) for at in np.argwhere(failed)] if expected.ndim else [()]
    return [FailingEntry(index=expectation.index if expectation.index is not None else at,
                         expected=float(expected[at]), computed=float(actual[at]),
                         difference=float(expected[at] - actual[at]))
            for at in where]

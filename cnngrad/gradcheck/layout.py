"""A value from code whose shape is not the quantity's: say what it is (the transpose, or the same
entries in another layout) instead of failing to compare.

Only arrays with the quantity's number of entries get here; any other shape is a spec error.
"""
from __future__ import annotations

import numpy as np

from ..model import Expectation
from .results import Diagnosis, ExpectResult

# other layouts a student's code may hand over the same numbers in: (words, how to read them)
LAYOUTS = (
    ("the transpose of", lambda array, shape: array.T),
    ("its last two axes swapped", lambda array, shape: np.swapaxes(array, -1, -2)),
    ("the same entries in row-major (C) order but another shape", lambda array, shape: array.reshape(shape)),
    ("the same entries in column-major (F) order",
     lambda array, shape: array.reshape(shape[::-1]).T if len(shape) > 1 else array.reshape(shape, order="F")),
)


def shape_words(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape)) if shape else "a scalar"


def read_as(expected: np.ndarray, shape: tuple[int, ...]):
    """Each (words, array in ``shape``) that ``expected`` could be a layout of."""
    for words, read in LAYOUTS:
        try:
            array = read(expected, shape)
        except ValueError:
            continue
        if array.shape == shape:
            yield words, array


def misshapen(expectation: Expectation, expected: np.ndarray, actual: np.ndarray) -> ExpectResult:
    """A failed result whose ``note`` names the layout that holds cnngrad's numbers, if any does
    (within the expectation's tolerance), else that the shape differs."""
    from .expect import SLACK, entry_tolerance   # the one tolerance rule (expect imports this module)
    allowed = entry_tolerance(Expectation(expectation.quantity, None, actual, None, expectation.tolerance,
                                        0, 0, expectation.code or (1e-7, 1e-10)), actual)
    note = (f"has shape {shape_words(expected.shape)} but cnngrad's {expectation.quantity} is "
            f"{shape_words(actual.shape)}")
    diagnosis = []
    for words, array in read_as(expected, actual.shape):
        error = np.abs(array - actual)
        if np.all(error <= allowed * (1 + SLACK)):
            note += f": it holds {words} cnngrad's numbers"
            if words.startswith("the transpose") or words.startswith("its last two"):
                diagnosis.append(Diagnosis("transposed", None, float(error.max(initial=0.0)),
                                           f"your array is {words} the right one"))
            break
    return ExpectResult(quantity=expectation.label, passed=False, max_abs_error=float("nan"),
                        tolerance=float(np.max(allowed, initial=0.0)), expected=expected.tolist(),
                        actual=actual.tolist(), worst=None, diagnosis=diagnosis,
                        origin="introduced", note=note)

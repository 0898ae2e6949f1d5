"""The ``expect:`` section → ``Expectation`` records, checked against the built model's quantities.

Each number keeps its text as written, because ``tolerance: auto`` is half a unit in the last
decimal written (``1.50`` is good to ±0.005, ``1.5`` to ±0.05).
"""
from __future__ import annotations

import math

from .. import quantities as names
from ..model import CODE_TOLERANCE, Expectation, Model
from .nodes import Cursor
from .values import ValueReader, shape_text


def read_expect(cursor: Cursor, model: Model, values: ValueReader) -> list[Expectation]:
    """Each entry of ``expect:`` but ``tolerance:`` as an Expectation of a known quantity, its
    numbers (written, or {file: ...} from code) of the quantity's shape, under that tolerance."""
    known = names.known(model)
    tolerance = None
    entries = cursor.items("a mapping of quantity names (conv1, grad.conv1.kernel, ...) to values")
    for key, key_cursor, value in entries:
        if key == "tolerance":
            tolerance = _tolerance(value)
    out = []
    for key, key_cursor, value in entries:
        if key == "tolerance":
            continue
        name, index = _quantity(key, key_cursor, known, model)
        array, texts, code = _numbers(value, values)
        _check_shape(value, name, index, array, () if index is not None else known[name], code)
        out.append(Expectation(quantity=name, index=index, values=array, texts=texts,
                               tolerance=tolerance, line=key_cursor.line, column=key_cursor.column,
                               code=code))
    return out


def _numbers(value: Cursor, values: ValueReader):
    """(array, texts as written or None, tolerance from code or None) of one expect value."""
    if value.is_mapping:   # {file: ...}: numbers from code, held to CODE_TOLERANCE under auto
        if "file" not in {key for key, _, _ in value.items()}:
            value.fail("an expect value is numbers or {file: NAME} (.npy, .npz with key:, .csv, .txt)")
        return values.read(value), None, CODE_TOLERANCE
    written = values.literal(value)
    return written.values, written.texts, None


def _check_shape(value: Cursor, name: str, index, array, expected_shape: tuple, code) -> None:
    """Refuse a value not of the quantity's shape (numbers from code need only its size),
    pointing out a transposed grid."""
    if array.shape == expected_shape or (code is not None and array.size == math.prod(expected_shape)):
        return
    what = f"{names.label(name, index)} is one number" if index is not None \
        else f"{name} has shape {shape_text(expected_shape)}"
    hint = "; that is the transpose's shape: write one row per row of the quantity" \
        if len(array.shape) > 1 and array.shape == expected_shape[::-1] else ""
    value.fail(f"{what}, but the expected value has shape {shape_text(array.shape)}{hint}")


def _tolerance(cursor: Cursor) -> float | None:
    if cursor.is_scalar and cursor.node.value == "auto":
        return None
    if not cursor.is_scalar or cursor.node.tag.endswith(":str"):
        cursor.word(("auto",), "tolerance")  # names the choices
    value = float(cursor.number())
    if value < 0:
        cursor.fail(f"tolerance must not be negative, not {value}")
    return value


def _quantity(key: str, at: Cursor, known: dict, model: Model) -> tuple[str, tuple[int, ...] | None]:
    try:
        return names.parse(key, known, model)
    except ValueError as err:
        at.fail(str(err))

"""The ``expect:`` section → ``Expectation`` records, checked against the built model's quantities.

Each number keeps its text as written, because ``tolerance: auto`` is half a unit in the last
decimal written (``1.50`` is good to ±0.005, ``1.5`` to ±0.05).
"""
from __future__ import annotations

import re

from ..model import Expectation, Model
from .nodes import Cursor, brief, suggest
from .values import ValueReader, shape_text

QUANTITY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_.]*?)\s*(?:\[(?P<index>[^\]]*)\])?\Z")


def quantities(model: Model) -> dict[str, tuple[int, ...]]:
    """Every SPEC §2 name an expectation may use, with its shape in the user's rank."""
    shapes = dict(model.user_shapes)
    if model.has_loss:
        shapes["loss"] = ()
    names = ["input", "output"] + model.network.names + list(model.params)
    shapes.update({f"grad.{name}": model.user_shapes[name] for name in names})
    return shapes


def read_expect(cursor: Cursor, model: Model, values: ValueReader) -> list[Expectation]:
    known = quantities(model)
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
        expected_shape = () if index is not None else known[name]
        written = values.literal(value)
        if written.values.shape != expected_shape:
            what = f"{name}[{','.join(map(str, index))}] is one number" if index is not None \
                else f"{name} has shape {shape_text(expected_shape)}"
            value.fail(f"{what}, but the expected value has shape {shape_text(written.values.shape)}")
        out.append(Expectation(quantity=name, index=index, values=written.values, texts=written.texts,
                               tolerance=tolerance, line=key_cursor.line, column=key_cursor.column))
    return out


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
        return parse_quantity(key, known, model)
    except ValueError as err:
        at.fail(str(err))


def parse_quantity(key: str, known: dict, model: Model) -> tuple[str, tuple[int, ...] | None]:
    """``grad.conv1.kernel[0,1]`` → (``grad.conv1.kernel``, (0, 1)); ValueError says what is wrong."""
    match = QUANTITY.match(key)
    name = match.group("name") if match else key
    if name not in known:
        hint = " (loss: none has no loss value)" if name == "loss" and not model.has_loss else ""
        raise ValueError(f"unknown quantity {name!r}{hint}{suggest(name, list(known))} (known: {', '.join(known)})")
    if match.group("index") is None:
        return name, None
    shape, parts = known[name], match.group("index").split(",")
    if any(len(part.strip()) > 18 for part in parts):   # no shape is that large; int() may refuse it
        raise ValueError(f"index [{brief(match.group('index'), 40)}] is out of range for {name} "
                         f"of shape {shape_text(shape)}")
    try:
        index = tuple(int(part) for part in parts)
    except ValueError:
        raise ValueError(f"an index is whole numbers separated by commas, like {name}[0,1], "
                         f"not [{brief(match.group('index'), 40)}]") from None
    if len(index) != len(shape) or any(not 0 <= i < n for i, n in zip(index, shape)):
        raise ValueError(f"index [{','.join(map(str, index))}] is out of range for {name} of shape {shape_text(shape)}")
    return name, index

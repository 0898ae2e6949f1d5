"""The ``layers:`` list → one ``LayerSpec`` per entry: kind, name, checked settings and arrays.

Only what can be checked without shapes is checked here (known kinds and keys, positive sizes,
words from their lists); ``build`` checks how the layers fit together.
"""
from __future__ import annotations

import re

import numpy as np

from ..layers.conv import MODES
from ..layers.flatten import ORDERS
from ..layers.pooling import TIES, TYPES as POOL_TYPES
from ..record import Record
from .errors import quoted
from .nodes import Cursor, suggest
from .values import ValueReader

SETTINGS: dict[str, tuple[str, ...]] = {
    "conv": ("kernel", "bias", "stride", "padding", "dilation", "mode", "name"),
    "relu": ("name",),
    "leaky_relu": ("slope", "name"),
    "sigmoid": ("name",),
    "tanh": ("name",),
    "softmax": ("name",),
    "pool": ("type", "size", "stride", "padding", "ties", "name"),
    "flatten": ("order", "name"),
    "fc": ("weights", "bias", "name"),
}
REQUIRED = {"conv": ("kernel",), "pool": ("size",), "fc": ("weights",)}
RESERVED = ("input", "target", "output", "loss", "grad")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

class LayerSpec(Record):
    """One layer as written: ``options`` are checked hyperparameters, ``arrays`` its values,
    ``fields`` where each setting was written (for errors found later)."""

    __slots__ = ("kind", "name", "entry", "fields", "options", "arrays")

    def __init__(self, kind: str, name: str, entry: Cursor, fields: dict[str, Cursor] | None = None,
                 options: dict[str, object] | None = None, arrays: dict[str, np.ndarray] | None = None):
        self.kind, self.name, self.entry = kind, name, entry
        self.fields = {} if fields is None else fields
        self.options = {} if options is None else options
        self.arrays = {} if arrays is None else arrays

    def place(self, key: str) -> Cursor:
        """Where ``key`` was written, or the layer entry when it was not."""
        return self.fields.get(key, self.entry)


def read_layers(cursor: Cursor, values: ValueReader) -> list[LayerSpec]:
    """Every entry of ``layers:``, named, with names unique; ``[]`` is a loss-only example (the
    input is the output)."""
    entries = cursor.sequence("a list of layers")
    counts: dict[str, int] = {}
    seen: set[str] = set()
    layers = []
    for entry in entries:
        layer = _read_entry(entry, values)
        counts[layer.kind] = counts.get(layer.kind, 0) + 1
        if "name" in layer.fields:
            layer.name = _read_name(layer.fields["name"])
        else:
            layer.name = f"{layer.kind}{counts[layer.kind]}"
        if layer.name in seen:
            layer.place("name").fail(f"layer name {quoted(layer.name)} is used twice; names must be unique")
        seen.add(layer.name)
        layers.append(layer)
    return layers


def _read_name(cursor: Cursor) -> str:
    name = cursor.text()
    if not NAME.match(name):
        cursor.fail(f"a layer name is letters, digits and _ (not starting with a digit), not {quoted(name)}")
    if name in RESERVED:
        cursor.fail(f"{name!r} is a reserved quantity name ({', '.join(RESERVED)})")
    return name


def _kind(cursor: Cursor) -> str:
    word = cursor.node.value if cursor.is_scalar else None
    if word not in SETTINGS:
        shown = quoted(word) if word is not None else "this"
        cursor.fail(f"unknown layer kind {shown}{suggest(word or '', list(SETTINGS))} "
                    f"(allowed: {', '.join(SETTINGS)})")
    return word


def _read_entry(entry: Cursor, values: ValueReader) -> LayerSpec:
    """`- relu`, `- relu: {name: r}`, `- conv: {...}` (a sibling `name:` is accepted too)."""
    if entry.is_scalar:
        kind = _kind(entry)
        settings = None
        extra = {}
    else:
        items = entry.items("a layer: a kind (`- relu`) or a kind with settings (`- conv: {...}`)")
        kinds = [(key, key_cursor, value) for key, key_cursor, value in items if key != "name"]
        if len(kinds) != 1:
            where = kinds[1][1] if len(kinds) > 1 else entry
            where.fail("a layer entry is one kind with its settings, e.g. `- conv: {kernel: ...}`"
                       if kinds else "a layer entry needs a kind, e.g. `- relu`")
        _, key_cursor, settings = kinds[0]
        kind = _kind(key_cursor)
        extra = {key: value for key, _, value in items if key == "name"}
    fields = {} if settings is None or settings.is_null else \
        settings.mapping(SETTINGS[kind], what=f"{kind} settings")
    if "name" in fields and extra:
        extra["name"].fail("the layer's name is given twice")
    fields.update(extra)
    for key in REQUIRED.get(kind, ()):
        if key not in fields:
            (settings if settings is not None else entry).fail(f"{kind} needs {key!r}")
    layer = LayerSpec(kind=kind, name="", entry=entry, fields=fields)
    if kind in READERS:
        READERS[kind](layer, values)
    return layer


def read_padding(cursor: Cursor):
    """``valid`` | ``same`` | int | [ph, pw] | [[top, bottom], [left, right]] → "same" or nested pairs."""
    if cursor.is_scalar and cursor.node.value in ("valid", "same"):
        return "same" if cursor.node.value == "same" else ((0, 0), (0, 0))
    if cursor.is_sequence and any(item.is_sequence for item in cursor.sequence()):
        sides = cursor.sequence()
        if len(sides) != 2 or not all(side.is_sequence for side in sides):
            cursor.fail("padding as pairs is [[top, bottom], [left, right]]: two [before, after] pairs")
        return sides[0].pair(0, "padding"), sides[1].pair(0, "padding")
    if cursor.is_scalar and cursor.node.tag.endswith(":str"):
        cursor.word(("valid", "same"), "padding")
    ph, pw = cursor.pair(0, "padding")
    return (ph, ph), (pw, pw)


def _conv(layer: LayerSpec, values: ValueReader) -> None:
    f = layer.fields
    layer.arrays["kernel"] = values.read(f["kernel"])
    if "bias" in f and not f["bias"].is_null:
        layer.arrays["bias"] = values.read(f["bias"])
    layer.options = {
        "stride": f["stride"].pair(1, "stride") if "stride" in f else (1, 1),
        "dilation": f["dilation"].pair(1, "dilation") if "dilation" in f else (1, 1),
        "padding": read_padding(f["padding"]) if "padding" in f else ((0, 0), (0, 0)),
        "mode": f["mode"].word(MODES, "mode") if "mode" in f else "cross_correlation",
    }


def _pool(layer: LayerSpec, values: ValueReader) -> None:
    f = layer.fields
    size = f["size"].pair(1, "size")
    kind = f["type"].word(POOL_TYPES, "type") if "type" in f else "max"
    if "ties" in f and kind != "max":
        f["ties"].fail(f"ties applies to max pooling only, not {kind}")
    layer.options = {
        "type": kind,
        "size": size,
        "stride": f["stride"].pair(1, "stride") if "stride" in f else size,
        "padding": read_padding(f["padding"]) if "padding" in f else ((0, 0), (0, 0)),
        "ties": f["ties"].word(TIES, "ties") if "ties" in f else "first",
    }


def _leaky_relu(layer: LayerSpec, values: ValueReader) -> None:
    layer.options = {"slope": float(layer.fields["slope"].number()) if "slope" in layer.fields else 0.01}


def _flatten(layer: LayerSpec, values: ValueReader) -> None:
    order = layer.fields["order"].word(ORDERS, "order") if "order" in layer.fields else "C"
    layer.options = {"order": order}


def _fc(layer: LayerSpec, values: ValueReader) -> None:
    f = layer.fields
    layer.arrays["weights"] = values.read(f["weights"])
    if "bias" in f and not f["bias"].is_null:
        layer.arrays["bias"] = values.read(f["bias"])


READERS = {"conv": _conv, "pool": _pool, "leaky_relu": _leaky_relu, "flatten": _flatten, "fc": _fc}

"""The ``layers:`` list → one ``LayerSpec`` per entry: kind, name, checked settings and arrays.

Only what can be checked without shapes is checked here (known kinds and keys, positive sizes,
words from their lists); ``build`` checks how the layers fit together.
"""
from __future__ import annotations

import re

import numpy as np

from ..layers import REGISTRY, Setting
from ..record import Record
from .errors import quoted
from .nodes import BOOL, Cursor, kind_of, suggest
from .values import ValueReader

# each kind's settings and required ones, as its layer class declares them (``name`` for every
# kind, ``from`` for every kind that reads one value: it names that value, by default the previous)
SETTINGS: dict[str, tuple[str, ...]] = {kind: tuple(s.name for s in cls.settings) + ("name",)
                                        + (() if cls.joins else ("from",)) for kind, cls in REGISTRY.items()}
REQUIRED = {kind: required for kind, cls in REGISTRY.items()
            if (required := tuple(s.name for s in cls.settings if s.required))}
RESERVED = ("input", "target", "output", "loss", "losses", "data_loss", "penalty", "grad")
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
    kind, settings, sibling = _split_entry(entry)
    fields = _written_settings(kind, entry, settings, sibling)
    layer = LayerSpec(kind=kind, name="", entry=entry, fields=fields)
    _read_settings(layer, REGISTRY[kind].settings, values)
    return layer


def _split_entry(entry: Cursor) -> tuple[str, Cursor | None, dict[str, Cursor]]:
    """An entry's kind, its settings (None for `- relu`) and a `name:` written beside the kind
    (`- conv: {...}` with `name: c` under it), as ``{"name": cursor}`` or ``{}``."""
    if entry.is_scalar:
        return _kind(entry), None, {}
    items = entry.items("a layer: a kind (`- relu`) or a kind with settings (`- conv: {...}`)")
    kinds = [(key, key_cursor, value) for key, key_cursor, value in items if key != "name"]
    if len(kinds) != 1:
        where = kinds[1][1] if len(kinds) > 1 else entry
        where.fail("a layer entry is one kind with its settings, e.g. `- conv: {kernel: ...}`"
                   if kinds else "a layer entry needs a kind, e.g. `- relu`")
    _, key_cursor, settings = kinds[0]
    return _kind(key_cursor), settings, {key: value for key, _, value in items if key == "name"}


def _written_settings(kind: str, entry: Cursor, settings: Cursor | None,
                      sibling: dict[str, Cursor]) -> dict[str, Cursor]:
    """Where each setting of the entry was written, by key: only the kind's own keys, the name
    at most once (inside the settings or beside the kind), every required setting present."""
    fields = {} if settings is None or settings.is_null else \
        settings.mapping(SETTINGS[kind], what=f"{kind} settings")
    if "name" in fields and sibling:
        sibling["name"].fail("the layer's name is given twice")
    fields.update(sibling)
    if "from" in fields:
        fields["from"].text()   # a name, resolved once every layer is named (``build``)
    for key in REQUIRED.get(kind, ()):
        if key not in fields:
            (settings if settings is not None else entry).fail(f"{kind} needs {key!r}")
    return fields


def _read_settings(layer: LayerSpec, settings: tuple[Setting, ...], values: ValueReader) -> None:
    """Each declared setting, read as it says (or its default): arrays into ``layer.arrays`` (a
    null one is absent), the rest into ``layer.options``."""
    fields = layer.fields
    for setting in settings:
        cursor = fields.get(setting.name)
        if setting.reads == "array":
            _read_array(layer, setting, cursor, values)
            continue
        if cursor is None:
            default = setting.default
            is_copy = isinstance(default, str) and default.startswith("=")
            layer.options[setting.name] = layer.options[default[1:]] if is_copy else default
            continue
        if setting.only is not None:
            key, word, words = setting.only
            if layer.options[key] != word:
                cursor.fail(f"{setting.name} applies to {words} only, not {layer.options[key]}")
        layer.options[setting.name] = READS[setting.reads](cursor, setting)


def _read_array(layer: LayerSpec, setting: Setting, cursor: Cursor | None, values: ValueReader) -> None:
    """An array setting's value into ``layer.arrays``; absent or null leaves it out (the build fills
    its default), except that a required one written as null is an error at its node."""
    if cursor is None:
        return
    if not cursor.is_null:
        layer.arrays[setting.name] = values.read(cursor)
    elif setting.required:
        cursor.fail(f"{layer.kind} needs {setting.name!r}, but it is written as null: give its value")


def read_padding(cursor: Cursor):
    """``valid`` | ``same`` | int | [ph, pw] | [[top, bottom], [left, right]] → "same" or nested pairs."""
    if cursor.is_scalar and cursor.node.value in ("valid", "same"):
        return "same" if cursor.node.value == "same" else ((0, 0), (0, 0))
    if cursor.is_sequence and any(item.is_sequence for item in cursor.sequence()):
        return _padding_pairs(cursor)
    if cursor.is_scalar and cursor.node.tag.endswith(":str"):
        cursor.word(("valid", "same"), "padding")
    ph, pw = cursor.pair(0, "padding")
    return (ph, ph), (pw, pw)


def _padding_pairs(cursor: Cursor):
    """``[[top, bottom], [left, right]]`` → those two pairs, each entry 0 or more."""
    sides = cursor.sequence()
    if len(sides) != 2 or not all(side.is_sequence for side in sides):
        cursor.fail("padding as pairs is [[top, bottom], [left, right]]: two [before, after] pairs")
    return sides[0].pair(0, "padding"), sides[1].pair(0, "padding")


def read_names(cursor: Cursor, setting: Setting) -> list[tuple[str, Cursor]]:
    """A list of at least two value names (``[conv2, input]``), each with where it was written;
    ``build`` resolves them once every layer is named."""
    items = cursor.sequence(f"a list of names, e.g. {setting.name}: [conv2, input]")
    if len(items) < 2:
        cursor.fail(f"{setting.name} names at least 2 values to join, e.g. {setting.name}: [conv2, input], "
                    f"not {len(items)}")
    return [(item.text(), item) for item in items]


def read_flag(cursor: Cursor, setting: Setting) -> bool:
    """``true`` or ``false`` (YAML booleans only: 1, yes and on are refused)."""
    if cursor.is_scalar and cursor.node.tag == BOOL:
        return cursor.node.value.lower() == "true"
    cursor.fail(f"{setting.name} must be true or false, not {kind_of(cursor.node)}")


READS = {
    "names": read_names,
    "flag": read_flag,
    "pair": lambda cursor, setting: cursor.pair(setting.minimum, setting.name),
    "integer": lambda cursor, setting: cursor.integer(setting.minimum, setting.name),
    "padding": lambda cursor, setting: read_padding(cursor),
    "word": lambda cursor, setting: cursor.word(setting.choices, setting.name),
    "number": lambda cursor, setting: float(cursor.number()),
}

"""The top level of a spec → a ``Spec``: its values read and checked, its layers listed.

Optional keys given as ``null`` count as absent (docs/reference.md §1).
"""
from __future__ import annotations

import numpy as np

from ..losses import FORMS, LOSSES
from ..record import Record
from .layers import LayerSpec, read_layers
from .nodes import INT, Cursor
from .values import ValueReader

KEYS = ("name", "description", "input", "layers", "loss", "target", "upstream_grad", "expect")


class Located(Record):
    """An array and where it was written."""

    __slots__ = ("value", "at")

    def __init__(self, value: np.ndarray, at: Cursor):
        self.value, self.at = value, at


class Spec(Record):
    __slots__ = ("root", "name", "description", "input", "layers", "fields", "expect")

    def __init__(self, root: Cursor, name: str | None, description: str | None, input: Located,
                 layers: list[LayerSpec], fields: dict[str, Cursor], expect: Cursor | None):
        self.root, self.name, self.description = root, name, description
        self.input, self.layers = input, layers
        self.fields = fields        # the top-level entries, for the loss and target
        self.expect = expect


class Objective(Record):
    __slots__ = ("loss", "target", "class_index", "from_logits", "at", "settings")

    def __init__(self, loss: str, target: Located, class_index: bool, from_logits: bool = False,
                 at: Cursor | None = None, settings: dict[str, float] | None = None):
        self.loss = loss
        self.target = target                # the upstream gradient for loss none
        self.class_index = class_index      # the target is an integer class index (cross_entropy, multiclass_svm)
        self.from_logits = from_logits      # `{cross_entropy: {from: logits}}`
        self.at = at                        # where the loss was written (None: implied)
        self.settings = {} if settings is None else settings   # `{multiclass_svm: {margin: 1}}`


def read_spec(root: Cursor, values: ValueReader) -> Spec:
    """Check the top-level keys, read the input and layers; shapes are ``build``'s business."""
    fields = {key: value for key, value in
              root.mapping(KEYS, what="a spec: a mapping").items() if not value.is_null}
    for key in ("input", "layers"):
        if key not in fields:
            root.fail(f"missing key {key!r}; a spec needs at least input and layers")
    input_ = _read_input(fields["input"], values)
    layers = read_layers(fields["layers"], values)
    return Spec(
        root=root,
        name=fields["name"].text() if "name" in fields else None,
        description=fields["description"].text() if "description" in fields else None,
        input=input_,
        layers=layers,
        fields=fields,
        expect=fields.get("expect"),
    )


def read_objective(spec: Spec, values: ValueReader) -> Objective:
    """The loss and its target (or upstream gradient); read after the layers so that a layer's
    error, which changes the output's shape, is reported first."""
    root, fields = spec.root, spec.fields
    loss, from_logits, settings = _read_loss(root, fields)
    target_key = "upstream_grad" if loss == "none" else "target"
    other_key = "target" if loss == "none" else "upstream_grad"
    if other_key in fields:
        fields[other_key].fail(f"{other_key} does not go with loss: {loss}; "
                               + ("loss none takes upstream_grad (∂E/∂output)" if loss == "none"
                                  else "give target (upstream_grad is for loss: none)"))
    if target_key not in fields:
        root.fail(f"missing key {target_key!r}; loss: {loss} needs it"
                  + (" (∂E/∂ the final output)" if loss == "none" else ""))
    target = fields[target_key]
    class_index = loss in CLASS_INDEX_LOSSES and target.is_scalar and target.node.tag == INT
    return Objective(loss, Located(values.read(target), target), class_index, from_logits,
                     fields.get("loss"), settings)


CLASS_INDEX_LOSSES = ("cross_entropy", "multiclass_svm")   # an integer target is a class index


def _read_loss(root: Cursor, fields: dict[str, Cursor]) -> tuple[str, bool, dict[str, float]]:
    """The loss word, whether it reads logits and its settings; without one, ``upstream_grad``
    implies ``none``."""
    if "loss" in fields:
        cursor = fields["loss"]
        if cursor.is_mapping:
            return _read_loss_form(cursor)
        return cursor.word(tuple(LOSSES), "loss"), False, {}
    if "upstream_grad" in fields:
        return "none", False, {}
    root.fail(f"missing key 'loss' (one of {', '.join(LOSSES)})")


def _read_loss_form(cursor: Cursor) -> tuple[str, bool, dict[str, float]]:
    """``{cross_entropy: {from: logits}}`` (or ``probabilities``, the default), or a loss with
    its numeric ``options`` (``{multiclass_svm: {margin: 1}}``)."""
    entries = cursor.items("a loss: a word, or {cross_entropy: {from: logits}}")
    if len(entries) != 1:
        cursor.fail("give one loss, e.g. `loss: cross_entropy` or `loss: {cross_entropy: {from: logits}}`")
    _, key_cursor, settings = entries[0]
    name = key_cursor.word(tuple(LOSSES), "loss")
    options = LOSSES[name].options
    if options:
        fields = {} if settings.is_null else settings.mapping(options, what=f"{name} settings")
        return name, False, {key: float(value.number()) for key, value in fields.items()}
    if LOSSES[name].logits_form is None:
        settings.fail(f"{name} takes no settings (write `loss: {name}`); `from: logits` is for "
                      f"cross_entropy and binary_cross_entropy")
    if settings.is_null:
        return name, False, {}
    fields = settings.mapping(("from",), what=f"{name} settings")
    form = fields["from"].word(FORMS, "from") if "from" in fields else FORMS[0]
    return name, form == "logits", {}


def _read_input(cursor: Cursor, values: ValueReader) -> Located:
    array = values.read(cursor)
    if array.ndim not in (1, 2, 3):
        cursor.fail(f"input must be 2-D (H, W) or 3-D (C, H, W) (or 1-D, a vector), not {array.ndim}-D")
    return Located(array, cursor)

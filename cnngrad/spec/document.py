"""The top level of a spec → a ``Spec``: its values read and checked, its layers listed.

Optional keys given as ``null`` count as absent (docs/reference.md §1).
"""
from __future__ import annotations

import numpy as np

from ..losses import FORMS, LOSSES
from ..record import Record
from .layers import LayerSpec, read_layers
from .nodes import INT, Cursor, ScalarNode
from .values import ValueReader

KEYS = ("name", "description", "batch", "input", "layers", "loss", "target", "upstream_grad", "regularization",
        "expect")
REDUCTIONS = ("sum", "mean")   # how a loss combines the examples of a batch (the first is the default)


class Located(Record):
    """An array and where it was written."""

    __slots__ = ("value", "at")

    def __init__(self, value: np.ndarray, at: Cursor):
        self.value, self.at = value, at


class Spec(Record):
    __slots__ = ("root", "name", "description", "input", "layers", "fields", "expect", "batch")

    def __init__(self, root: Cursor, name: str | None, description: str | None, input: Located,
                 layers: list[LayerSpec], fields: dict[str, Cursor], expect: Cursor | None,
                 batch: int | None = None):
        self.root, self.name, self.description = root, name, description
        self.input, self.layers = input, layers
        self.fields = fields        # the top-level entries, for the loss and target
        self.expect = expect
        self.batch = batch          # `batch: N`: the input's first axis holds N examples; None: one example

    @property
    def examples(self) -> int:
        """How many examples the input holds (1 without ``batch``)."""
        return 1 if self.batch is None else self.batch

    @property
    def example_shape(self) -> tuple[int, ...]:
        """The shape of one example of the input (without the batch axis)."""
        shape = self.input.value.shape
        return shape if self.batch is None else shape[1:]


class Objective(Record):
    __slots__ = ("loss", "target", "class_index", "from_logits", "at", "settings", "reduction")

    def __init__(self, loss: str, target: Located, class_index: bool, from_logits: bool = False,
                 at: Cursor | None = None, settings: dict[str, float] | None = None,
                 reduction: str = REDUCTIONS[0]):
        self.loss = loss
        self.reduction = reduction          # `reduction: sum | mean` over the batch's examples
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
    batch = fields["batch"].integer(1, "batch") if "batch" in fields else None
    input_ = _read_input(fields["input"], values, batch)
    layers = read_layers(fields["layers"], values)
    return Spec(
        root=root,
        name=fields["name"].text() if "name" in fields else None,
        description=fields["description"].text() if "description" in fields else None,
        input=input_,
        layers=layers,
        fields=fields,
        expect=fields.get("expect"),
        batch=batch,
    )


def read_objective(spec: Spec, values: ValueReader) -> Objective:
    """The loss and its target (or upstream gradient); read after the layers so that a layer's
    error, which changes the output's shape, is reported first."""
    root, fields = spec.root, spec.fields
    loss, from_logits, settings, reduction = _read_loss(root, fields)
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
    class_index = loss in CLASS_INDEX_LOSSES and _integers(target, spec.batch is not None)
    return Objective(loss, Located(values.read(target), target), class_index, from_logits,
                     fields.get("loss"), settings, reduction)


CLASS_INDEX_LOSSES = ("cross_entropy", "multiclass_svm")   # an integer target is a class index


def _integers(target: Cursor, batched: bool) -> bool:
    """Whether a target is written as class indices: one integer, or with ``batch`` a list of
    integers (one per example)."""
    if not batched or not target.is_sequence:
        return target.is_scalar and target.node.tag == INT
    items = target.node.value
    return bool(items) and all(isinstance(item, ScalarNode) and item.tag == INT for item in items)


def _read_loss(root: Cursor, fields: dict[str, Cursor]) -> tuple[str, bool, dict[str, float], str]:
    """The loss word, whether it reads logits, its numeric settings and its reduction over the
    batch; without one, ``upstream_grad`` implies ``none``."""
    if "loss" in fields:
        cursor = fields["loss"]
        if cursor.is_mapping:
            return _read_loss_form(cursor)
        return cursor.word(tuple(LOSSES), "loss"), False, {}, REDUCTIONS[0]
    if "upstream_grad" in fields:
        return "none", False, {}, REDUCTIONS[0]
    root.fail(f"missing key 'loss' (one of {', '.join(LOSSES)})")


def _read_loss_form(cursor: Cursor) -> tuple[str, bool, dict[str, float], str]:
    """``{cross_entropy: {from: logits, reduction: mean}}`` (``from``: ``probabilities`` by default;
    ``reduction``: ``sum`` by default), or a loss with its numeric ``options``
    (``{multiclass_svm: {margin: 1}}``)."""
    entries = cursor.items("a loss: a word, or {cross_entropy: {from: logits}}")
    if len(entries) != 1:
        cursor.fail("give one loss, e.g. `loss: cross_entropy` or `loss: {cross_entropy: {from: logits}}`")
    _, key_cursor, settings = entries[0]
    name = key_cursor.word(tuple(LOSSES), "loss")
    if settings.is_null:
        return name, False, {}, REDUCTIONS[0]
    return (name, *_read_loss_settings(name, settings))


def _read_loss_settings(name: str, settings: Cursor) -> tuple[bool, dict[str, float], str]:
    """The settings of loss ``name``: whether it reads logits (``from``), its numeric options and
    its ``reduction``; loss none takes none, and only a loss with a logits form takes ``from``."""
    if name == "none":
        settings.fail("loss none takes no settings: upstream_grad is ∂E/∂(final output) itself, "
                      "already as the batch's examples share it (write `loss: none`)")
    options = LOSSES[name].options
    allowed = options + (("reduction",) if LOSSES[name].logits_form is None else ("from", "reduction"))
    if settings.is_mapping and "from" not in allowed:
        _reject_from(name, settings)
    fields = settings.mapping(allowed, what=f"{name} settings")
    form = fields["from"].word(FORMS, "from") if "from" in fields else FORMS[0]
    reduction = fields["reduction"].word(REDUCTIONS, "reduction") if "reduction" in fields else REDUCTIONS[0]
    numbers = {key: float(fields[key].number()) for key in options if key in fields}
    return form == "logits", numbers, reduction


def _reject_from(name: str, settings: Cursor) -> None:
    """A ``from`` key for a loss without a logits form, caught before the mapping's own check to
    say which losses take it."""
    for key, key_cursor, _ in settings.items():
        if key == "from":
            key_cursor.fail(f"{name} takes no `from` (it reads the output as it is); `from: logits` "
                            f"is for cross_entropy and binary_cross_entropy")


def _read_input(cursor: Cursor, values: ValueReader, batch: int | None) -> Located:
    """The input; with ``batch: N`` its first axis holds the N examples."""
    array = values.read(cursor)
    if batch is None:
        if array.ndim not in (1, 2, 3):
            cursor.fail(f"input must be 2-D (H, W) or 3-D (C, H, W) (or 1-D, a vector), not {array.ndim}-D")
        return Located(array, cursor)
    if array.ndim not in (2, 3, 4):
        cursor.fail(f"with batch: {batch} the input is (N, ...) for N examples, each a vector, a 2-D (H, W) "
                    f"or a 3-D (C, H, W) map: 2-D to 4-D, not {array.ndim}-D")
    if array.shape[0] != batch:
        cursor.fail(f"with batch: {batch} the input's first axis holds the examples, but it has "
                    f"{array.shape[0]}; give {batch} examples, or write batch: {array.shape[0]}")
    return Located(array, cursor)

"""``explain``: one gradient entry as the chain rule one step back from the loss, with its numbers.

The layer after the entry (or the loss, for the last layer's delta) supplies an ``Explanation`` in
its own terms (roles and engine indices); here each ``Ref`` becomes the docs/reference.md §2 name and index the
user wrote (``grad.conv1[0,2]``, ``input[1,3]``), and terms that are 0 are counted, not listed.
Past ``TERM_LIMIT`` nonzero terms (a kernel entry over a large map has one per output pixel) the
largest are listed, largest first, and the others summed into one figure.
"""
from __future__ import annotations

import math

import numpy as np

from . import quantities
from .layers.explanation import Explanation, Factor, Ref, Term
from .model import Model
from .record import Record


TERM_LIMIT = 50           # nonzero terms listed; past it, the largest, and the rest summed


class CannotExplain(ValueError):
    """The quantity named is not one gradient entry of this spec; the message says why."""


class ExplainedTerm(Record):
    """One nonzero summand: its factors as (text, value) and their product."""

    __slots__ = ("factors", "value")

    def __init__(self, factors: list[tuple[str, float]], value: float):
        self.factors, self.value = factors, value


class Explained(Record):
    """Everything ``explain`` shows: ``quantity`` (with index) = ``value`` (the engine's) = Σ terms
    (``total``; ``zeros`` terms that are 0 not listed; ``more`` nonzero terms past ``TERM_LIMIT``
    not listed, whose sum is ``more_total``). ``where`` names each symbol of ``formula``; ``notes``
    are lists of text and numbers."""

    __slots__ = ("spec", "name", "quantity", "value", "formula", "where", "terms", "zeros", "total", "notes",
                 "more", "more_total")

    def __init__(self, spec: str, name: str | None, quantity: str, value: float, formula: str,
                 where: list[tuple[str, str]], terms: list[ExplainedTerm], zeros: int, total: float,
                 notes: list[list] | None = None, more: int = 0, more_total: float = 0.0):
        self.spec, self.name, self.quantity, self.value = spec, name, quantity, value
        self.formula, self.where, self.terms, self.zeros, self.total = formula, where, terms, zeros, total
        self.notes = [] if notes is None else notes
        self.more, self.more_total = more, more_total

    def _repr_html_(self) -> str:
        """Heatmap tables in a notebook (``render.html``)."""
        from .render import notebook
        return notebook.html(self, "explain")

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """IPython's text display: the table ``cnngrad explain`` prints."""
        from .render import notebook
        notebook.pretty(self, "explain", printer)


def explain(model: Model, text: str) -> Explained:
    """Explain the gradient entry ``text`` (``grad.conv1.kernel[0,1]``) of ``model``."""
    name, index = _entry(model, text)
    trace = model.forward()
    model.loss(trace)   # an infinite loss is an error here too, with its cause
    grads = model.backward(trace)
    explanation, names = _explanation(model, quantities.value_of(name), index, trace, grads)
    values = np.array([term.value for term in explanation.terms], dtype=np.float64)
    listed, more, more_total = _largest(values)
    terms = [ExplainedTerm([(_factor_text(f, names, model), f.value) for f in explanation.terms[k].factors],
                           float(values[k])) for k in listed]
    notes = [[_ref_text(part, names, model) if isinstance(part, Ref) else part for part in note]
             for note in explanation.notes]
    return Explained(spec=model.path, name=model.name, quantity=quantities.label(name, index or None),
                     value=_gradient_entry(model, name, index, grads), formula=explanation.formula,
                     where=_where(explanation, names), terms=terms,
                     zeros=int(np.count_nonzero(values == 0)), total=math.fsum(values.tolist()), notes=notes,
                     more=more, more_total=more_total)


def _entry(model: Model, text: str) -> tuple[str, tuple[int, ...]]:
    """The gradient's name and the user index of the one entry ``text`` names; a gradient with
    one entry may be named without an index."""
    known = {name: shape for name, shape in quantities.known(model).items() if quantities.is_gradient(name)}
    try:
        name, index = quantities.parse(text.strip(), known, model)
    except ValueError as err:
        raise CannotExplain(f"explain {text}: {err}") from None
    shape = known[name]
    if index is None:
        if int(np.prod(shape)) != 1:
            raise CannotExplain(f"explain {text}: name one entry, like {name}[{','.join('0' * len(shape))}]")
        index = (0,) * len(shape)
    return name, index


def _where(explanation: Explanation, names: dict) -> list[tuple[str, str]]:
    """(symbol, quantity name) for each role symbol the formula uses, e.g. ("x", "conv1")."""
    roles = dict(names)
    return [(symbol, roles[role][0]) for role, symbol in explanation.symbols.items()
            if role in roles and f"{symbol}[" in explanation.formula]


def _largest(values: np.ndarray) -> tuple[list[int], int, float]:
    """The positions of the nonzero terms to list: all in order, or past ``TERM_LIMIT`` the
    largest |value| first; and how many nonzero terms are left out, with their exact sum (fsum)."""
    nonzero = np.flatnonzero(values)
    if len(nonzero) <= TERM_LIMIT:
        return nonzero.tolist(), 0, 0.0
    order = nonzero[np.argsort(-np.abs(values[nonzero]), kind="stable")]
    return order[:TERM_LIMIT].tolist(), len(order) - TERM_LIMIT, math.fsum(values[order[TERM_LIMIT:]].tolist())


def _gradient_entry(model: Model, name: str, index, grads) -> float:
    """The value of ``grad.<quantity>[index]`` from gradients already computed (user rank)."""
    quantity = quantities.value_of(name)
    if quantity == "input":
        value = grads.input
    elif quantity == "output":
        value = grads.outputs[model.network.names[-1]] if model.network.names else grads.input
    else:
        value = grads.params[quantity] if quantity in grads.params else grads.outputs[quantity]
    return float(model.user(quantity, value)[index])


def _explanation(model: Model, quantity: str, index, trace, grads) -> tuple[Explanation, dict]:
    """The explanation of ∂E/∂``quantity``[index] and its roles as {role: (name, engine shape)}:
    a parameter's by its layer, a delta the loss gives by the loss, any other by the next layer."""
    network = model.network
    names, last = network.names, len(network.names) - 1
    if quantity == "output":   # the last layer's output, or with no layers the input
        quantity = names[last] if names else "input"
    layer_name, _, pname = quantity.partition(".")
    if pname:
        return _param_explanation(model, names.index(layer_name), pname, quantity, index, trace, grads)
    k = -1 if quantity == "input" else names.index(quantity)
    if k == last:
        return _loss_explanation(model, k, quantity, index, trace)
    readers = [(reader, operand) for reader in sorted(set(network.consumers[k + 1]))
               for operand, value in enumerate(network.reads[reader]) if value == k + 1]
    parts = [_reader_explanation(model, reader, operand, k, quantity, index, trace, grads)
             for reader, operand in readers]
    return parts[0] if len(parts) == 1 else _summed(model, quantity, readers, parts)


def _reader_explanation(model: Model, reader: int, operand: int, k: int, quantity: str, index, trace, grads):
    """∂E/∂``quantity``[index] as far as layer ``reader`` (reading it as its ``operand``) passes
    it back: that layer's explanation, or the loss's for a final softmax/sigmoid fused with it."""
    network = model.network
    if network.fused and reader == len(network.layers) - 1:
        return _loss_explanation(model, k, quantity, index, trace)
    roles = _layer_roles(model, reader, operand)
    layer, at = network.layers[reader], _engine(model, quantity, roles["x"][1], index)
    arrays = _layer_arrays(model, reader, trace, grads)
    explanation = layer.explain_operand(operand, at, *arrays) if layer.joins else layer.explain_input(at, *arrays)
    return explanation, roles


def _summed(model: Model, quantity: str, readers, parts) -> tuple[Explanation, dict]:
    """A value read by several layers: ∂E/∂v = Σ over its readers of what each passes back, one
    group of terms per reader, in the order of the layers, each group's formula and sum a note.
    Each group's roles are kept apart (``dy@1``: the second reader's δ)."""
    network = model.network
    labels = [network.names[reader] + (f" as operand {operand + 1}" if sum(r == reader for r, _ in readers) > 1
                                       else "") for reader, operand in readers]
    terms, notes, roles = [], [], {}
    for group, (label, (explanation, own)) in enumerate(zip(labels, parts)):
        renamed = {role: f"{role}@{group}" for role in own}
        roles.update({renamed[role]: place for role, place in own.items()})
        group_terms = [Term([Factor(f.value, None if f.ref is None else Ref(renamed[f.ref.role], f.ref.index), f.form)
                             for f in term.factors]) for term in explanation.terms]
        terms += group_terms
        notes.append([f"through {label} ({len(group_terms)} term{'s' * (len(group_terms) != 1)}): "
                      f"{explanation.formula}; its sum ", math.fsum(term.value for term in group_terms)])
        notes += [[Ref(renamed[part.role], part.index) if isinstance(part, Ref) else part for part in note]
                  for note in explanation.notes]
    readers_text = ", ".join(labels)
    formula = f"∂E/∂v = Σ over the layers that read v ({readers_text}) of what each passes back, v = {quantity}"
    return Explanation(formula, terms, notes), roles


def _param_explanation(model: Model, k: int, pname: str, quantity: str, index, trace, grads):
    """∂E/∂ of parameter ``pname`` of layer ``k``, explained by that layer, with its roles."""
    roles = _layer_roles(model, k)
    return model.network.layers[k].explain_param(pname, _engine(model, quantity, roles[pname][1], index),
                                                 *_layer_arrays(model, k, trace, grads)), roles


def _loss_explanation(model: Model, k: int, quantity: str, index, trace):
    """∂E/∂ of the output of layer ``k`` (the last, or the logits of a fused loss), explained by
    the loss, with its roles y (output), t (target) and, fused, z (the logits)."""
    network = model.network
    last = len(network.names) - 1
    roles = {"y": ("output", network.output_shape), "t": ("target", network.output_shape)}
    if network.fused:   # the logits: the last layer's input
        roles["z"] = (network.value_name(network.reads[last][0]), network.in_shapes[last])
    at = _engine(model, quantity, network.out_shapes[k] if k >= 0 else network.input_shape, index)
    y, t = trace.output, model.target
    if k == last:
        return network.loss.explain(at, y, t), roles
    return network.loss.explain_fused(at, trace.inputs[-1], y, t), roles


def _layer_roles(model: Model, k: int, operand: int = 0) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Layer ``k``'s roles: x its input (the ``operand``-th of a layer that joins several), y its
    output, dy ∂E/∂y, and its parameters."""
    network = model.network
    name = network.names[k]
    value = network.reads[k][operand]
    roles = {"x": (network.value_name(value), network.value_shapes[value]),
             "y": (name, network.out_shapes[k]), "dy": (quantities.gradient_of(name), network.out_shapes[k])}
    roles.update({p: (f"{name}.{p}", network.param_shapes[f"{name}.{p}"]) for p in network.layers[k].param_names})
    return roles


def _layer_arrays(model: Model, k: int, trace, grads):
    """(x, cache, dy, params) of layer ``k``: what its explain methods take after the index."""
    network = model.network
    return (trace.inputs[k], trace.caches[k], grads.outputs[network.names[k]],
            network.params_of(k, model.params))


def _engine(model: Model, quantity: str, shape, index) -> tuple[int, ...]:
    """A user index of ``quantity`` as an index into the engine's array of ``shape``."""
    flat = np.ravel_multi_index(index, model.user_shapes[quantity]) if index else 0
    return tuple(int(i) for i in np.unravel_index(flat, shape))


def _ref_text(ref: Ref, names: dict, model: Model) -> str:
    """``grad.conv1[0,2]``: the user's name and index for an engine entry."""
    name, shape = names[ref.role]
    user_shape = model.user_shapes[quantities.value_of(name)]
    if not user_shape:
        return name
    index = np.unravel_index(np.ravel_multi_index(ref.index, shape), user_shape)
    return quantities.label(name, tuple(int(i) for i in index))


def _factor_text(factor, names: dict, model: Model) -> str:
    return factor.form if factor.ref is None else factor.form.format(_ref_text(factor.ref, names, model))

"""``explain``: one gradient entry as the chain rule one step back from the loss, with its numbers.

The layer after the entry (or the loss, for the last layer's delta) supplies an ``Explanation`` in
its own terms (roles and engine indices); here each ``Ref`` becomes the docs/reference.md §2 name and index the
user wrote (``grad.conv1[0,2]``, ``input[1,3]``), and terms that are 0 are counted, not listed.
Past ``TERM_LIMIT`` nonzero terms (a kernel entry over a large map has one per output pixel) the
largest are listed, largest first, and the others summed into one figure.

With ``batch: N`` an entry of the input or of a layer's output belongs to one example n: the
layer (or loss) explains it from example n's arrays, and its references name that example
(``grad.fc1[1,0]``). A parameter is shared by the examples: its gradient is the sum of each
example's terms. Under ``reduction: mean`` the loss's step carries the factor 1/N.
"""
from __future__ import annotations

import math

import numpy as np

from . import quantities
from .layers.explanation import Explanation, Factor, Ref, Term
from .model import Model
from .network import Gradients, Trace
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
    """Explain the gradient entry ``text`` (``grad.conv1.kernel[0,1]``) of ``model``; without a
    loss there is none, whatever ``text`` names (``Model.loss_missing`` says so)."""
    if model.loss_missing is not None:
        raise model.loss_missing
    name, index = _entry(model, text)
    trace = model.forward()
    model.loss(trace)   # an infinite loss is an error here too, with its cause
    grads = model.backward(trace)
    explanation, names = _any_explanation(model, quantities.value_of(name), index, trace, grads)
    explanation = _with_penalty(model, quantities.value_of(name), index, explanation, names)
    values = np.array([term.value for term in explanation.terms], dtype=np.float64)
    listed, more, more_total = _largest(values)
    terms = _listed_terms(explanation, listed, values, names, model)
    notes = [[_ref_text(part, names, model) if isinstance(part, Ref) else part for part in note]
             for note in explanation.notes]
    return Explained(spec=model.path, name=model.name, quantity=quantities.label(name, index or None),
                     value=_gradient_entry(model, name, index, grads), formula=explanation.formula,
                     where=_where(explanation, names), terms=terms,
                     zeros=int(np.count_nonzero(values == 0)), total=math.fsum(values.tolist()), notes=notes,
                     more=more, more_total=more_total)


def _any_explanation(model: Model, quantity: str, index, trace, grads) -> tuple[Explanation, dict]:
    """The explanation by example (``batch: N`` or a layer that mixes examples), or of the one example."""
    if model.batched or any(layer.mixes_examples for layer in model.network.layers):
        return _batch_explanation(model, quantity, index, trace, grads)
    return _explanation(model, quantity, index, trace, grads)


def _listed_terms(explanation: Explanation, listed: list[int], values: np.ndarray, names: dict,
                  model: Model) -> list[ExplainedTerm]:
    """The terms at positions ``listed``, their factors as (user text, value)."""
    return [ExplainedTerm([(_factor_text(f, names, model), f.value) for f in explanation.terms[k].factors],
                          float(values[k])) for k in listed]


def _entry(model: Model, text: str) -> tuple[str, tuple[int, ...]]:
    """The gradient's name and the user index of the one entry ``text`` names; a gradient with
    one entry may be named without an index."""
    every = quantities.known(model)
    known = {name: shape for name, shape in every.items() if quantities.is_gradient(name)}
    if quantities.split(text.strip())[0] in every.keys() - known.keys():
        raise CannotExplain(f"explain {text}: {_not_a_gradient(text.strip(), every)}")
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


def _not_a_gradient(text: str, known: dict) -> str:
    """What to write instead of a value (``conv1[0,1]``, ``loss``): its gradient's entry, or for
    the loss or a part of it (which have no ∂E/∂ of their own to explain) where its value is."""
    name, written = quantities.split(text)
    gradient = quantities.gradient_of(name)
    if gradient in known:
        entry = f"{gradient}[{written}]" if written is not None else \
            quantities.label(gradient, (0,) * len(known[gradient]) or None)
        return (f"explain takes a gradient entry: for ∂E/∂{text} write {entry} "
                "(the values themselves are printed by `cnngrad forward`)")
    if name == "target":
        return "explain takes a gradient entry, and the target has none: it is given, not computed"
    output = quantities.label("grad.output", (0,) * len(known["grad.output"]) or None)
    if name != "loss":      # the penalty, the data loss, an example's loss: parts of it
        return (f"explain takes a gradient entry: {text} itself is printed by `cnngrad forward`, and the "
                f"loss's gradient at the output by explain SPEC '{output}'")
    return ("explain takes a gradient entry: the loss E itself is printed by `cnngrad forward` (its "
            f"formula: docs/reference.md §3), and its gradient at the output by explain SPEC '{output}'")


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
    names = network.names
    quantity = _named_output(network, quantity)
    layer_name, _, pname = quantity.partition(".")
    if pname:
        return _param_explanation(model, names.index(layer_name), pname, quantity, index, trace, grads)
    k = -1 if quantity == "input" else names.index(quantity)
    if k == len(names) - 1:
        return _loss_explanation(model, k, quantity, index, trace)
    readers = _readers(network, k)
    parts = [_reader_explanation(model, reader, operand, k, quantity, index, trace, grads)
             for reader, operand in readers]
    return parts[0] if len(parts) == 1 else _summed(model, quantity, readers, parts)


def _named_output(network, quantity: str) -> str:
    """``output`` as the quantity it is: the last layer's output, or with no layers the input."""
    if quantity == "output":
        return network.names[-1] if network.names else "input"
    return quantity


def _readers(network, k: int) -> list[tuple[int, int]]:
    """(layer, operand) for each way a layer reads value ``k + 1`` (layer ``k``'s output), in layer order."""
    return [(reader, operand) for reader in sorted(set(network.consumers[k + 1]))
            for operand, value in enumerate(network.reads[reader]) if value == k + 1]


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
    labels = _reader_labels(model.network, readers)
    terms, notes, roles = [], [], {}
    for group, (label, (explanation, own)) in enumerate(zip(labels, parts)):
        renamed = {role: f"{role}@{group}" for role in own}
        roles.update({renamed[role]: place for role, place in own.items()})
        group_terms = [_renamed_term(term, renamed) for term in explanation.terms]
        terms += group_terms
        notes.append([f"through {label} ({len(group_terms)} term{'s' * (len(group_terms) != 1)}): "
                      f"{explanation.formula}; its sum ", math.fsum(term.value for term in group_terms)])
        notes += [[_renamed_ref(part, renamed) for part in note] for note in explanation.notes]
    readers_text = ", ".join(labels)
    formula = f"∂E/∂v = Σ over the layers that read v ({readers_text}) of what each passes back, v = {quantity}"
    return Explanation(formula, terms, notes), roles


def _reader_labels(network, readers) -> list[str]:
    """Each reader's layer name, with ``as operand i`` when that layer reads the value more than once."""
    return [network.names[reader] + (f" as operand {operand + 1}" if sum(r == reader for r, _ in readers) > 1
                                     else "") for reader, operand in readers]


def _renamed_term(term: Term, renamed: dict) -> Term:
    """``term`` with its factors' references to the group's own role names."""
    return Term([Factor(f.value, _renamed_ref(f.ref, renamed), f.form) for f in term.factors])


def _renamed_ref(part, renamed: dict):
    """A ``Ref`` moved to the group's role name; any other part (text, a number, None) as it is."""
    return Ref(renamed[part.role], part.index) if isinstance(part, Ref) else part


def _with_penalty(model: Model, quantity: str, index, explanation: Explanation, roles: dict) -> Explanation:
    """A regularized parameter's explanation with the L2 penalty's term 2 λ θ[index] added
    (∂(λ Σ θ²)/∂θ); any other explanation as it is."""
    if not model.network.regularizes(quantity):
        return explanation
    factor = model.network.regularization[0]
    pname = quantity.rsplit(".", 1)[1]
    at = _engine(model, quantity, roles[pname][1], index)
    term = Term([Factor(2.0 * factor, None, f"2λ = 2·{factor:g}"),
                 Factor(float(model.params[quantity][at]), Ref(pname, at))])
    symbol = explanation.symbols.get(pname, pname)
    return Explanation(f"{explanation.formula}; + 2λ·{symbol} (regularization: λ Σ {symbol}², λ = {factor:g})",
                       explanation.terms + [term], explanation.notes, explanation.symbols)


def _batch_explanation(model: Model, quantity: str, index, trace, grads) -> tuple[Explanation, dict]:
    """The explanation with ``batch: N`` (or a layer that mixes examples): an example's entry from
    that example's arrays, a parameter's as the sum of every example's terms; references carry
    the example index. A layer that mixes the examples explains from the whole batch itself."""
    network = model.network
    quantity = _named_output(network, quantity)
    pname = quantity.partition(".")[2]
    k = _mixing_step(model, quantity)
    if k is not None:
        return _whole_batch_explanation(model, k, pname, quantity, index, trace, grads)
    if pname:
        return _shared_param_explanation(model, quantity, index, trace, grads)
    if _mixing_readers(model.network, quantity):
        return _mixed_readers_explanation(model, quantity, index, trace, grads)
    return _example_entry_explanation(model, quantity, index, trace, grads)


def _mixing_step(model: Model, quantity: str) -> int | None:
    """The layer that mixes the examples (batch norm) whose step back alone explains ``quantity``:
    a parameter's own layer, or the one reader of a value; None when no such layer explains it
    alone (a value it reads beside other layers: ``_mixed_readers_explanation``)."""
    network = model.network
    layer_name, _, pname = quantity.partition(".")
    if pname:
        return _mixing_layer(network, network.names.index(layer_name))
    mixing = _mixing_readers(network, quantity)
    made_by = -1 if quantity == "input" else network.names.index(quantity)
    return mixing[0] if mixing and len(_readers(network, made_by)) == 1 else None


def _mixing_readers(network, quantity: str) -> list[int]:
    """The readers of value ``quantity`` that mix the examples (none for the final output, whose
    delta the loss explains)."""
    made_by = -1 if quantity == "input" else network.names.index(quantity)
    if made_by == len(network.names) - 1:
        return []
    return [reader for reader, _ in _readers(network, made_by) if network.layers[reader].mixes_examples]


def _mixed_readers_explanation(model: Model, quantity: str, index, trace, grads) -> tuple[Explanation, dict]:
    """A value that a layer mixing the examples (batch norm) reads beside other layers: ∂E/∂v = Σ
    over its readers of what each passes back (``_summed``), a mixing reader's part explained from
    the whole batch, any other's from the entry's example alone."""
    network = model.network
    k = -1 if quantity == "input" else network.names.index(quantity)
    n, local = (index[0], index[1:]) if model.batched else (0, index)
    example = _one_example(model, trace, grads, n)
    readers, parts = _readers(network, k), []
    for reader, operand in readers:
        if network.layers[reader].mixes_examples:
            parts.append(_whole_batch_explanation(model, reader, "", quantity, index, trace, grads))
            continue
        explanation, roles = _reader_explanation(example, reader, operand, k, quantity, local, example.trace,
                                                 example.grads)
        parts.append((_in_example(explanation, roles, n, model), _batch_roles(roles, model)))
    return _summed(model, quantity, readers, parts)


def _mixing_layer(network, k: int) -> int | None:
    """``k`` when layer ``k`` mixes the examples, else None."""
    return k if network.layers[k].mixes_examples else None


def _example_entry_explanation(model: Model, quantity: str, index, trace, grads) -> tuple[Explanation, dict]:
    """A per-example entry, explained from its example's arrays alone (the example first in its index)."""
    n, local = (index[0], index[1:]) if model.batched else (0, index)
    example = _one_example(model, trace, grads, n)
    explanation, roles = _explanation(example, quantity, local, example.trace, example.grads)
    return _in_example(explanation, roles, n, model), _batch_roles(roles, model)


def _shared_param_explanation(model: Model, quantity: str, index, trace, grads) -> tuple[Explanation, dict]:
    """A parameter shared by the examples: every example's terms, example after example."""
    network = model.network
    explanations = []
    for n in range(network.batch):
        example = _one_example(model, trace, grads, n)
        explanation, roles = _explanation(example, quantity, index, example.trace, example.grads)
        explanations.append(_in_example(explanation, roles, n, model))
    first = explanations[0]
    terms = [term for explanation in explanations for term in explanation.terms]
    notes = [note for explanation in explanations for note in explanation.notes]
    formula = first.formula
    if network.batch > 1:
        formula += ", summed over the examples"
        notes.append([f"summed over the batch's {network.batch} examples (the parameter is shared)"])
    return Explanation(formula, terms, notes, first.symbols), _batch_roles(roles, model)


def _whole_batch_explanation(model: Model, k: int, pname: str, quantity: str, index, trace, grads):
    """Layer ``k`` mixes the examples (batch norm): it explains its input's (or parameter's)
    entry from the whole batch's arrays, with the example first in every index."""
    network = model.network
    roles = _batch_roles(_layer_roles(model, k), model)
    arrays = _layer_arrays(model, k, trace, grads)
    if pname:
        at = _engine(model, quantity, roles[pname][1], index)
        return network.layers[k].explain_param(pname, at, *arrays), roles
    user_index = index if model.batched else (0,) + tuple(index)
    flat = np.ravel_multi_index(user_index, (network.batch,) + tuple(_example_shape(model, quantity)))
    at = tuple(int(i) for i in np.unravel_index(flat, roles["x"][1]))
    return network.layers[k].explain_input(at, *arrays), roles


def _example_shape(model: Model, quantity: str) -> tuple[int, ...]:
    """One example's user shape of a per-example quantity."""
    shape = model.user_shapes[quantity]
    return shape[1:] if model.batched else shape


def _one_example(model: Model, trace, grads, n: int) -> "Example":
    """Example ``n`` as a model of one example: its rows of the input, target, every layer's input
    and output and every gradient (which already carry the batch's reduction), and each layer's
    cache from its forward pass over that example's input alone (a layer that mixes the examples
    has none: it explains from the whole batch)."""
    network = model.network
    rows = slice(n, n + 1)

    def example(x):   # a layer's input: one array, or a tuple for a layer that joins several
        return tuple(a[rows] for a in x) if isinstance(x, tuple) else x[rows]

    with np.errstate(all="ignore"):
        caches = [None if layer.mixes_examples else layer.forward(example(x), network.params_of(k, model.params))[1]
                  for k, (layer, x) in enumerate(zip(network.layers, trace.inputs))]
    one = Trace(0, [example(x) for x in trace.inputs], [y[rows] for y in trace.outputs], caches,
                entry=trace.value(0)[rows])
    shapes = {name: _example_shape(model, name) if name in _per_example(model) else shape
              for name, shape in model.user_shapes.items()}
    grads_n = Gradients(grads.input[rows], {name: value[rows] for name, value in grads.outputs.items()}, grads.params)
    return Example(model, one, grads_n, shapes, None if model.target is None else model.target[rows])


def _per_example(model: Model) -> set[str]:
    """The quantities that carry the batch axis: the input, target, output and every layer's output."""
    return {"input", "target", "output", *model.network.names}


class Example:
    """One example of a batched model, as ``_explanation`` reads a model: its network, target,
    parameters and user shapes (without the batch axis), and its trace and gradients."""

    def __init__(self, model: Model, trace, grads, user_shapes, target):
        self.network, self.params, self.target = model.network, model.params, target
        self.user_shapes, self.trace, self.grads = user_shapes, trace, grads


def _in_example(explanation: Explanation, roles: dict, n: int, model: Model) -> Explanation:
    """The explanation of example ``n`` with its references moved into the batch (the example's
    index first); a loss step under ``reduction: mean`` gains the factor 1/N."""
    def moved(part):
        if isinstance(part, Ref) and roles[part.role][0] not in model.params:
            return Ref(part.role, (n,) + tuple(part.index))
        return part

    terms = [Term([Factor(f.value, moved(f.ref), f.form) for f in term.factors]) for term in explanation.terms]
    formula = explanation.formula
    if "t" in roles and model.network.loss.reduction == "mean" and model.network.batch > 1:   # the loss's step
        batch = model.network.batch
        terms = [Term(term.factors + [Factor(1.0 / batch, None, f"1/{batch} (mean)")]) for term in terms]
        formula += f"; times 1/N = 1/{batch} (reduction: mean over the batch)"
    notes = [[moved(part) for part in note] for note in explanation.notes]
    return Explanation(formula, terms, notes, explanation.symbols)


def _batch_roles(roles: dict, model: Model) -> dict:
    """The roles with the batch axis on every per-example array's engine shape."""
    return {role: (name, shape if name in model.params else (model.network.batch,) + tuple(shape))
            for role, (name, shape) in roles.items()}


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

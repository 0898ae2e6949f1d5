"""A read ``Spec`` → a runnable ``Model``: shapes checked layer by layer, arrays in engine layout.

Shapes are tracked in the rank the user wrote (``user`` shapes: a 2-D map stays 2-D); the engine
sees maps as (C, H, W), so a 2-D map (H, W) becomes (1, H, W) and a single filter (kh, kw) or
(C, kh, kw) becomes a bank of one. Every mismatch is a SpecError at the node to blame.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np

from ..layers import REGISTRY, Layer, ShapeError
from ..layers.base import ParamError, resolve_padding, unread
from ..losses import LOSSES, make_loss
from ..model import Model
from ..network import Network
from ..record import Record
from .budget import check_memory
from .document import Objective, Spec, read_objective
from .errors import SpecError, quoted
from .expect import read_expect
from .layers import LayerSpec
from .nodes import suggest
from .values import ValueReader, shape_text


class Built(Record):
    """One engine layer, its user-rank output shape, its parameters (short name → internal
    array, user shape) and a note for ``forward``'s summary (rows or columns it never reads)."""

    __slots__ = ("layer", "shape", "params", "note")

    def __init__(self, layer: Layer, shape: tuple[int, ...],
                 params: dict[str, tuple[np.ndarray, tuple[int, ...]]] | None = None, note: str | None = None):
        self.layer, self.shape = layer, shape
        self.params = {} if params is None else params
        self.note = note


def internal(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The engine's shape for a user shape: a 2-D map gains a channel axis."""
    return (1,) + shape if len(shape) == 2 else shape


def build_model(spec: Spec, path: str, values: ValueReader) -> Model:
    """The model of a read spec: its layers built in order (each shape checked), then its loss,
    target, regularization and expectations, and the memory a run needs checked."""
    limits = values.limits
    shape = spec.example_shape
    user_shapes = {"input": shape}
    params, layers, notes = {}, [], []
    places = {"input": _place(spec.input.at)}
    source = "input"
    rows = [("input", shape)]
    made = {"input": (0, shape)}            # value name → (its number in Network.reads, user shape)
    reads = []
    for k, layer in enumerate(spec.layers):
        with _showing_shapes(rows):
            read, built = _build_layer(spec, k, made)
        reads.append(tuple(made[name][0] for name, _ in read))
        _check_entries(spec, layer, built, limits.max_entries)
        _record_layer(layer, built, params, places, user_shapes)
        layers.append((layer.name, built.layer))
        if built.note:
            notes.append(built.note)
        shape, source = built.shape, layer.name
        made[layer.name] = (k + 1, shape)
        rows.append((layer.name, shape))
    _check_all_read(spec.layers, reads)
    user_shapes["output"] = shape
    objective, missing = _objective(spec, values)
    if objective is not None:
        user_shapes["target"] = shape
        _check_probabilities(spec, objective, source)
        notes += _twice_note(spec, objective)
    examples = spec.examples
    regularization = _regularization(spec, params, objective)
    network = _network(spec, internal(user_shapes["input"]), layers, objective, reads, regularization)
    check_memory(spec, network, params, limits.max_memory_bytes)
    target = None
    if objective is not None:
        with _showing_shapes(rows):
            target = _targets(objective, shape, source, spec.batch)
    if spec.batch is not None:   # every value of an example carries the batch axis; parameters do not
        user_shapes.update(_batched_shapes(spec, user_shapes, objective is not None))
    model = Model(path=path, network=network, params=params,
                  input=spec.input.value.reshape((examples,) + internal(spec.example_shape)),
                  target=target, user_shapes=user_shapes, name=spec.name,
                  description=spec.description, loss_missing=missing, notes=notes, places=places,
                  batched=spec.batch is not None)
    if spec.expect is not None:
        model.expect = read_expect(spec.expect, model, values)
    return model


def _build_layer(spec: Spec, k: int, made: dict) -> tuple[list[tuple[str, object]], Built]:
    """Layer ``k``'s reads (``_reads``) and its engine layer: a join of its operands, or its kind's
    builder on the one value it reads (batch_norm also given the number of examples)."""
    layer = spec.layers[k]
    read = _reads(spec.layers, k, made)
    if REGISTRY[layer.kind].joins:
        return read, _join(layer, [(name, made[name][1]) for name, _ in read])
    (source, _), = read
    builder = BUILDERS.get(layer.kind, _declared)
    built = builder(layer, made[source][1], source, spec.examples) if layer.kind == "batch_norm" \
        else builder(layer, made[source][1], source)
    return read, built


def _check_entries(spec: Spec, layer: LayerSpec, built: Built, max_entries: int) -> None:
    """A layer's output over all examples holds at most ``max_entries`` values (--max-entries)."""
    size = math.prod(built.shape) * spec.examples
    if size > max_entries:
        batch = "" if spec.batch is None else f"{spec.batch}×"
        layer.entry.fail(f"{layer.name} would output {batch}{shape_text(built.shape)} = {size} values, "
                         f"more than {max_entries} (Limits.max_entries; raise it with --max-entries)")


def _record_layer(layer: LayerSpec, built: Built, params: dict, places: dict, user_shapes: dict) -> None:
    """Enter a built layer's parameters, YAML places and user shapes (of its output, its
    parameters and, for batch norm, its batch statistics) under their quantity names."""
    places[layer.name] = _place(layer.entry)
    for pname, (array, user_shape) in built.params.items():
        params[f"{layer.name}.{pname}"] = array
        places[f"{layer.name}.{pname}"] = _place(layer.place(pname))
        user_shapes[f"{layer.name}.{pname}"] = user_shape
    user_shapes[layer.name] = built.shape
    if built.layer.mixes_examples:   # its batch statistics, one per feature (Model.values)
        user_shapes.update({f"{layer.name}.{key}": (built.layer.features,) for key in ("mean", "var")})


def _network(spec: Spec, input_shape: tuple[int, ...], layers: list, objective: Objective | None,
             reads: list[tuple[int, ...]], regularization) -> Network:
    """The engine network of the built layers and the loss (none without an objective)."""
    try:
        return Network(input_shape, layers,
                       None if objective is None else make_loss(objective.loss, objective.from_logits,
                                                              objective.settings, objective.reduction),
                       reads, batch=spec.examples, regularization=regularization)
    except ShapeError as err:  # each layer's shape rule ran above (_output_shape); still blame the spec
        spec.root.fail(str(err))


def _batched_shapes(spec: Spec, user_shapes: dict, has_target: bool) -> dict[str, tuple[int, ...]]:
    """With ``batch: N`` the user shapes of the example's values, each with the batch axis N first."""
    names = ["input", "output", *(["target"] if has_target else []), *(layer.name for layer in spec.layers)]
    return {name: (spec.examples,) + user_shapes[name] for name in names}


def _reads(layers: list[LayerSpec], k: int, made: dict) -> list[tuple[str, object]]:
    """The values layer ``k`` reads, as (name, where it is named): its ``inputs:`` (add,
    concat), its ``from:``, or the value just before it. Each name must be the input or an
    earlier layer (``made``); anything else is an error saying what may be written."""
    layer = layers[k]
    if "inputs" in layer.options:
        named = layer.options["inputs"]
    elif "from" in layer.fields:
        named = [(layer.fields["from"].text(), layer.fields["from"])]
    else:
        return [(layers[k - 1].name if k else "input", layer.entry)]
    later = {other.name: j for j, other in enumerate(layers) if j >= k}
    for name, cursor in named:
        if name in made:
            continue
        earlier = ", ".join(made)
        if name == layer.name:
            cursor.fail(f"{name} cannot read its own output; name the input or an earlier layer ({earlier})")
        if name in later:
            cursor.fail(f"{name} is layers[{later[name]}], after this layer: a layer reads the input or an "
                        f"earlier layer ({earlier}); move {name} before it")
        cursor.fail(f"unknown value {quoted(name)}; name the input or an earlier layer ({earlier})"
                    f"{suggest(name, list(made))}")
    return named


def _join(layer: LayerSpec, operands: list[tuple[str, tuple[int, ...]]]) -> Built:
    """add or concat of the named values: add needs one shape (its rank is the first operand's),
    concat maps of one H×W (or vectors), joined along channels."""
    at = layer.place("inputs")
    listing = ", ".join(f"{name} is {shape_text(s)}" for name, s in operands)
    if layer.kind == "add":
        return _add(operands, at, listing)
    return _concat(operands, at, listing)


def _add(operands: list[tuple[str, tuple[int, ...]]], at, listing: str) -> Built:
    """add: every operand of the first one's shape (in engine layout), which is the output's."""
    (_, shape), rest = operands[0], operands[1:]
    for name, other in rest:
        if internal(other) != internal(shape):
            at.fail(f"add needs operands of one shape, but {listing}; add values of equal shape "
                    f"(a 1×1 conv can match the channels)")
    return Built(REGISTRY["add"](), shape)


def _concat(operands: list[tuple[str, tuple[int, ...]]], at, listing: str) -> Built:
    """concat: vectors end to end, or maps of one H×W stacked along channels; not the two mixed."""
    (_, shape), rest = operands[0], operands[1:]
    maps = [len(internal(s)) == 3 for _, s in operands]
    if any(maps) != all(maps):
        at.fail(f"concat joins maps with maps or vectors with vectors, but {listing}; flatten the maps "
                f"first to join them with vectors")
    if not all(maps):
        return Built(REGISTRY["concat"](), (sum(s[0] for _, s in operands),))
    if any(internal(s)[1:] != internal(shape)[1:] for _, s in rest):
        sizes = ", ".join(f"{name} is {shape_text(internal(s)[1:])}" for name, s in operands)
        at.fail(f"concat joins maps along channels, so their height × width must agree, but {sizes}; "
                f"pad or pool the branches to one size (padding: same keeps a stride-1 conv's size)")
    return Built(REGISTRY["concat"](), (sum(internal(s)[0] for _, s in operands),) + internal(shape)[1:])


def _check_all_read(layers: list[LayerSpec], reads: list[tuple[int, ...]]) -> None:
    """Every layer's output but the last is read by a later layer: one that is not would move
    nothing the loss sees, and is most likely a ``from:`` or ``inputs:`` naming the wrong layer."""
    read = {value for values in reads for value in values}
    for k, layer in enumerate(layers[:-1]):
        if k + 1 not in read:
            layer.entry.fail(f"{layer.name}'s output is never read ({layers[k + 1].name} reads "
                             f"{_names(layers, reads[k + 1])}); name {layer.name} in a later layer's "
                             f"from: or inputs:, or remove it")


def _names(layers: list[LayerSpec], values: tuple[int, ...]) -> str:
    """``conv2 and input``: the names of value numbers."""
    names = ["input" if v == 0 else layers[v - 1].name for v in values]
    return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + f" and {names[-1]}"


def _place(cursor) -> tuple[int, int]:
    return cursor.line, cursor.column


@contextmanager
def _showing_shapes(rows: list[tuple[str, tuple[int, ...]]]):
    """A SpecError raised inside gets the table of the shapes so far as its ``details`` (name and
    output shape, one line each), so a shape error shows where the shape went."""
    try:
        yield
    except SpecError as err:
        width = max(len(name) for name, _ in rows)
        err.details = tuple(f"{name.ljust(width)}  {shape_text(shape)}" for name, shape in rows)
        raise


def _objective(spec: Spec, values: ValueReader) -> tuple[Objective | None, SpecError | None]:
    """The loss and target; a spec with neither (nor upstream_grad) has none, which only
    ``forward`` can run: the error that says so is kept for the commands that need them."""
    if any(key in spec.fields for key in ("loss", "target", "upstream_grad")):
        return read_objective(spec, values), None
    root = spec.root
    return None, SpecError(root.file, root.line, root.column, root.path,
                           f"missing key 'loss' (one of {', '.join(LOSSES)}); backward, check and "
                           f"explain need a loss and its target (forward runs without)")


def _regularization(spec: Spec, params: dict[str, np.ndarray],
                    objective: Objective | None) -> tuple[float, tuple[str, ...]] | None:
    """``regularization: {l2: λ, params: [conv1.kernel, fc1.weights]}``: E gains λ Σ θ² over those
    parameters (λ as written, so ½λ is written as the number it is). It adds to a loss: not to
    ``loss: none``, whose E is only implied by its upstream gradient."""
    cursor = spec.fields.get("regularization")
    if cursor is None:
        return None
    fields = cursor.mapping(("l2", "params"), required=("l2", "params"), what="regularization")
    factor = fields["l2"].number()
    if factor < 0:
        fields["l2"].fail(f"l2 is the factor λ of λ Σ θ², at least 0, not {factor:g}")
    names = _regularized(fields["params"], params)
    if "loss" not in spec.fields and "target" not in spec.fields and "upstream_grad" not in spec.fields:
        cursor.fail("regularization adds to a loss: give loss and target too")
    if objective is not None and objective.loss == "none":
        cursor.fail("regularization adds λ Σ θ² to a loss, but loss: none has none (upstream_grad stands "
                    "for ∂E/∂output): give a loss and its target, or leave regularization out")
    return factor, tuple(names)


def _regularized(cursor, params: dict[str, np.ndarray]) -> list[str]:
    """The ``params:`` list of ``regularization``: at least one name, each a parameter, none twice."""
    names = []
    for item in cursor.sequence("a list of parameter names, e.g. [conv1.kernel, fc1.weights]"):
        name = item.text()
        if name not in params:
            item.fail(f"no parameter {quoted(name)}{suggest(name, list(params))} (the parameters: "
                      f"{', '.join(params) or 'none'})")
        if name in names:
            item.fail(f"{name} is listed twice; its penalty would count once")
        names.append(name)
    if not names:
        cursor.fail("name the parameters to regularize, e.g. [conv1.kernel, fc1.weights]")
    return names


PROBABILITY_LAYER = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}
DISTRIBUTION_SLACK = 0.01   # how far from 1 a written distribution may sum (rounded probabilities)


def _check_probabilities(spec: Spec, objective: Objective, source: str) -> None:
    """An entropy loss of probabilities needs probabilities: a final softmax (a distribution) for
    cross_entropy, a final sigmoid for binary_cross_entropy, or with no layers an input of them."""
    layer = PROBABILITY_LAYER.get(objective.loss)
    if layer is None or objective.from_logits:
        return
    fix = (f"add `- {layer}` as the last layer, or write `loss: {{{objective.loss}: {{from: logits}}}}` "
           f"to take {source}'s values as logits (as PyTorch's "
           f"{'F.cross_entropy' if layer == 'softmax' else 'F.binary_cross_entropy_with_logits'} does)")
    reads = "a distribution" if layer == "softmax" else "probabilities"
    if spec.layers:
        last = spec.layers[-1]
        if last.kind != layer:
            objective.at.fail(f"{objective.loss} reads {reads}, but the last layer {last.name} is "
                              f"{last.kind}, not {layer}: {fix}")
        return
    _check_input_probabilities(spec, objective, layer, reads, fix)


def _twice_note(spec: Spec, objective: Objective) -> list[str]:
    """A logits form after its own activation (softmax → cross_entropy from logits) applies it
    twice: valid, the numbers are the network's as written, but hardly meant; forward says so."""
    layer = PROBABILITY_LAYER.get(objective.loss)
    if layer is None or not objective.from_logits or not spec.layers or spec.layers[-1].kind != layer:
        return []
    last, reads = spec.layers[-1].name, "distribution" if layer == "softmax" else "probabilities"
    return [f"{last} is a {layer}, and {objective.loss} from logits applies {layer} again: the loss reads "
            f"{layer}({last}). Write `loss: {objective.loss}` to read {last}'s {reads}, or drop "
            f"`- {layer}` to keep the logits form"]


def _check_input_probabilities(spec: Spec, objective: Objective, layer: str, reads: str, fix: str) -> None:
    """With no layers the input is the output: each entry in [0, 1], and for cross_entropy (whose
    ``layer`` is softmax) each example's entries summing to 1 within DISTRIBUTION_SLACK."""
    y = spec.input.value
    outside = np.argwhere((y < 0) | (y > 1))
    if len(outside):
        index = tuple(int(i) for i in outside[0])
        objective.at.fail(f"{objective.loss} reads {reads}, and with no layers the input is the "
                          f"output, but input[{', '.join(map(str, index))}] is {y[index]:g}: {fix}")
    examples = y.reshape(spec.examples, -1)
    for n, total in enumerate(examples.sum(axis=1).tolist()):
        if layer == "softmax" and abs(total - 1.0) > DISTRIBUTION_SLACK:
            which = f"example {n}'s entries" if spec.batch is not None else "its entries"
            objective.at.fail(f"cross_entropy reads a distribution, and with no layers the input is the "
                              f"output, but {which} sum to {total:g}, not 1 (to within "
                              f"{DISTRIBUTION_SLACK:g}): {fix}")


def _targets(objective: Objective, shape: tuple[int, ...], source: str, batch: int | None) -> np.ndarray:
    """The target of every example in engine layout, (N, *output): without ``batch`` the one
    target; with ``batch: N`` one class index per example, or an array whose first axis is N."""
    if batch is None:
        return _target(objective, shape, source)[None]
    if objective.class_index:
        return _batch_class_targets(objective, shape, source, batch)
    return _batch_array_targets(objective, shape, source, batch)


def _batch_class_targets(objective: Objective, shape: tuple[int, ...], source: str, batch: int) -> np.ndarray:
    """With ``batch: N`` and class indices: a list of N integers, each made one-hot."""
    target, at = objective.target.value, objective.target.at
    if target.shape != (batch,):
        at.fail(f"with batch: {batch} the class indices are one per example: a list of {batch} "
                f"integers, not {shape_text(target.shape)}")
    return np.stack([_one_hot(int(index), shape, source, at) for index in target.tolist()])


def _batch_array_targets(objective: Objective, shape: tuple[int, ...], source: str, batch: int) -> np.ndarray:
    """With ``batch: N`` a target (or upstream_grad) array of N × the output's shape, checked for
    the loss (range, one-hot) and put in engine layout."""
    target, at = objective.target.value, objective.target.at
    key = "upstream_grad" if objective.loss == "none" else "target"
    if target.ndim == 0 or target.shape[0] != batch:
        at.fail(f"with batch: {batch} the {key} holds one per example, shape {batch}×{shape_text(shape)}"
                f" (the output's {shape_text(shape)} for each of the {batch} examples), not "
                f"{shape_text(target.shape)}"
                + ("; class indices are a list of integers" if objective.loss in ("cross_entropy", "multiclass_svm")
                   and len(shape) == 1 else ""))
    if target.shape[1:] != shape and not (target.ndim == 1 and math.prod(shape) == 1):
        at.fail(f"with batch: {batch} each example's {key} has the output's shape {shape_text(shape)} "
                f"({source}), but the {key} has shape {shape_text(target.shape)}, not "
                f"{batch}×{shape_text(shape)}")
    _check_target_range(objective, target)
    if objective.loss == "multiclass_svm":
        _check_one_hot(objective, target, shape, source)
    return target.reshape((batch,) + internal(shape))


def _target(objective: Objective, shape: tuple[int, ...], source: str) -> np.ndarray:
    """The target (or upstream gradient) in engine layout; a class index becomes one-hot."""
    target, at = objective.target.value, objective.target.at
    key = "upstream_grad" if objective.loss == "none" else "target"
    if objective.class_index:
        return _one_hot(int(target), shape, source, at)
    if target.ndim == 0 and math.prod(shape) == 1:   # `target: 1` for a single output
        target = target.reshape(shape)
    if target.shape != shape:
        hint = "; an integer target is a class index" if objective.loss in ("cross_entropy", "multiclass_svm") \
            and len(shape) == 1 else ""
        at.fail(f"{key} has shape {shape_text(target.shape)} but the output ({source}) has shape "
                f"{shape_text(shape)}{hint}")
    _check_target_range(objective, target)
    if objective.loss == "multiclass_svm":
        _check_one_hot(objective, target, shape, source)
    return target.reshape(internal(shape))


def _check_one_hot(objective: Objective, target: np.ndarray, shape, source: str) -> None:
    """multiclass_svm scores classes: a vector output, and a target naming one class (one-hot)
    for each example."""
    at = objective.target.at
    if len(shape) != 1:
        at.fail(f"multiclass_svm needs a vector of class scores, but {source} gives {shape_text(shape)}")
    if not (np.isin(target, (0.0, 1.0)).all() and (target.reshape(-1, shape[0]).sum(axis=1) == 1).all()):
        at.fail("the target of multiclass_svm is a class index (an integer such as 2) or one-hot "
                "(a single 1, the rest 0)")


def _one_hot(index: int, shape: tuple[int, ...], source: str, at) -> np.ndarray:
    """The class ``index`` of a vector output of ``shape`` as a one-hot target."""
    if len(shape) != 1:
        at.fail(f"a class index needs a vector output, but {source} gives {shape_text(shape)}")
    if not 0 <= index < shape[0]:
        at.fail(f"class index {index} is out of range: {source} gives {shape[0]} classes (0..{shape[0] - 1})")
    one_hot = np.zeros(shape[0])   # O(n): np.eye(n)[index] would hold n² floats
    one_hot[index] = 1.0
    return one_hot


TARGET_RANGES = {"cross_entropy": (0.0, math.inf, "≥ 0"), "binary_cross_entropy": (0.0, 1.0, "in [0, 1]")}


def _check_target_range(objective: Objective, target: np.ndarray) -> None:
    """An entropy loss's target is probabilities (else −Σ t log y is no cross-entropy, and can be
    negative or unbounded below): ≥ 0 for cross_entropy, in [0, 1] for binary_cross_entropy."""
    if objective.loss not in TARGET_RANGES:
        return
    low, high, words = TARGET_RANGES[objective.loss]
    outside = np.argwhere((target < low) | (target > high))
    if len(outside):
        index = tuple(int(i) for i in outside[0])
        objective.target.at.fail(f"target[{', '.join(map(str, index))}] is {target[index]:g}, but the target "
                                 f"of {objective.loss} is probabilities, each {words}")


def _padding(layer: LayerSpec, span: tuple[int, int], stride: tuple[int, int], shape):
    """The padding as pairs; ``same`` resolved for the input's size (TensorFlow's rule at a stride
    above 1, see ``resolve_padding``; a vector input, which the layer's shape rule refuses next,
    gets none)."""
    padding = layer.options["padding"]
    if padding != "same":
        return padding
    return resolve_padding("same", span, stride, shape[-2:]) if len(shape) >= 2 else ((0, 0), (0, 0))


def _output_shape(layer: LayerSpec, engine: Layer, shape, source: str) -> tuple[int, ...]:
    """The engine's output shape by the layer's own shape rule; a ShapeError it raises is a spec
    error at the setting it blames (or the layer's entry), naming the input."""
    try:
        return engine.output_shape(internal(shape))
    except ShapeError as err:
        layer.place(err.setting).fail(err.naming(source))


def _conv(layer: LayerSpec, shape, source):
    kernel, at = layer.arrays["kernel"], layer.place("kernel")
    if kernel.ndim not in (2, 3, 4):
        at.fail(f"kernel must be 2-D (kh, kw), 3-D (C, kh, kw) or 4-D (D, C, kh, kw), not {kernel.ndim}-D")
    if kernel.ndim == 2 and len(shape) == 3 and shape[0] != 1:
        at.fail(f"the kernel has 1 channel(s) but its input ({source}) has {shape[0]}; a 2-D kernel "
                f"is for a 2-D input, write (C, kh, kw) for C channels")
    bank = kernel.reshape((1,) * (4 - kernel.ndim) + kernel.shape)
    filters, kh, kw = bank.shape[0], bank.shape[2], bank.shape[3]
    stride, dilation = layer.options["stride"], layer.options["dilation"]
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    padding = _padding(layer, span, stride, shape)
    groups = layer.options["groups"]
    if filters % groups:
        layer.place("groups").fail(f"groups {groups} must divide the kernel's {filters} filter(s) (its first "
                                   f"axis): each group has D/G filters; write a divisor of {filters}")
    settings = (bank.shape, stride, padding, dilation, layer.options["mode"])
    out_hw = _output_shape(layer, REGISTRY["conv"](*settings, groups=groups), shape, source)[1:]
    out = (filters,) + out_hw if kernel.ndim == 4 else out_hw
    bias, untied = _conv_bias(layer, filters, out, kernel.ndim == 4)
    engine = REGISTRY["conv"](*settings, untied, groups)
    note = _dropped(layer.name, source, shape, padding, (kh, kw), dilation, stride, out_hw)
    return Built(engine, out, {"kernel": (bank, kernel.shape),
                               "bias": (bias.reshape(internal(out) if untied else (filters,)), bias.shape)},
                 note)


def _conv_bias(layer: LayerSpec, filters: int, out, bank: bool):
    """The bias as the user sees it, and whether it is untied (one value per output entry)."""
    tied = (filters,) if bank else ()
    bias = layer.arrays.get("bias")
    if bias is None:
        return np.zeros(tied), False
    if bias.shape == out:
        return bias, True
    if bias.shape == tied or bias.shape == (filters,):   # one per filter: [b] for a single filter
        return bias, False
    if bias.ndim == 0:   # one number for every filter of a bank
        return np.full(tied, float(bias)), False
    per_filter = f"{filters} values (one per filter)" if bank else "one value [b] (the filter's)"
    written = f"a list of {bias.size} values" if bias.ndim == 1 else f"a {shape_text(bias.shape)} array"
    layer.place("bias").fail(f"bias must be a scalar, {per_filter}, or an untied bias of the output's "
                             f"shape {shape_text(out)}; got {written}")


def _pool(layer: LayerSpec, shape, source):
    size, stride, dilation = layer.options["size"], layer.options["stride"], layer.options["dilation"]
    padding = _padding(layer, tuple(r * (k - 1) + 1 for r, k in zip(dilation, size)), stride, shape)
    if layer.options["type"] == "max":
        for axis, side in ((axis, side) for axis in range(2) for side in padding[axis]):
            if side > size[axis] // 2:
                layer.place("padding").fail(
                    f"max-pool padding {side} is more than half the window {shape_text(size)} "
                    f"(at most {size[axis] // 2}); a window could hold only padding (−∞)")
    engine = REGISTRY["pool"](**{**layer.options, "padding": padding})
    out_hw = _output_shape(layer, engine, shape, source)[1:]
    empty = engine.empty_window(internal(shape))
    if empty is not None:
        layer.entry.fail(f"window {list(empty)} of {layer.name} reads only padding, no entry of {source} "
                         f"(max would be −∞, an average without padding 0/0); use less padding or dilation")
    return Built(engine, shape[:-2] + out_hw,
                 note=_dropped(layer.name, source, shape, padding, size, dilation, stride, out_hw))


def _dropped(name: str, source: str, shape, padding, size, dilation, stride, out_hw) -> str | None:
    """``pool1 drops the last row and column of relu1: …``, or None when every entry of the map
    is read by some window (padding that no window reaches is not the user's data)."""
    skipped = [unread(shape[-2 + axis], padding[axis][0], size[axis], dilation[axis], stride[axis], out_hw[axis])
               for axis in range(2)]
    if not any(len(entries) for entries in skipped):
        return None
    rows, columns = (_entries_text(entries, shape[-2 + axis], ("row", "column")[axis])
                     for axis, entries in enumerate(skipped))
    window = shape_text(size) + (f" (dilation {shape_text(dilation)})" if dilation != (1, 1) else "")
    steps = stride[0] if stride[0] == stride[1] else shape_text(stride)
    what = _rows_and_columns(rows, columns)
    return f"{name} drops {what} of {source}: no {window} window at stride {steps} reads them"


def _rows_and_columns(rows: str, columns: str) -> str:
    """The dropped rows and columns as one phrase: ``the last row and column``; ``rows 1 and 3,
    and the last column,`` (commas where a part has its own "and"); or the part that is not ''."""
    if rows == "the last row" and columns == "the last column":
        return "the last row and column"
    if rows and columns and (" and " in rows or " and " in columns):
        return f"{rows}, and {columns},"
    return " and ".join(part for part in (rows, columns) if part)


def _entries_text(entries, size: int, noun: str) -> str:
    """``the last 2 rows``, ``rows 1 and 3``, ``columns 1, 2 and 4`` (at most 6 listed), or ''."""
    count = len(entries)
    if not count:
        return ""
    if entries[0] == size - count:
        return f"the last {noun}" if count == 1 else f"the last {count} {noun}s"
    if count == 1:
        return f"{noun} {entries[0]}"
    listed = [str(i) for i in entries[:6]]
    if count > 6:
        return f"{count} {noun}s ({', '.join(listed)}, …)"
    return f"{noun}s {', '.join(listed[:-1])} and {listed[-1]}"


def _declared(layer: LayerSpec, shape, source):
    """A kind built from its declaration alone: the engine from the read settings and the written
    parameters' shapes (``from_spec``), the output by its own shape rule, and each parameter (a
    declared ``array`` setting) checked against ``param_shapes``: an omitted one takes its declared
    default in every entry, one number is spread over every entry. A 2-D map's added channel axis
    is dropped again from the output and from the parameters' user shapes."""
    kind = REGISTRY[layer.kind]
    try:
        engine = kind.from_spec(layer.options, {name: array.shape for name, array in layer.arrays.items()})
    except ParamError as err:
        layer.place(err.setting).fail(str(err))
    out = _output_shape(layer, engine, shape, source)
    wanted = engine.param_shapes(internal(shape))
    params = {setting.name: _param(layer, engine, setting, wanted[setting.name], shape)
              for setting in kind.settings if setting.reads == "array"}
    return Built(engine, _user_rank(out, shape), params)


def _param(layer: LayerSpec, engine: Layer, setting, wanted, shape):
    """One declared parameter as (internal array, user shape): as written, spread from one number,
    or its default when omitted; any other shape is an error at the parameter, worded by the kind."""
    user = _user_rank(wanted, shape)
    array = layer.arrays.get(setting.name)
    if array is None:
        array = np.full(user, float(setting.default))
    elif array.ndim == 0 and user != ():
        array = np.full(user, float(array))
    elif array.shape != user:
        layer.place(setting.name).fail(engine.param_mismatch(setting.name, array.shape, user, layer.name))
    return array.reshape(wanted), array.shape


def _user_rank(engine_shape, shape):
    """An engine shape as the user writes it: (1, H, W) is (H, W) when the input was a 2-D map."""
    if len(shape) == 2 and len(engine_shape) == 3 and engine_shape[0] == 1:
        return engine_shape[1:]
    return engine_shape


MASK_LISTED = 64   # a dropout mask of at most this many entries is listed in forward's summary


def _dropout(layer: LayerSpec, shape, source):
    """Dropout's mask, written (0/1, the input's shape) or drawn from ``seed`` as NumPy's
    ``default_rng(seed).random(shape) >= p``; ``forward``'s summary says what it keeps."""
    p, mask, seed = layer.options["p"], layer.arrays.get("mask"), layer.options["seed"]
    if not 0 <= p < 1:
        layer.place("p").fail(f"p must be at least 0 and less than 1 (the kept entries are scaled by "
                              f"1/(1 − p)), not {p:g}")
    if (mask is None) == (seed is None):
        (layer.place("seed") if mask is not None else layer.entry).fail(
            "dropout needs a mask (0/1, the shape of its input) or a seed to draw one, not both"
            if mask is not None else "dropout needs a mask (0/1, the shape of its input) or a seed to draw one")
    if mask is None:
        mask, how = (np.random.default_rng(seed).random(shape) >= p).astype(np.float64), \
            f"drawn by NumPy's default_rng({seed}).random(shape) ≥ p"
    else:
        if mask.shape != tuple(shape):
            layer.place("mask").fail(f"the mask has shape {shape_text(mask.shape)} but its input ({source}) "
                                     f"has shape {shape_text(shape)}")
        if not np.isin(mask, (0.0, 1.0)).all():
            layer.place("mask").fail("every entry of a dropout mask is 0 (dropped) or 1 (kept)")
        how = "as written"
    listed = f": {mask.astype(int).tolist()}" if mask.size <= MASK_LISTED else ""
    note = (f"{layer.name} keeps {int(mask.sum())} of {mask.size} entries of {source} (mask {how}, "
            f"p = {p:g}){listed}; each kept entry is scaled by 1/(1 − p) = {1 / (1 - p):g}")
    return Built(REGISTRY["dropout"](p, mask.reshape(internal(shape))), tuple(shape), note=note)


def _per_feature(layer: LayerSpec, key: str, features: int, default: float, what: str) -> np.ndarray:
    """A per-feature parameter of ``features`` values: as written, a scalar copied, or ``default``."""
    value = layer.arrays.get(key)
    if value is None:
        return np.full(features, default)
    if value.ndim == 0:
        return np.full(features, float(value))
    if value.shape != (features,):
        layer.place(key).fail(f"{layer.name}.{key} has shape {shape_text(value.shape)} but its input has "
                              f"{features} {what}: give {features} values (one per {what[:-1]}) or one number")
    return value


def _batch_norm(layer: LayerSpec, shape, source, batch: int = 1):
    """Batch norm of a vector (per feature) or a map (per channel; a 2-D map is one channel)."""
    features, what = (shape[0], "features") if len(shape) == 1 else (internal(shape)[0], "channels")
    if batch * math.prod(internal(shape)[1:]) < 2:   # each statistic over a single value: x̂ = 0
        over = f"{batch} example" if len(shape) == 1 else f"{batch} example and 1×1 positions"
        layer.entry.fail(f"batch_norm normalizes each of its {what} over the batch, but {source} gives one "
                         f"value per {what[:-1]} ({over}): write `batch: N` with N ≥ 2 examples "
                         f"(PyTorch refuses it too)")
    eps = layer.options["eps"]
    if not eps > 0:
        layer.place("eps").fail(f"eps must be greater than 0 (PyTorch's default is 1e-5), not {eps:g}")
    gamma = _per_feature(layer, "gamma", features, 1.0, what)
    beta = _per_feature(layer, "beta", features, 0.0, what)
    engine = REGISTRY["batch_norm"](features, eps, batch)
    out = _output_shape(layer, engine, shape, source)
    return Built(engine, out[1:] if len(shape) == 2 else out,
                 {"gamma": (gamma, gamma.shape), "beta": (beta, beta.shape)})


# kinds whose settings or parameters need more than ``_declared`` (the rest are built by it)
BUILDERS = {"conv": _conv, "pool": _pool, "batch_norm": _batch_norm, "dropout": _dropout}

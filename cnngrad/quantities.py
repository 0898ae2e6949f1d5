"""Quantity names (docs/reference.md §2): parse and print ``grad.conv1.kernel[0,1]``, and the chain's order.

A name is a value (``input``, ``conv1``, ``conv1.kernel``, ``output``, ``loss``) or the gradient
of one (``grad.`` + that name), with an optional 0-based index. Along the computation the values
come first, input → output, then the loss, then the deltas from the loss back to the input, each
parameter's gradient right after the delta of its layer's output (it is computed from it).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import Model

GRAD = "grad."
PATTERN = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_.]*?)\s*(?:\[(?P<index>[^\]]*)\])?\Z")


def split(text: str) -> tuple[str, str | None]:
    """``grad.conv1.kernel[0,1]`` → (``grad.conv1.kernel``, ``"0,1"``); the index as written, or None."""
    match = PATTERN.match(text)
    if not match:
        return text, None
    return match.group("name"), match.group("index")


def parse_index(text: str) -> tuple[int, ...]:
    """``"0, 1"`` → (0, 1); ValueError when a part is not a whole number."""
    return tuple(int(part) for part in text.split(","))


def label(name: str, index: tuple[int, ...] | None = None) -> str:
    """The printed form: ``grad.conv1.kernel[0,1]``, or the bare name without an index."""
    return name if index is None else f"{name}[{','.join(map(str, index))}]"


def is_gradient(name: str) -> bool:
    """Whether ``name`` is a gradient (``grad.…``)."""
    return name.startswith(GRAD)


def gradient_of(name: str) -> str:
    """``conv1.kernel`` → ``grad.conv1.kernel``."""
    return GRAD + name


def value_of(name: str) -> str:
    """``grad.conv1.kernel`` → ``conv1.kernel``; a value's name is returned as it is."""
    return name[len(GRAD):] if is_gradient(name) else name


def shape_text(shape, scalar: str = "scalar") -> str:
    """``(2, 3)`` → ``2×3``; ``()`` → ``scalar`` (a table cell) or what ``scalar`` says (messages
    are prose and pass ``"a scalar"``: "has shape a scalar")."""
    return "×".join(map(str, shape)) if len(shape) else scalar


def known(model: Model) -> dict[str, tuple[int, ...]]:
    """Every name a spec or a command may use (values, ``loss``, gradients), with its shape in
    the user's rank."""
    shapes = dict(model.user_shapes)
    if model.has_loss:
        shapes["loss"] = ()
        if model.batched:
            shapes["losses"] = (model.network.batch,)   # each example's loss, before the reduction
        if model.network.regularization is not None:   # loss = data_loss + penalty
            shapes["data_loss"] = shapes["penalty"] = ()
    values = ["input", "output"] + model.network.names + list(model.params)
    shapes.update({gradient_of(name): model.user_shapes[name] for name in values})
    return shapes


def parse(text: str, shapes: dict, model: Model) -> tuple[str, tuple[int, ...] | None]:
    """``grad.conv1.kernel[0,1]`` → (``grad.conv1.kernel``, (0, 1)), checked against ``shapes``
    (name → shape); ValueError says what is wrong."""
    from .spec.errors import shortened   # message quoting only; a spec is loaded by now
    name, written = split(text)
    if name not in shapes:
        raise ValueError(_unknown(name, shapes, model))
    if written is None:
        return name, None
    shape = shapes[name]
    if any(len(part.strip()) > 18 for part in written.split(",")):   # no shape is that large; int() may refuse it
        raise ValueError(f"index [{shortened(written, 40)}] is out of range for {name} "
                         f"of shape {shape_text(shape, 'a scalar')}")
    try:
        index = parse_index(written)
    except ValueError:
        raise ValueError(f"an index is whole numbers separated by commas, like {name}[0,1], "
                         f"not [{shortened(written, 40)}]") from None
    if len(index) != len(shape):
        raise ValueError(_wrong_length(name, index, shape))
    if any(not 0 <= i < n for i, n in zip(index, shape)):
        raise ValueError(f"index {label('', index)} is out of range for {name} of shape {shape_text(shape, 'a scalar')}")
    return name, index


def _wrong_length(name: str, index: tuple[int, ...], shape: tuple[int, ...]) -> str:
    """An index with fewer or more numbers than ``name`` has axes: what an entry's index looks like."""
    if not shape:
        return f"{name} is a scalar: write {name}, without an index"
    like = label(name, (index + (0,) * len(shape))[:len(shape)])
    if len(index) < len(shape):
        return (f"index {label('', index)} gives {len(index)} of the {len(shape)} axes of {name} "
                f"(shape {shape_text(shape)}); an entry needs all {len(shape)}, like {like}")
    return f"index {label('', index)} has {len(index)} axes but {name} has {len(shape)} (shape {shape_text(shape)}), like {like}"


def _unknown(name: str, shapes: dict, model: Model) -> str:
    """Why ``name`` is not a quantity: the nearest known name, or that the spec has no loss."""
    from .spec.errors import quoted
    from .spec.nodes import suggest
    hint = "" if name != "loss" or model.has_loss else \
        " (the spec gives no loss)" if model.network.loss is None else " (loss: none has no loss value)"
    return f"unknown quantity {quoted(name)}{hint}{suggest(name, list(shapes))} (known: {', '.join(shapes)})"


def canonical(name: str, layer_names: list[str]) -> str:
    """``output`` and ``grad.output`` as the last layer's names (the same arrays), the input's
    when there are no layers; else ``name``."""
    if value_of(name) != "output":
        return name
    last = layer_names[-1] if layer_names else "input"
    return gradient_of(last) if is_gradient(name) else last


def chain(layer_names: list[str], param_names: dict[str, tuple[str, ...]], has_loss: bool) -> list[str]:
    """Every quantity in the order the computation makes it: forward values, the loss, then
    the deltas from the loss back, each layer's parameter gradients right after its delta.

    ``param_names`` maps a layer to its parameters' short names (``conv1`` → (kernel, bias)).
    With branches (``from:``, add, concat) the layers' list order is a topological order of the
    graph (a layer reads only values made before it), so this is too: every value after what it
    reads, every delta after the deltas of all the layers that read its value.
    """
    order = ["input", *layer_names] + (["loss"] if has_loss else [])
    for layer in reversed(layer_names):
        order.append(gradient_of(layer))
        order += [gradient_of(f"{layer}.{p}") for p in param_names.get(layer, ())]
    order.append(gradient_of("input"))
    return order


def position(names: list[str]) -> dict[str, int]:
    """Name → its place in ``names`` (a chain), for sorting quantities along it."""
    return {name: k for k, name in enumerate(names)}

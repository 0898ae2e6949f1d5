"""The plain data a renderer shows for ``forward`` and ``backward``, gathered from a model's values.

Gathering only reads and orders what ``Model.values()`` computed; nothing is computed here.
"""
from __future__ import annotations

import math

import numpy as np

from ..model import Model
from ..quantities import gradient_of
from ..record import Record


class LayerOutput(Record):
    """One layer: its name, kind, output shape (user rank), parameter count and output values;
    ``reads`` names the values it reads (``input`` or layers), ``branched`` whether it reads
    other than the output just before it (``from:``, ``add``, ``concat``)."""

    __slots__ = ("name", "kind", "shape", "params", "output", "reads", "branched", "statistics")

    def __init__(self, name: str, kind: str, shape: tuple[int, ...], params: int, output: np.ndarray,
                 reads: tuple[str, ...] = (), branched: bool = False,
                 statistics: dict[str, np.ndarray] | None = None):
        self.name, self.kind, self.shape, self.params, self.output = name, kind, shape, params, output
        self.reads, self.branched = reads, branched
        # what a layer that mixes the examples computed of the batch: batch norm's mean and var
        self.statistics = {} if statistics is None else statistics


class ForwardReport(Record):
    """``notes`` go under the summary table (a layer whose windows never read some rows)."""

    __slots__ = ("spec", "name", "input", "layers", "output", "loss", "loss_kind", "notes", "loss_parts")

    def __init__(self, spec: str, name: str | None, input: np.ndarray, layers: list[LayerOutput],
                 output: np.ndarray, loss: float | None, loss_kind: str | None, notes: list[str] | None = None,
                 loss_parts: dict[str, np.ndarray] | None = None):
        self.spec, self.name, self.input, self.layers = spec, name, input, layers
        self.output, self.loss, self.loss_kind = output, loss, loss_kind
        self.notes = [] if notes is None else notes
        # what the loss is made of, shown before it: ``losses`` (with `batch: N`, each example's loss
        # before the reduction), ``data_loss`` and ``penalty`` (with `regularization`)
        self.loss_parts = {} if loss_parts is None else loss_parts

    def _repr_html_(self) -> str:
        """Heatmap tables in a notebook (``render.html``)."""
        from . import notebook
        return notebook.html(self, "forward")

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """IPython's text display: the table ``cnngrad forward`` prints."""
        from . import notebook
        notebook.pretty(self, "forward", printer)


class BackwardReport(Record):
    """``gradients`` maps docs/reference.md §2 names without ``grad.`` to ∂E/∂ that, ordered from the loss back
    to the input; ``updates`` maps each parameter to θ − η·∂E/∂θ when a learning rate was given;
    ``notes`` are the spec's, as forward shows them (an activation applied twice)."""

    __slots__ = ("spec", "name", "loss", "loss_kind", "gradients", "lr", "updates", "notes")

    def __init__(self, spec: str, name: str | None, loss: float | None, loss_kind: str | None,
                 gradients: dict[str, np.ndarray], lr: float | None = None,
                 updates: dict[str, np.ndarray] | None = None, notes: list[str] | None = None):
        self.spec, self.name, self.loss, self.loss_kind = spec, name, loss, loss_kind
        self.gradients, self.lr = gradients, lr
        self.updates = {} if updates is None else updates
        self.notes = [] if notes is None else notes

    def _repr_html_(self) -> str:
        """Heatmap tables in a notebook (``render.html``)."""
        from . import notebook
        return notebook.html(self, "backward")

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """IPython's text display: the table ``cnngrad backward`` prints."""
        from . import notebook
        notebook.pretty(self, "backward", printer)


STATISTICS = ("mean", "var")   # a batch-norm layer's batch statistics, in Model.values as conv1.mean
LOSS_PARTS = ("losses", "data_loss", "penalty")   # Model.values' keys of the loss's parts


def forward_report(model: Model, values: dict[str, np.ndarray]) -> ForwardReport:
    network = model.network
    layers = [
        LayerOutput(name=name, kind=layer.kind, shape=model.user_shapes[name],
                    params=sum(math.prod(model.user_shapes[p]) for p in _param_names(name, layer)),
                    output=values[name], reads=tuple(network.value_name(v) for v in reads),
                    branched=reads != (k,),
                    statistics={key: values[f"{name}.{key}"] for key in STATISTICS if f"{name}.{key}" in values})
        for k, (name, layer, reads) in enumerate(zip(network.names, network.layers, network.reads))
    ]
    return ForwardReport(spec=model.path, name=model.name, input=values["input"], layers=layers,
                         output=values["output"], loss=_loss(values), loss_kind=_loss_kind(model),
                         notes=list(model.notes),
                         loss_parts={key: values[key] for key in LOSS_PARTS if key in values})


def backward_report(model: Model, values: dict[str, np.ndarray], lr: float | None = None,
                    updates: dict[str, np.ndarray] | None = None) -> BackwardReport:
    network = model.network
    gradients = {}
    for name, layer in reversed(list(zip(network.names, network.layers))):
        for quantity in [name, *_param_names(name, layer)]:
            gradients[quantity] = values[gradient_of(quantity)]
    gradients["input"] = values[gradient_of("input")]
    return BackwardReport(spec=model.path, name=model.name, loss=_loss(values),
                          loss_kind=_loss_kind(model), gradients=gradients, lr=lr,
                          updates=updates or {}, notes=list(model.notes))


def _param_names(name: str, layer) -> list[str]:
    return [f"{name}.{p}" for p in layer.param_names]


def _loss_kind(model: Model) -> str | None:
    """The loss as output names it (``cross_entropy from logits``; with ``batch: N``, how it
    reduces the examples: ``mse, mean of 2 examples``, or ``mse, 1 example``, where sum and mean
    agree); None when the spec gives none."""
    loss = model.network.loss
    if loss is None:
        return None
    n = model.network.batch
    reduced = f"{loss.reduction} of {n} examples" if n > 1 else "1 example"
    kind = f"{loss.label}, {reduced}" if model.batched else loss.label
    return kind if model.network.regularization is None else f"{kind}, + L2 penalty"


def _loss(values) -> float | None:
    return float(values["loss"]) if "loss" in values else None

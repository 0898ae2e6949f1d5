"""The ordered layers of a network: forward keeping every intermediate, backward every delta.

Parameters live outside the layers, in a mapping named as users see them
(``{"conv1.kernel": array, "fc1.bias": array}``), so a caller can pass perturbed copies
without mutating anything. Every array carries a leading batch axis.
"""
from __future__ import annotations

import numpy as np

from .layers import Layer
from .losses import Loss
from .record import Record


class Trace(Record):
    """A forward pass from layer ``start`` on: ``inputs[k]`` enters and ``outputs[k]`` leaves
    layer ``start + k`` (a layer that reads several values gets them as a tuple). In a partial
    run of a branched network a layer that the change does not reach is not re-run: its input
    and cache are None and its output is the unperturbed one (a batch of 1)."""

    __slots__ = ("start", "inputs", "outputs", "caches", "entry")

    def __init__(self, start: int, inputs: list[np.ndarray] | None = None,
                 outputs: list[np.ndarray] | None = None, caches: list | None = None,
                 entry: np.ndarray | None = None):
        self.start = start
        self.inputs = [] if inputs is None else inputs
        self.outputs = [] if outputs is None else outputs
        self.caches = [] if caches is None else caches
        self.entry = entry if entry is not None or not self.inputs else self.inputs[0]   # value ``start``

    @property
    def output(self) -> np.ndarray:
        return self.outputs[-1] if self.outputs else self.inputs[0]

    def value(self, index: int) -> np.ndarray:
        """Value ``index`` (0 the input, k + 1 layer k's output), from ``start`` on."""
        return self.entry if index == self.start else self.outputs[index - self.start - 1]


class Gradients(Record):
    """∂E/∂input, ∂E/∂(each layer's output) by layer name, ∂E/∂(each parameter) by its name."""

    __slots__ = ("input", "outputs", "params")

    def __init__(self, input: np.ndarray, outputs: dict[str, np.ndarray], params: dict[str, np.ndarray]):
        self.input, self.outputs, self.params = input, outputs, params


class Network:
    """Named layers applied in order to an input of ``input_shape`` (without the batch axis).

    The values are numbered: 0 the input, k + 1 the output of layer k. ``reads[k]`` are the
    values layer k reads: by default the one before it (a chain); a branch reads an earlier one
    (``from:``), and a layer that ``joins`` (add, concat) several. The list order is a
    topological order: every layer reads only values made before it.
    """

    def __init__(self, input_shape, layers: list[tuple[str, Layer]], loss: Loss | None,
                 reads: list[tuple[int, ...]] | None = None):
        """``loss`` None: a spec without one, which can run forward only."""
        self.input_shape = tuple(input_shape)
        self.names = [name for name, _ in layers]
        self.layers = [layer for _, layer in layers]
        self.loss = loss
        self.reads = [(k,) for k in range(len(layers))] if reads is None else [tuple(r) for r in reads]
        # a branched network has a layer that reads other than the value just before it
        self.branched = any(r != (k,) for k, r in enumerate(self.reads))
        self.consumers = [[] for _ in range(len(layers) + 1)]   # value → the layers that read it
        for k, read in enumerate(self.reads):
            for value in read:
                self.consumers[value].append(k)
        self.in_shapes, self.out_shapes, self.param_shapes = [], [], {}
        self.value_shapes = [self.input_shape]
        for (name, layer), read in zip(layers, self.reads):
            shapes = tuple(self.value_shapes[v] for v in read)
            shape = shapes if layer.joins else shapes[0]
            self.in_shapes.append(shape)
            for pname, pshape in layer.param_shapes(shape).items():
                self.param_shapes[f"{name}.{pname}"] = pshape
            self.out_shapes.append(layer.output_shape(shape))
            self.value_shapes.append(self.out_shapes[-1])
        last = self.layers[-1].fusable_as if self.layers else None
        self.fused = loss is not None and loss.fuses_with is not None and loss.fuses_with == last

    @property
    def output_shape(self):
        return self.out_shapes[-1] if self.layers else self.input_shape

    def params_of(self, index: int, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The parameters of layer ``index`` under their short names (``kernel``, ``bias``)."""
        name = self.names[index]
        return {p: params[f"{name}.{p}"] for p in self.layers[index].param_names}

    def value_name(self, index: int) -> str:
        """The quantity name of value ``index``: ``input``, or the name of layer ``index − 1``."""
        return "input" if index == 0 else self.names[index - 1]

    def chained(self, index: int) -> bool:
        """Layer ``index`` reads the value just before it, nothing else, and is its only reader:
        a change of that value reaches the loss through this layer alone (always so in a chain)."""
        return self.reads[index] == (index,) and self.consumers[index] == [index]

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray], start: int = 0,
                base: Trace | None = None) -> Trace:
        """Run layers ``start..L-1`` on ``x`` (value ``start``: the input of layer ``start`` in a
        chain), keeping everything. A branched network's layers may read values before ``start``:
        those come from ``base``, the unperturbed full trace (needed when ``start > 0``)."""
        if self.branched:
            return self._forward_graph(x, params, start, base)
        trace = Trace(start=start, inputs=[x])
        for index in range(start, len(self.layers)):
            y, cache = self.layers[index].forward(trace.inputs[-1], self.params_of(index, params))
            trace.outputs.append(y)
            trace.caches.append(cache)
            if index + 1 < len(self.layers):
                trace.inputs.append(y)
        return trace

    def _forward_graph(self, x: np.ndarray, params: dict[str, np.ndarray], start: int,
                       base: Trace | None) -> Trace:
        """``forward`` of a branched network: a layer none of whose values the change at value
        ``start`` reaches keeps its unperturbed output (batch 1) and is not re-run; a layer that
        joins a changed value with an unchanged one gets the latter repeated along the batch."""
        trace = Trace(start=start, inputs=[x] if start == len(self.layers) else [], entry=x)
        values = {start: x}
        changed = {start}
        for index in range(start, len(self.layers)):
            read = self.reads[index]
            if not changed.intersection(read):
                trace.inputs.append(None)
                trace.caches.append(None)
                values[index + 1] = base.value(index + 1)
                trace.outputs.append(values[index + 1])
                continue
            arrays = tuple(values[v] if v in values else base.value(v) for v in read)
            if self.layers[index].joins:
                batch = max(len(a) for a in arrays)
                arrays = tuple(np.broadcast_to(a, (batch,) + a.shape[1:]) for a in arrays)
            taken = arrays if self.layers[index].joins else arrays[0]
            y, cache = self.layers[index].forward(taken, self.params_of(index, params))
            trace.inputs.append(taken)
            trace.outputs.append(y)
            trace.caches.append(cache)
            values[index + 1] = y
            changed.add(index + 1)
        return trace

    def loss_reads(self, trace: Trace) -> tuple[Loss, np.ndarray]:
        """The loss as computed and what it reads: a fused loss is its logits form on the last
        layer's input (the logits), any other the loss itself on the final output."""
        if self.fused and trace.outputs:
            return self.loss.logits_form(), trace.inputs[-1]
        return self.loss, trace.output

    def loss_pattern(self, trace: Trace, target: np.ndarray) -> np.ndarray | None:
        """Which smooth piece the loss sits on (a hinge's open margins), or None for a smooth loss."""
        loss, read = self.loss_reads(trace)
        return loss.pattern(read, target)

    def losses(self, trace: Trace, target: np.ndarray) -> np.ndarray:
        """The loss of every example in the batch, shape ``(B,)``."""
        loss, read = self.loss_reads(trace)
        return loss.value(read, target)

    def backward(self, trace: Trace, params: dict[str, np.ndarray], target: np.ndarray) -> Gradients:
        """∂E/∂ everything from a full trace (``start == 0``); E sums the batch's losses."""
        if self.branched:
            return self._backward_graph(trace, params, target)
        outputs, grads = {}, {}
        top = len(self.layers) - 1
        if self.fused:  # the activation's input gradient comes straight from the fused loss
            outputs[self.names[top]], delta = self.loss.fused_grads(trace.inputs[-1], trace.output, target)
            top -= 1
        else:
            delta = self.loss.grad(trace.output, target)
        for index in range(top, -1, -1):
            outputs[self.names[index]] = delta
            delta, pgrads = self.layers[index].backward(
                delta, trace.caches[index], self.params_of(index, params))
            for pname, grad in pgrads.items():
                grads[f"{self.names[index]}.{pname}"] = grad
        return Gradients(input=delta, outputs=outputs, params=grads)

    def _backward_graph(self, trace: Trace, params: dict[str, np.ndarray], target: np.ndarray) -> Gradients:
        """``backward`` of a branched network: a value read by several layers gets the sum of
        what each hands back, ∂E/∂v = Σ_consumers ∂E/∂y_c · ∂y_c/∂v, added from the loss back
        (the last reader's first); the list order guarantees every reader is done before it."""
        outputs, grads, pending = {}, {}, {}
        top = len(self.layers) - 1
        if self.fused:
            outputs[self.names[top]], pending[self.reads[top][0]] = \
                self.loss.fused_grads(trace.inputs[-1], trace.output, target)
            top -= 1
        else:
            pending[top + 1] = self.loss.grad(trace.output, target)
        for index in range(top, -1, -1):
            delta = pending.pop(index + 1, None)
            if delta is None:   # a value no layer reads (a network not built from a spec) moves no E
                delta = np.zeros((len(trace.output),) + self.out_shapes[index])
            outputs[self.names[index]] = delta
            dx, pgrads = self.layers[index].backward(delta, trace.caches[index], self.params_of(index, params))
            for pname, grad in pgrads.items():
                grads[f"{self.names[index]}.{pname}"] = grad
            for value, part in zip(self.reads[index], dx if self.layers[index].joins else (dx,)):
                pending[value] = part if value not in pending else pending[value] + part
        return Gradients(input=pending.pop(0), outputs=outputs, params=grads)

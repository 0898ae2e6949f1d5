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
    and cache are None and its output is the unperturbed one (one copy of the examples)."""

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


def tiled(array: np.ndarray, rows: int) -> np.ndarray:
    """``array`` (N rows: one copy of the examples) repeated to ``rows`` rows (copies × N)."""
    if len(array) == rows:
        return array
    return np.tile(array, (rows // len(array),) + (1,) * (array.ndim - 1))


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

    The example holds ``batch`` examples (``batch: N``, docs/reference.md §1), N consecutive rows
    of every array; a run of perturbed copies (the checker's) holds copies × N rows, each copy's
    N examples together, and the objective E of each copy reduces its N per-example losses.
    """

    def __init__(self, input_shape, layers: list[tuple[str, Layer]], loss: Loss | None,
                 reads: list[tuple[int, ...]] | None = None, batch: int = 1,
                 regularization: tuple[float, tuple[str, ...]] | None = None):
        """``loss`` None: a spec without one, which can run forward only. ``regularization``
        (factor λ, parameter names) adds the L2 penalty λ Σ θ² over those parameters to E."""
        self.batch = batch
        self.regularization = regularization
        self.input_shape = tuple(input_shape)
        self.names = [name for name, _ in layers]
        self.layers = [layer for _, layer in layers]
        self.loss = loss
        self._wire(reads)
        self._infer_shapes()
        last = self.layers[-1].fusable_as if self.layers else None
        self.fused = loss is not None and loss.fuses_with is not None and loss.fuses_with == last

    def _wire(self, reads: list[tuple[int, ...]] | None) -> None:
        """``reads`` (a chain when None), whether the network branches, and each value's readers
        (``consumers``)."""
        self.reads = [(k,) for k in range(len(self.layers))] if reads is None else [tuple(r) for r in reads]
        # a branched network has a layer that reads other than the value just before it
        self.branched = any(r != (k,) for k, r in enumerate(self.reads))
        self.consumers = [[] for _ in range(len(self.layers) + 1)]   # value → the layers that read it
        for k, read in enumerate(self.reads):
            for value in read:
                self.consumers[value].append(k)

    def _infer_shapes(self) -> None:
        """Every layer's input, output and parameter shapes, carried forward from the input along
        ``reads`` (a joining layer gets the tuple of its operands' shapes)."""
        self.in_shapes, self.out_shapes, self.param_shapes = [], [], {}
        self.value_shapes = [self.input_shape]
        for name, layer, read in zip(self.names, self.layers, self.reads):
            shapes = tuple(self.value_shapes[v] for v in read)
            shape = shapes if layer.joins else shapes[0]
            self.in_shapes.append(shape)
            for pname, pshape in layer.param_shapes(shape).items():
                self.param_shapes[f"{name}.{pname}"] = pshape
            self.out_shapes.append(layer.output_shape(shape))
            self.value_shapes.append(self.out_shapes[-1])

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
                base: Trace | None = None, reader: int | None = None) -> Trace:
        """Run layers ``start..L-1`` on ``x`` (value ``start``: the input of layer ``start`` in a
        chain), keeping everything. A branched network's layers may read values before ``start``:
        those come from ``base``, the unperturbed full trace (needed when ``start > 0``). With
        ``reader``, ``x`` is value ``start`` as layer ``reader`` alone reads it: its other readers
        read ``base``'s (so E moves by that reader's part of ∂E/∂v alone)."""
        if self.branched:
            return self._forward_graph(x, params, start, base, reader)
        trace = Trace(start=start, inputs=[x])
        for index in range(start, len(self.layers)):
            y, cache = self.layers[index].forward(trace.inputs[-1], self.params_of(index, params))
            trace.outputs.append(y)
            trace.caches.append(cache)
            if index + 1 < len(self.layers):
                trace.inputs.append(y)
        return trace

    def _forward_graph(self, x: np.ndarray, params: dict[str, np.ndarray], start: int,
                       base: Trace | None, reader: int | None = None) -> Trace:
        """``forward`` of a branched network: a layer none of whose values the change at value
        ``start`` reaches (as it sees them: with ``reader``, only that layer sees value ``start``
        changed) keeps its unperturbed output (one copy of the N examples) and is not re-run; a
        layer that joins a changed value with an unchanged one gets the latter repeated for every copy."""
        trace = Trace(start=start, inputs=[x] if start == len(self.layers) else [], entry=x)
        values = {start: x}
        changed = {start}
        for index in range(start, len(self.layers)):
            read = self.reads[index]
            seen = changed if reader is None or reader == index else changed - {start}
            if not seen.intersection(read):
                trace.inputs.append(None)
                trace.caches.append(None)
                values[index + 1] = base.value(index + 1)
                trace.outputs.append(values[index + 1])
                continue
            taken = self._operands(index, values, seen, base)
            y, cache = self.layers[index].forward(taken, self.params_of(index, params))
            trace.inputs.append(taken)
            trace.outputs.append(y)
            trace.caches.append(cache)
            values[index + 1] = y
            changed.add(index + 1)
        return trace

    def _operands(self, index: int, values: dict, seen: set, base: Trace):
        """What layer ``index`` reads in ``_forward_graph``: the values in ``seen`` as this run made
        them, the others ``base``'s; a joining layer gets a tuple, the unchanged operands repeated
        for every copy of the changed ones."""
        arrays = tuple(values[v] if v in seen else base.value(v) for v in self.reads[index])
        if not self.layers[index].joins:
            return arrays[0]
        rows = max(len(a) for a in arrays)
        return tuple(tiled(a, rows) for a in arrays)

    def loss_reads(self, trace: Trace) -> tuple[Loss, np.ndarray]:
        """The loss as computed and what it reads: a fused loss is its logits form on the last
        layer's input (the logits), any other the loss itself on the final output."""
        if self.fused and trace.outputs:
            return self.loss.logits_form(), trace.inputs[-1]
        return self.loss, trace.output

    def loss_pattern(self, trace: Trace, target: np.ndarray) -> np.ndarray | None:
        """Which smooth piece the loss sits on (a hinge's open margins), or None for a smooth loss."""
        loss, read = self.loss_reads(trace)
        return loss.pattern(read, self.repeated(target, len(read)))

    def losses(self, trace: Trace, target: np.ndarray) -> np.ndarray:
        """The loss of every row (example) of the run, shape ``(B,)``; ``target`` holds the N
        examples' targets, repeated for each copy of them."""
        loss, read = self.loss_reads(trace)
        return loss.value(read, self.repeated(target, len(read)))

    def repeated(self, target: np.ndarray, rows: int) -> np.ndarray:
        """``target`` (N rows) repeated for a run of ``rows`` rows (copies × N, or N)."""
        return target if len(target) == 1 else tiled(target, rows)

    def reduction_scale(self) -> float:
        """What ∂E/∂(each example's loss) is: 1 for ``reduction: sum``, 1/N for ``mean``."""
        return 1.0 / self.batch if self.loss.reduction == "mean" else 1.0

    def objective(self, trace: Trace, target: np.ndarray) -> np.ndarray:
        """E of every copy in the run (the data loss): its N examples' losses summed, or averaged
        under ``reduction: mean``, shape ``(B / N,)``."""
        per_example = self.losses(trace, target).reshape(-1, self.batch)
        return per_example.sum(axis=1) * self.reduction_scale()

    def penalty(self, params: dict[str, np.ndarray]) -> float:
        """The L2 penalty λ Σ θ² over the regularized parameters (0.0 without regularization)."""
        if self.regularization is None:
            return 0.0
        factor, names = self.regularization
        return factor * sum(float(np.sum(params[name] ** 2)) for name in names)

    def regularizes(self, name: str) -> bool:
        """Whether the L2 penalty covers parameter ``name``."""
        return self.regularization is not None and name in self.regularization[1]

    def penalty_grad(self, name: str, theta: np.ndarray) -> np.ndarray | None:
        """∂(λ Σ θ²)/∂θ = 2 λ θ for a regularized parameter ``name``, else None."""
        if not self.regularizes(name):
            return None
        return 2.0 * self.regularization[0] * theta

    def output_grad(self, y: np.ndarray, target: np.ndarray) -> np.ndarray:
        """∂E/∂(final output) for the unperturbed run: the loss's gradient, scaled by the reduction."""
        return self.loss.grad(y, target) * self.reduction_scale()

    def backward(self, trace: Trace, params: dict[str, np.ndarray], target: np.ndarray) -> Gradients:
        """∂E/∂ everything from a full trace (``start == 0``) of the N examples; E sums their
        losses, or averages them (``reduction: mean``), plus the L2 penalty (2 λ θ on each
        regularized parameter's gradient)."""
        if self.branched:
            return self._backward_graph(trace, params, target)
        outputs, grads = {}, {}
        top = len(self.layers) - 1
        fused_output_grad, delta = self.loss_deltas(trace, target)
        if fused_output_grad is not None:
            outputs[self.names[top]] = fused_output_grad
            top -= 1
        for index in range(top, -1, -1):
            outputs[self.names[index]] = delta
            delta, pgrads = self.layers[index].backward(
                delta, trace.caches[index], self.params_of(index, params))
            self._add_param_grads(index, pgrads, params, grads)
        return Gradients(input=delta, outputs=outputs, params=grads)

    def loss_deltas(self, trace: Trace, target: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Where backprop starts, scaled by the reduction: (∂E/∂(final output) when a fused loss
        gives it exactly, else None; ∂E/∂ the value the next layer down outputs: the logits
        when fused, else the final output)."""
        if self.fused:  # the activation's input gradient comes straight from the fused loss
            scale = self.reduction_scale()
            output_grad, delta = self.loss.fused_grads(trace.inputs[-1], trace.output, target)
            return output_grad * scale, delta * scale
        return None, self.output_grad(trace.output, target)

    def _add_param_grads(self, index: int, pgrads: dict[str, np.ndarray], params, grads) -> None:
        """Layer ``index``'s parameter gradients into ``grads`` by full name, each with the L2
        penalty's 2 λ θ when it is regularized."""
        for pname, grad in pgrads.items():
            name = f"{self.names[index]}.{pname}"
            penalty = self.penalty_grad(name, params[name])
            grads[name] = grad if penalty is None else grad + penalty

    def _backward_graph(self, trace: Trace, params: dict[str, np.ndarray], target: np.ndarray) -> Gradients:
        """``backward`` of a branched network: a value read by several layers gets the sum of
        what each hands back, ∂E/∂v = Σ_consumers ∂E/∂y_c · ∂y_c/∂v, added from the loss back
        (the last reader's first); the list order guarantees every reader is done before it."""
        outputs, grads, pending = {}, {}, {}
        top = len(self.layers) - 1
        fused_output_grad, delta = self.loss_deltas(trace, target)
        if fused_output_grad is not None:
            outputs[self.names[top]], pending[self.reads[top][0]] = fused_output_grad, delta
            top -= 1
        else:
            pending[top + 1] = delta
        for index in range(top, -1, -1):
            delta = pending.pop(index + 1, None)
            if delta is None:   # a value no layer reads (a network not built from a spec) moves no E
                delta = np.zeros((len(trace.output),) + self.out_shapes[index])
            outputs[self.names[index]] = delta
            dx, pgrads = self.layers[index].backward(delta, trace.caches[index], self.params_of(index, params))
            self._add_param_grads(index, pgrads, params, grads)
            for value, part in zip(self.reads[index], dx if self.layers[index].joins else (dx,)):
                pending[value] = part if value not in pending else pending[value] + part
        return Gradients(input=pending.pop(0), outputs=outputs, params=grads)

    def read_part(self, reader: int, value: int, delta: np.ndarray, cache, params: dict[str, np.ndarray]) -> np.ndarray:
        """Layer ``reader``'s part of ∂E/∂(value ``value``), J_readerᵀ δ_reader: its backward of its
        own output's delta ``delta`` (from its forward ``cache``, with its own ``params``), summed
        over the operands it reads that value as (one of the terms ``_backward_graph`` adds up)."""
        dx, _ = self.layers[reader].backward(delta, cache, params)
        parts = [part for read, part in zip(self.reads[reader], dx if self.layers[reader].joins else (dx,))
                 if read == value]
        return parts[0] if len(parts) == 1 else sum(parts[1:], parts[0])

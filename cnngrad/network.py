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
    layer ``start + k``."""

    __slots__ = ("start", "inputs", "outputs", "caches")

    def __init__(self, start: int, inputs: list[np.ndarray] | None = None,
                 outputs: list[np.ndarray] | None = None, caches: list | None = None):
        self.start = start
        self.inputs = [] if inputs is None else inputs
        self.outputs = [] if outputs is None else outputs
        self.caches = [] if caches is None else caches

    @property
    def output(self) -> np.ndarray:
        return self.outputs[-1] if self.outputs else self.inputs[0]


class Gradients(Record):
    """∂E/∂input, ∂E/∂(each layer's output) by layer name, ∂E/∂(each parameter) by its name."""

    __slots__ = ("input", "outputs", "params")

    def __init__(self, input: np.ndarray, outputs: dict[str, np.ndarray], params: dict[str, np.ndarray]):
        self.input, self.outputs, self.params = input, outputs, params


class Network:
    """Named layers applied in order to an input of ``input_shape`` (without the batch axis).

    The example holds ``batch`` examples (``batch: N``, docs/reference.md §1), N consecutive rows
    of every array; a run of perturbed copies (the checker's) holds copies × N rows, each copy's
    N examples together, and the objective E of each copy reduces its N per-example losses.
    """

    def __init__(self, input_shape, layers: list[tuple[str, Layer]], loss: Loss | None, batch: int = 1,
                 regularization: tuple[float, tuple[str, ...]] | None = None):
        """``loss`` None: a spec without one, which can run forward only. ``regularization``
        (factor λ, parameter names) adds the L2 penalty λ Σ θ² over those parameters to E."""
        self.batch = batch
        self.regularization = regularization
        self.input_shape = tuple(input_shape)
        self.names = [name for name, _ in layers]
        self.layers = [layer for _, layer in layers]
        self.loss = loss
        self.in_shapes, self.out_shapes, self.param_shapes = [], [], {}
        shape = self.input_shape
        for name, layer in layers:
            self.in_shapes.append(shape)
            for pname, pshape in layer.param_shapes(shape).items():
                self.param_shapes[f"{name}.{pname}"] = pshape
            shape = layer.output_shape(shape)
            self.out_shapes.append(shape)
        last = self.layers[-1].kind if self.layers else None
        self.fused = loss is not None and loss.fuses_with is not None and loss.fuses_with == last

    @property
    def output_shape(self):
        return self.out_shapes[-1] if self.layers else self.input_shape

    def params_of(self, index: int, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The parameters of layer ``index`` under their short names (``kernel``, ``bias``)."""
        name = self.names[index]
        return {p: params[f"{name}.{p}"] for p in self.layers[index].param_names}

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray], start: int = 0) -> Trace:
        """Run layers ``start..L-1`` on ``x`` (the input of layer ``start``), keeping everything."""
        trace = Trace(start=start, inputs=[x])
        for index in range(start, len(self.layers)):
            y, cache = self.layers[index].forward(trace.inputs[-1], self.params_of(index, params))
            trace.outputs.append(y)
            trace.caches.append(cache)
            if index + 1 < len(self.layers):
                trace.inputs.append(y)
        return trace

    def loss_reads(self, trace: Trace) -> tuple[Loss, np.ndarray]:
        """The loss as computed and what it reads: a fused loss is its logits form on the last
        layer's input (the logits), any other the loss itself on the final output."""
        if self.fused and trace.outputs:
            return self.loss.logits_form(), trace.inputs[-1]
        return self.loss, trace.output

    def losses(self, trace: Trace, target: np.ndarray) -> np.ndarray:
        """The loss of every row (example) of the run, shape ``(B,)``; ``target`` holds the N
        examples' targets, repeated for each copy of them."""
        loss, read = self.loss_reads(trace)
        return loss.value(read, self.repeated(target, len(read)))

    def repeated(self, target: np.ndarray, rows: int) -> np.ndarray:
        """``target`` (N rows) repeated for a run of ``rows`` rows (copies × N, or N)."""
        if len(target) == rows or len(target) == 1:
            return target
        return np.tile(target, (rows // len(target),) + (1,) * (target.ndim - 1))

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
        outputs, grads = {}, {}
        top = len(self.layers) - 1
        if self.fused:  # the activation's input gradient comes straight from the fused loss
            scale = self.reduction_scale()
            output_grad, delta = self.loss.fused_grads(trace.inputs[-1], trace.output, target)
            outputs[self.names[top]], delta = output_grad * scale, delta * scale
            top -= 1
        else:
            delta = self.output_grad(trace.output, target)
        for index in range(top, -1, -1):
            outputs[self.names[index]] = delta
            delta, pgrads = self.layers[index].backward(
                delta, trace.caches[index], self.params_of(index, params))
            for pname, grad in pgrads.items():
                name = f"{self.names[index]}.{pname}"
                penalty = self.penalty_grad(name, params[name])
                grads[name] = grad if penalty is None else grad + penalty
        return Gradients(input=delta, outputs=outputs, params=grads)

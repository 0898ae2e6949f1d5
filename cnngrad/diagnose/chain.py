"""The computation as a chain of steps, each quantity made from the one before it by one layer.

Forward: layer k's output from layer k−1's (``input`` first), the loss from the output (the
input itself when there are no layers).
Backward: ∂E/∂output from the output (the loss's gradient); ∂E/∂(layer k−1's output) and
∂E/∂(layer k's parameters) from ∂E/∂(layer k's output) through layer k's backward. A backward
step uses the right forward pass (its caches), so a recomputation differs from the right value
only through the upstream value it starts from, or a mistake made on the way.

Arrays here are in the engine's layout (a batch axis: 1, or N rows with ``batch: N``); ``user``
and ``internal`` convert. With ``batch: N`` the per-example ``losses`` come from the output too,
and the loss and its gradient carry the batch's reduction. The loss and a regularized parameter's
gradient include the L2 penalty (λ Σ θ², 2 λ θ).
"""
from __future__ import annotations

import numpy as np

from .. import quantities
from ..model import Model
from ..record import Record


class Step(Record):
    """How ``node`` is made: from ``parent`` by ``kind``
    (``forward``, ``loss``, ``loss-grad``, ``input-grad``, ``param-grad``) at layer ``index``
    (None for the loss), ``param`` naming the parameter of a ``param-grad``."""

    __slots__ = ("node", "parent", "kind", "index", "param")

    def __init__(self, node: str, parent: str | None, kind: str, index: int | None, param: str | None = None):
        self.node, self.parent, self.kind, self.index, self.param = node, parent, kind, index, param


class Chain:
    """Every quantity of a model with the step that makes it, and its right value."""

    def __init__(self, model: Model):
        self.model = model
        net = self.network = model.network
        self.trace = model.forward()
        grads = model.backward(self.trace)
        names = net.names
        self.steps: dict[str, Step] = {}
        self.right: dict[str, np.ndarray] = {"input": model.input}
        for k, name in enumerate(names):
            self.steps[name] = Step(name, names[k - 1] if k else "input", "forward", k)
            self.right[name] = self.trace.outputs[k]
            if net.layers[k].mixes_examples:   # its batch statistics (batch norm's mean and var)
                for key, value in net.layers[k].statistics(self.trace.caches[k]).items():
                    self.steps[f"{name}.{key}"] = Step(f"{name}.{key}", names[k - 1] if k else "input",
                                                       "statistics", k, key)
                    self.right[f"{name}.{key}"] = value
        last = names[-1] if names else "input"     # layers: [] — the loss reads the input
        if model.has_loss:
            self.steps["loss"] = Step("loss", last, "loss", None)
            self.right["loss"] = np.asarray(model.loss(self.trace)).reshape(1)
            if model.batched:
                self.steps["losses"] = Step("losses", last, "losses", None)
                self.right["losses"] = model.example_losses(self.trace)
            if net.regularization is not None:   # loss = data_loss + penalty (of the parameters)
                self.steps["data_loss"] = Step("data_loss", last, "data_loss", None)
                self.right["data_loss"] = np.asarray(model.data_loss(self.trace)).reshape(1)
                self.steps["penalty"] = Step("penalty", "input", "penalty", None)
                self.right["penalty"] = np.asarray(model.penalty()).reshape(1)
        self.steps[quantities.gradient_of(last)] = Step(quantities.gradient_of(last), last, "loss-grad", None)
        for k in reversed(range(len(names))):
            delta = quantities.gradient_of(names[k])
            self.right[delta] = grads.outputs[names[k]]
            below = quantities.gradient_of(names[k - 1] if k else "input")
            self.steps[below] = Step(below, delta, "input-grad", k)
            for pname in net.layers[k].param_names:
                node = quantities.gradient_of(f"{names[k]}.{pname}")
                self.steps[node] = Step(node, delta, "param-grad", k, pname)
                self.right[node] = grads.params[f"{names[k]}.{pname}"]
        self.right[quantities.gradient_of("input")] = grads.input
        self.order = quantities.position(quantities.chain(
            names, {name: layer.param_names for name, layer in zip(names, net.layers)}, model.has_loss))
        for k, part in enumerate(("losses", "data_loss", "penalty")):   # the loss's parts, just before it
            if part in self.steps:
                self.order[part] = self.order["loss"] - 0.5 + 0.1 * k
        for node, step in self.steps.items():   # batch statistics just after their layer's output
            if step.kind == "statistics":
                self.order[node] = self.order[names[step.index]] + 0.5

    def name(self, quantity: str) -> str:
        """The chain's name of a quantity (``output`` is the last layer's)."""
        return quantities.canonical(quantity, self.network.names)

    def layer_name(self, step: Step) -> str | None:
        return None if step.index is None else self.network.names[step.index]

    def user(self, node: str, array: np.ndarray) -> np.ndarray:
        """An engine array of ``node`` in the rank the user wrote it."""
        if node in ("loss", "data_loss", "penalty"):
            return np.asarray(array, dtype=np.float64).reshape(())
        if node == "losses":
            return np.asarray(array, dtype=np.float64).reshape(-1)
        return self.model.user(quantities.value_of(node), array)

    def internal(self, node: str, array: np.ndarray) -> np.ndarray:
        """A user's array of ``node`` in the engine's layout."""
        return np.asarray(array, dtype=np.float64).reshape(self.right[node].shape)

    def path(self, node: str, given) -> tuple[str, list[Step]]:
        """Where a recomputation of ``node`` starts, and the steps from there to ``node`` in order:
        the nearest quantity before it whose value the user gave, else the chain's start (the
        input; for a gradient, the output, where backpropagation starts)."""
        steps = []
        while True:
            step = self.steps[node]
            steps.append(step)
            if step.parent in given or step.parent == "input" or step.kind == "loss-grad":
                return step.parent, steps[::-1]
            node = step.parent

    def cache(self, index: int):
        return self.trace.caches[index]

    def params(self, index: int) -> dict[str, np.ndarray]:
        return self.network.params_of(index, self.model.params)

    def apply(self, step: Step, upstream: np.ndarray) -> np.ndarray:
        """One step, done right, from ``upstream`` (the parent's value)."""
        net, model = self.network, self.model
        if step.kind == "forward":
            return net.layers[step.index].forward(upstream, self.params(step.index))[0]
        if step.kind == "statistics":
            layer = net.layers[step.index]
            return layer.statistics(layer.forward(upstream, self.params(step.index))[1])[step.param]
        if step.kind == "losses":
            return np.asarray(net.loss.value(upstream, model.target), dtype=np.float64)
        if step.kind == "data_loss":
            per_example = net.loss.value(upstream, model.target)
            return np.asarray(per_example.sum() * net.reduction_scale(), dtype=np.float64).reshape(1)
        if step.kind == "penalty":   # of the parameters, whatever the upstream value
            return np.asarray(net.penalty(model.params), dtype=np.float64).reshape(1)
        if step.kind == "loss":
            per_example = net.loss.value(upstream, model.target)
            data = per_example.sum() * net.reduction_scale()
            return np.asarray(data + net.penalty(model.params), dtype=np.float64).reshape(1)
        if step.kind == "loss-grad":
            return net.output_grad(upstream, model.target)
        dx, pgrads = net.layers[step.index].backward(upstream, self.cache(step.index), self.params(step.index))
        if step.kind == "input-grad":
            return dx
        name = f"{net.names[step.index]}.{step.param}"
        penalty = net.penalty_grad(name, model.params[name])   # L2 regularization: + 2 λ θ
        return pgrads[step.param] if penalty is None else pgrads[step.param] + penalty

    def run(self, steps: list[Step], upstream: np.ndarray | None) -> np.ndarray:
        """The steps done right, one after the other, starting from ``upstream``."""
        value = upstream
        with np.errstate(all="ignore"):
            for step in steps:
                value = self.apply(step, value)
        return value

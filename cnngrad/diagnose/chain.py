"""The computation as a chain of steps, each quantity made from the one before it by one layer.

Forward: layer k's output from layer k−1's (``input`` first), the loss from the output (the
input itself when there are no layers).
Backward: ∂E/∂output from the output (the loss's gradient); ∂E/∂(layer k−1's output) and
∂E/∂(layer k's parameters) from ∂E/∂(layer k's output) through layer k's backward. A backward
step uses the right forward pass (its caches), unless the user gave the layer's input (or a value
it is made from) wrong: then that value's forward pass, as a student backpropagates through their
own numbers (``through_right_forward`` switches that off, for a value printed wrong but not
computed with). So a recomputation differs from the right value only through the user's values
it reads, or a mistake made on the way.

In a branched network (docs/reference.md §1) a step's parent is the nearest value it needs: a
layer that joins several values is made from the latest of them, the others taken right; a value
read by several layers gets its delta through the first of them (the nearest from below), the
other readers' parts (``others``) added, from the user's deltas of those readers where given.
The list of layers is a topological order, so the chain's order (``quantities.chain``) stays one
in which everything comes after what it is made from.

Arrays here are in the engine's layout (a batch axis: 1, or N rows with ``batch: N``); ``user``
and ``internal`` convert. With ``batch: N`` the per-example ``losses`` come from the output too,
and the loss and its gradient carry the batch's reduction. The loss and a regularized parameter's
gradient include the L2 penalty (λ Σ θ², 2 λ θ).
"""
from __future__ import annotations

from contextlib import contextmanager

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
        self.values = [net.value_name(v) for v in range(len(net.names) + 1)]   # Network.reads' numbers
        self.steps: dict[str, Step] = {}
        self.right: dict[str, np.ndarray] = {"input": model.input}
        self._add_forward()
        last = net.names[-1] if net.names else "input"     # layers: [] — the loss reads the input
        if model.has_loss:
            self._add_loss(last)
        self.steps[quantities.gradient_of(last)] = Step(quantities.gradient_of(last), last, "loss-grad", None)
        # a value's readers but the nearest: (reader, value number), their parts added to its delta
        self.farther: dict[str, list[tuple[int, int]]] = {}
        self.given: dict[str, np.ndarray] = {}     # the user's values (``use_given``)
        self._others: dict[tuple[str, bool], np.ndarray] = {}
        self._wrong: frozenset[str] = frozenset()   # the given values that failed
        self._caches: dict[int, object] = {}        # forward caches of those values
        self._own = True                            # backward steps read those values (``through_right_forward``)
        self._add_backward(grads)
        self.right[quantities.gradient_of("input")] = grads.input
        self.order = self._order()

    def _add_forward(self) -> None:
        """Each layer's output from the latest value it reads, and a layer that mixes the examples'
        batch statistics (batch norm's mean and var) from the same."""
        net = self.network
        for k, name in enumerate(net.names):
            self.steps[name] = Step(name, self.values[max(net.reads[k])], "forward", k)
            self.right[name] = self.trace.outputs[k]
            if net.layers[k].mixes_examples:
                for key, value in net.layers[k].statistics(self.trace.caches[k]).items():
                    self.steps[f"{name}.{key}"] = Step(f"{name}.{key}", self.values[max(net.reads[k])],
                                                       "statistics", k, key)
                    self.right[f"{name}.{key}"] = value

    def _add_loss(self, last: str) -> None:
        """The loss from the output ``last``; with ``batch: N`` the per-example losses, with L2
        regularization loss = data_loss + penalty (of the parameters)."""
        model = self.model
        self.steps["loss"] = Step("loss", last, "loss", None)
        self.right["loss"] = np.asarray(model.loss(self.trace)).reshape(1)
        if model.batched:
            self.steps["losses"] = Step("losses", last, "losses", None)
            self.right["losses"] = model.example_losses(self.trace)
        if self.network.regularization is not None:
            self.steps["data_loss"] = Step("data_loss", last, "data_loss", None)
            self.right["data_loss"] = np.asarray(model.data_loss(self.trace)).reshape(1)
            self.steps["penalty"] = Step("penalty", "input", "penalty", None)
            self.right["penalty"] = np.asarray(model.penalty()).reshape(1)

    def _add_backward(self, grads) -> None:
        """From the loss back, each layer's delta to the values it reads (through their nearest
        reader; the others are ``farther``) and to its parameters."""
        net, names = self.network, self.network.names
        for k in reversed(range(len(names))):
            delta = quantities.gradient_of(names[k])
            self.right[delta] = grads.outputs[names[k]]
            for value in set(net.reads[k]):
                below = quantities.gradient_of(self.values[value])
                if min(net.consumers[value]) != k:
                    self.farther.setdefault(below, []).append((k, value))
                    continue
                self.steps[below] = Step(below, delta, "input-grad", k)
            for pname in net.layers[k].param_names:
                node = quantities.gradient_of(f"{names[k]}.{pname}")
                self.steps[node] = Step(node, delta, "param-grad", k, pname)
                self.right[node] = grads.params[f"{names[k]}.{pname}"]

    def _order(self) -> dict[str, float]:
        """Each node's position in the chain (``quantities.chain``), the loss's parts just before
        it and batch statistics just after their layer's output."""
        names, net = self.network.names, self.network
        order = quantities.position(quantities.chain(
            names, {name: layer.param_names for name, layer in zip(names, net.layers)}, self.model.has_loss))
        for k, part in enumerate(("losses", "data_loss", "penalty")):
            if part in self.steps:
                order[part] = order["loss"] - 0.5 + 0.1 * k
        for node, step in self.steps.items():
            if step.kind == "statistics":
                order[node] = order[names[step.index]] + 0.5
        return order

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
        input; for a gradient, the output, where backpropagation starts, unless the output is made
        from a value the user gave wrong: then from that one)."""
        steps = []
        while True:
            step = self.steps[node]
            steps.append(step)
            if step.parent in given or step.parent == "input" or \
                    (step.kind == "loss-grad" and self.wrong_source(step.parent, given) is None):
                return step.parent, steps[::-1]
            node = step.parent

    def wrong_source(self, value: str, given) -> str | None:
        """The value the user gave wrong that forward ``value`` is, or is made from by the steps
        between (done right); None when it is made from right values, or backward steps read the
        right forward values (``through_right_forward``)."""
        if not self._wrong or not self._own:
            return None
        if value not in given and value != "input":
            value = self.path(value, given)[0]
        return value if value in self._wrong else None

    def cache(self, index: int):
        """Layer ``index``'s forward cache, for its backward: of the user's own input to it where
        they gave that value wrong (a student backpropagates through their own numbers), else the
        right run's."""
        if self.forward_input(index) is None:
            return self.trace.caches[index]
        if index not in self._caches:
            self._caches[index] = self.network.layers[index].forward(self.layer_input(index), self.params(index))[1]
        return self._caches[index]

    def layer_input(self, index: int) -> np.ndarray:
        """Layer ``index``'s input as its backward reads it (``cache``): the user's own where they gave
        it wrong (or a value it is made from), else the right run's."""
        source = self.forward_input(index)
        if source is None:
            return self.trace.inputs[index]
        value = self.values[self.network.reads[index][0]]
        return self.given[value] if value == source else self.run(self.path(value, self.given)[1], self.given[source])

    def forward_input(self, index: int) -> str | None:
        """The wrong value the user gave that layer ``index``'s input is (or is made from, by the
        layers between, done right); None when there is none, or the layer joins several values
        (its backward reads no single input)."""
        net = self.network
        return None if net.layers[index].joins else self.wrong_source(self.values[net.reads[index][0]], self.given)

    def wrong_forward(self, steps: list[Step]) -> list[str]:
        """The forward values the user gave wrong that backward ``steps`` read: a layer's input
        (``forward_input``), the output the loss's gradient is made from."""
        read = [self.wrong_source(step.parent, self.given) if step.kind == "loss-grad" else
                self.forward_input(step.index) if step.kind in ("input-grad", "param-grad") else None
                for step in steps]
        return list(dict.fromkeys(name for name in read if name is not None))

    @contextmanager
    def through_right_forward(self):
        """Within it, backward steps read the right forward values, not the user's wrong ones: for
        a value printed wrong (a typo) while the gradients were computed from the right one."""
        self._own = False
        try:
            yield
        finally:
            self._own = True

    def params(self, index: int) -> dict[str, np.ndarray]:
        return self.network.params_of(index, self.model.params)

    def part(self, index: int, value: int, upstream: np.ndarray) -> np.ndarray:
        """What layer ``index``'s backward from ``upstream`` hands back to value number ``value``
        (summed over the operands it reads it as)."""
        return self.network.read_part(index, value, upstream, self.cache(index), self.params(index))

    def side_inputs(self, step: Step) -> list[str]:
        """The quantities besides its parent that ``step`` reads: the other operands of a layer
        that joins several values, the deltas of a value's farther readers, the wrong forward value
        a backward step's layer read (``forward_input``)."""
        if step.kind == "forward":
            return [self.values[v] for v in self.network.reads[step.index] if self.values[v] != step.parent]
        if step.kind not in ("input-grad", "param-grad"):
            return []
        farther = [quantities.gradient_of(self.network.names[k]) for k, _ in self.farther.get(step.node, [])]
        return [name for name in (self.forward_input(step.index), *farther) if name is not None]

    def use_given(self, given: dict[str, np.ndarray], wrong=frozenset()) -> None:
        """Take the user's values (engine layout, by node) as the deltas the farther readers of a
        value pass back from, and those of them that failed (``wrong``) as the forward values a
        layer's backward reads: an error they carry then comes along, as it would by hand."""
        self.given, self._others, self._wrong, self._caches = given, {}, frozenset(wrong), {}

    def others(self, node: str) -> np.ndarray | None:
        """What the readers of ``node``'s value other than the nearest pass back to its delta
        (from the user's delta of each reader where given, else the right one); None when the
        value has one reader."""
        if node not in self.farther:
            return None
        key = (node, self._own)      # the readers' backward reads the user's forward values, or not
        if key not in self._others:
            parts = []
            for k, value in self.farther[node]:
                delta = quantities.gradient_of(self.network.names[k])
                parts.append(self.part(k, value, self.given.get(delta, self.right[delta])))
            self._others[key] = sum(parts[1:], parts[0])
        return self._others[key]

    def completed(self, step: Step, value: np.ndarray) -> np.ndarray:
        """A delta ``step`` made through its layer alone, with the other readers' parts added."""
        others = self.others(step.node) if step.kind == "input-grad" else None
        return value if others is None else value + others

    def apply(self, step: Step, upstream: np.ndarray) -> np.ndarray:
        """One step, done right, from ``upstream`` (the parent's value), by the function for its kind."""
        return self._APPLY[step.kind](self, step, upstream)

    def _forward(self, step: Step, upstream: np.ndarray) -> np.ndarray:
        """A layer's output; a layer that joins several values takes the others as given, else right."""
        net = self.network
        layer, reads = net.layers[step.index], net.reads[step.index]
        if not layer.joins:
            return layer.forward(upstream, self.params(step.index))[0]
        operands = tuple(upstream if self.values[v] == step.parent else
                         self.given.get(self.values[v], self.right[self.values[v]]) for v in reads)
        return layer.forward(operands, self.params(step.index))[0]

    def _statistics(self, step: Step, upstream: np.ndarray) -> np.ndarray:
        """One batch statistic of a layer that mixes the examples, from its forward pass."""
        layer = self.network.layers[step.index]
        return layer.statistics(layer.forward(upstream, self.params(step.index))[1])[step.param]

    def _losses(self, step: Step, upstream: np.ndarray) -> np.ndarray:
        """The per-example losses of the output."""
        return np.asarray(self.network.loss.value(upstream, self.model.target), dtype=np.float64)

    def _data_loss(self, step: Step, upstream: np.ndarray) -> np.ndarray:
        """The loss without the penalty: the per-example losses under the batch's reduction."""
        net = self.network
        per_example = net.loss.value(upstream, self.model.target)
        return np.asarray(per_example.sum() * net.reduction_scale(), dtype=np.float64).reshape(1)

    def _penalty(self, step: Step, upstream: np.ndarray) -> np.ndarray:
        """λ Σ θ², of the parameters, whatever the upstream value."""
        return np.asarray(self.network.penalty(self.model.params), dtype=np.float64).reshape(1)

    def _loss(self, step: Step, upstream: np.ndarray) -> np.ndarray:
        """The loss: the data loss plus the penalty."""
        net, model = self.network, self.model
        per_example = net.loss.value(upstream, model.target)
        data = per_example.sum() * net.reduction_scale()
        return np.asarray(data + net.penalty(model.params), dtype=np.float64).reshape(1)

    def _loss_grad(self, step: Step, upstream: np.ndarray) -> np.ndarray:
        """∂E/∂output, where backpropagation starts."""
        return self.network.output_grad(upstream, self.model.target)

    def _input_grad(self, step: Step, upstream: np.ndarray) -> np.ndarray:
        """A value's delta through its nearest reader, the farther readers' parts added."""
        value = self.values.index(quantities.value_of(step.node))
        return self.completed(step, self.part(step.index, value, upstream))

    def _param_grad(self, step: Step, upstream: np.ndarray) -> np.ndarray:
        """A parameter's gradient through its layer's backward, + 2 λ θ under L2 regularization."""
        net = self.network
        _, pgrads = net.layers[step.index].backward(upstream, self.cache(step.index), self.params(step.index))
        name = f"{net.names[step.index]}.{step.param}"
        penalty = net.penalty_grad(name, self.model.params[name])
        return pgrads[step.param] if penalty is None else pgrads[step.param] + penalty

    _APPLY = {"forward": _forward, "statistics": _statistics, "losses": _losses, "data_loss": _data_loss,
              "penalty": _penalty, "loss": _loss, "loss-grad": _loss_grad, "input-grad": _input_grad,
              "param-grad": _param_grad}

    def run(self, steps: list[Step], upstream: np.ndarray | None) -> np.ndarray:
        """The steps done right, one after the other, starting from ``upstream``."""
        value = upstream
        with np.errstate(all="ignore"):
            for step in steps:
                value = self.apply(step, value)
        return value

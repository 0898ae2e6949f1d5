"""A built example: the network, its parameter values, the input and target, and how to show them.

``build`` (in ``cnngrad.spec``) makes a ``Model`` from a validated spec. Internally every array has
the engine's layout (a batch axis, maps as (C, H, W)); ``user`` restores the rank the user wrote,
so a 2-D input gives 2-D maps and a 2-D kernel a 2-D gradient (docs/reference.md §1).
"""
from __future__ import annotations

import numpy as np

from .network import Gradients, Network, Trace
from .quantities import gradient_of, label
from .record import Record


class NonFiniteError(ArithmeticError):
    """A value became NaN or infinite; the message names the layer where it first happened."""


def _first_bad(array: np.ndarray) -> str:
    """``inf at [0, 2]``: the kind and index of the first non-finite entry."""
    index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
    value = array[index]
    return f"{'nan' if np.isnan(value) else value} at [{', '.join(map(str, index))}]"


CODE_TOLERANCE = (1e-7, 1e-10)   # (rtol, atol) for values computed in float64 by code, under auto


class Expectation(Record):
    """One entry of a spec's ``expect:`` section.

    ``quantity`` is a docs/reference.md §2 name without index (``grad.conv1.kernel``), ``index`` the entry
    named by ``[i,j]`` or None, ``values`` the numbers in the shape written, ``texts`` each number
    as written (for ``tolerance: auto``), ``tolerance`` an absolute tolerance or None for auto.
    Values computed by code (a ``{file: ...}`` or ``check --against``) have no texts: ``code`` is
    then the (rtol, atol) they are held to under auto (see ``gradcheck.expect.entry_tolerance``).
    """

    __slots__ = ("quantity", "index", "values", "texts", "tolerance", "line", "column", "code")

    def __init__(self, quantity: str, index: tuple[int, ...] | None, values: np.ndarray,
                 texts: np.ndarray | None, tolerance: float | None, line: int, column: int,
                 code: tuple[float, float] | None = None):
        self.quantity, self.index, self.values, self.texts = quantity, index, values, texts
        self.tolerance, self.line, self.column, self.code = tolerance, line, column, code

    @property
    def label(self) -> str:
        return label(self.quantity, self.index)


class Model(Record):
    """Everything one spec describes, ready to run."""

    __slots__ = ("path", "network", "params", "input", "target", "user_shapes", "name", "description",
                 "expect", "loss_missing", "notes", "places", "batched")

    def __init__(self, path: str, network: Network, params: dict[str, np.ndarray], input: np.ndarray,
                 target: np.ndarray | None, user_shapes: dict[str, tuple[int, ...]], name: str | None = None,
                 description: str | None = None, expect: list[Expectation] | None = None,
                 loss_missing: Exception | None = None, notes: list[str] | None = None,
                 places: dict[str, tuple[int, int]] | None = None, batched: bool = False):
        self.path, self.network = path, network
        self.params = params                # internal shapes, no batch axis
        self.input = input                  # (N, *internal input shape), N = network.batch
        self.target = target                # (N, *internal output shape); the upstream gradient for loss none
        self.user_shapes = user_shapes      # docs/reference.md §2 name (input, output, conv1, conv1.kernel) -> shape
        self.name, self.description = name, description
        self.expect = [] if expect is None else expect
        # a spec without loss and target runs forward only; this error is raised by what needs them
        self.loss_missing = loss_missing
        self.notes = [] if notes is None else notes   # for forward's summary: rows a window never reads
        # (line, column) where the spec writes the input, each layer and each parameter (or its
        # layer, when the parameter is not written), for CI annotations
        self.places = {} if places is None else places
        # `batch: N` declared: the input, target and every layer's output (and their gradients)
        # have the N axis first in the user's shapes; ``input`` and ``target`` hold N rows either way
        self.batched = batched

    @property
    def has_loss(self) -> bool:
        return self.network.loss is not None and self.network.loss.name != "none"

    def user(self, quantity: str, array: np.ndarray) -> np.ndarray:
        """``array`` (with or without a batch axis of 1; with ``batch: N`` its N rows) in the rank the
        user wrote ``quantity``."""
        return np.asarray(array, dtype=np.float64).reshape(self.user_shapes[quantity])

    def forward(self) -> Trace:
        """The unperturbed forward pass; a value that is not finite is an error naming it: the
        input or a parameter as given (a random draw can overflow), else the first layer whose
        output overflowed although what it read was finite."""
        for name, value in (("input", self.input), *self.params.items()):
            if not np.isfinite(value).all():
                raise NonFiniteError(f"{self.path}: {name}: the value is not finite "
                                     f"({_first_bad(self.user(name, value))}); every value must be a "
                                     f"finite float64 (a random scale near 1e308 can draw ±inf)")
        with np.errstate(all="ignore"):   # overflow is reported below, by layer
            trace = self.network.forward(self.input, self.params)
        for name, output in zip(self.network.names, trace.outputs):
            if not np.isfinite(output).all():
                raise NonFiniteError(f"{self.path}: {name}: the output is not finite "
                                     f"({_first_bad(self.user(name, output))}) although its input and "
                                     f"parameters are finite: it overflowed float64")
        return trace

    def loss(self, trace: Trace) -> float | None:
        """E: the data loss plus the L2 penalty of ``regularization``, if any (None for ``loss:
        none`` or no loss); an infinite loss is an error that says why."""
        data = self.data_loss(trace)
        return None if data is None else data + self.penalty()

    def data_loss(self, trace: Trace) -> float | None:
        """The examples' losses reduced (sum or mean), without a penalty (None for ``loss: none``
        or no loss); an infinite loss is an error that says why."""
        if not self.has_loss:
            return None
        with np.errstate(all="ignore"):   # a loss that overflowed is reported below
            losses = self.network.losses(trace, self.target)
            loss = float(self.network.objective(trace, self.target)[0])
        if not np.isfinite(loss):
            computed, read = self.network.loss_reads(trace)
            names = self.network.names
            name = "output"
            if read is not trace.output:   # a fused loss read the logits, the last layer's input
                logits = self.network.reads[-1][0]
                name = names[logits - 1] if logits else "input"
            bad = int(np.argmax(~np.isfinite(losses)))   # the first example whose loss is not finite
            example = slice(bad, bad + 1)
            with np.errstate(all="ignore"):
                cause = computed.overflow_cause(self.example(name, read, bad),
                                                self.example("target", self.target, bad), name)
            which = f"example {bad}'s loss is {losses[example][0]}, so " if self.batched else ""
            raise NonFiniteError(f"{self.path}: loss: {self.network.loss.label} is {loss}: {which}{cause}")
        return loss

    def penalty(self) -> float:
        """The L2 penalty λ Σ θ² of ``regularization`` (0.0 without it); an overflow is an error."""
        with np.errstate(over="ignore"):
            penalty = self.network.penalty(self.params)
        if not np.isfinite(penalty):
            raise NonFiniteError(f"{self.path}: regularization: the penalty λ Σ θ² overflowed float64")
        return penalty

    def example(self, quantity: str, array: np.ndarray, n: int) -> np.ndarray:
        """Example ``n`` of an engine array of ``quantity`` (N rows), in the user's rank of one
        example, with a batch axis of 1."""
        shape = self.user_shapes[quantity][1:] if self.batched else self.user_shapes[quantity]
        return np.asarray(array[n:n + 1], dtype=np.float64).reshape((1,) + tuple(shape))

    def example_losses(self, trace: Trace) -> np.ndarray | None:
        """The loss of each of the N examples (before the reduction), or None without a loss."""
        if not self.has_loss:
            return None
        with np.errstate(all="ignore"):
            return self.network.losses(trace, self.target)

    def backward(self, trace: Trace) -> Gradients:
        """Every gradient of the unperturbed run; one that is NaN or overflows is an error naming it.

        The one exception is ∂E/∂(probabilities) of a final softmax or sigmoid fused with its loss:
        it is −t/y (or (1 − t)/(1 − y)) computed exactly from the logits, so an infinite entry is
        the true value beyond float64 (y has underflowed to 0), not a lost number; ∂E/∂(logits)
        and everything before stay finite. Renderers show it as ``inf (overflow)``, JSON as null.
        """
        if self.loss_missing is not None:
            raise self.loss_missing
        with np.errstate(all="ignore"):   # overflow is reported below, by quantity
            grads = self.network.backward(trace, self.params, self.target)
        exact = self.network.names[-1] if self.network.fused else None
        named = [("input", grads.input), *grads.outputs.items(), *grads.params.items()]
        for quantity, value in named:
            bad = np.isnan(value) if quantity == exact else ~np.isfinite(value)
            if bad.any():
                raise NonFiniteError(
                    f"{self.path}: {gradient_of(quantity)}: the gradient is not finite "
                    f"({_first_bad(self.user(quantity, value))}): the backward pass overflowed "
                    f"float64 although the forward pass was finite")
        return grads

    def values(self, gradients: bool = True, trace=None, grads=None) -> dict[str, np.ndarray]:
        """Every docs/reference.md §2 quantity, in the user's rank: values, layer outputs, loss and ``grad.*``
        (``gradients=False``: no backward pass and no ``grad.*``, which is all ``forward`` shows);
        from the ``trace`` and ``grads`` of this model's passes when the caller has them."""
        trace = self.forward() if trace is None else trace
        out = self._example_values(trace)
        if not gradients:
            return out
        out.update(self._gradient_values(self.backward(trace) if grads is None else grads))
        return out

    def _example_values(self, trace) -> dict[str, np.ndarray]:
        """The forward pass's quantities in the user's rank: input, output, target, the loss terms,
        parameters, layer outputs and batch statistics, in that order."""
        losses = self._loss_values(trace)
        out = {"input": self.user("input", self.input), "output": self.user("output", trace.output)}
        if self.target is not None:
            out["target"] = self.user("target", self.target)
        out.update(losses)
        for name, value in self.params.items():
            out[name] = self.user(name, value)
        for name, value in zip(self.network.names, trace.outputs):
            out[name] = self.user(name, value)
        for name, layer, cache in zip(self.network.names, self.network.layers, trace.caches):
            if layer.mixes_examples:   # the batch statistics it normalized with (batch norm)
                out.update({f"{name}.{key}": value for key, value in layer.statistics(cache).items()})
        return out

    def _loss_values(self, trace) -> dict[str, np.ndarray]:
        """``loss`` (data loss + penalty), with ``regularization`` its two terms, with ``batch`` each
        example's loss; nothing without a loss."""
        data = self.data_loss(trace)
        if data is None:
            return {}
        out = {"loss": np.array(data + self.penalty())}
        if self.network.regularization is not None:
            out["data_loss"], out["penalty"] = np.array(data), np.array(self.penalty())
        if self.batched:
            out["losses"] = self.example_losses(trace)
        return out

    def _gradient_values(self, grads) -> dict[str, np.ndarray]:
        """The ``grad.*`` quantities in the user's rank: of the input, the output (the input's when
        there are no layers), every layer output and every parameter."""
        out = {gradient_of("input"): self.user("input", grads.input)}
        out[gradient_of("output")] = self.user("output", grads.outputs[self.network.names[-1]]) \
            if self.network.names else out[gradient_of("input")]
        for name, value in grads.outputs.items():
            out[gradient_of(name)] = self.user(name, value)
        for name, value in grads.params.items():
            out[gradient_of(name)] = self.user(name, value)
        return out

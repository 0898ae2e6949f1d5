"""What a finite-difference check perturbs: the input, a parameter, or a layer's output.

A ``Probe`` turns "entries e of this quantity moved by steps s" into the batch of inputs of the
first layer that the change reaches (``start``), so only the layers downstream are re-run and
every perturbed copy runs in one batched call.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..network import Network, Trace
from ..record import Record


class Probe(Record):
    """A quantity to perturb entry by entry.

    ``values`` and ``analytic`` have the quantity's internal shape (no batch axis). Both callables
    return the inputs of layer ``start``, one copy per row: ``perturbed(entries, steps)`` moves flat
    entry ``entries[k]`` by ``steps[k]``; ``moved(changes)`` adds ``changes[k]`` (the quantity's
    shape) to the whole quantity.
    """

    __slots__ = ("quantity", "values", "analytic", "start", "perturbed", "moved", "step_scale",
                 "unit_probe", "units", "one_channel")

    def __init__(self, quantity: str, values: np.ndarray, analytic: np.ndarray, start: int,
                 perturbed: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 moved: Callable[[np.ndarray], np.ndarray], step_scale: np.ndarray | None = None,
                 unit_probe: Probe | None = None,
                 units: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
                 one_channel: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None):
        self.quantity, self.values, self.analytic, self.start = quantity, values, analytic, start
        self.perturbed, self.moved = perturbed, moved
        self.step_scale = step_scale   # per entry; the step is eps times it (default max(1, |θ|))
        # for a parameter each of whose entries moves one output unit of its layer (fc): that layer's
        # output probe, and entries -> (units, factors); all entries of a unit share its four runs
        self.unit_probe, self.units = unit_probe, units
        # for a parameter each of whose entries moves one channel of its layer's output map (conv),
        # followed by channel-wise layers: (entries, steps) -> (that channel of each copy, shape
        # (N, 1, H, W), and its index); the other channels are the unperturbed run's
        self.one_channel = one_channel

    @property
    def runs(self) -> int:
        """How many entries get their own four perturbed runs (units, when they share them)."""
        return self.values.size if self.unit_probe is None else self.unit_probe.values.size

    def steps(self, eps: float) -> np.ndarray:
        """The finite-difference step of every flat entry, a multiple of two units in the last
        place of the entry, so that θ ± h and θ ± h/2 are exact and the quotients divide by the
        step actually taken (y = 1 − 1e-7 stepped by 1e-11 would otherwise be off by 2e-5)."""
        scale = np.maximum(1.0, np.abs(self.values)) if self.step_scale is None else self.step_scale
        wanted = eps * scale.reshape(-1)
        grain = 2 * np.spacing(np.maximum(np.abs(self.values).reshape(-1), wanted))
        return np.maximum(np.round(wanted / grain), 1.0) * grain


def shifted_copies(base: np.ndarray, entries: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``len(entries)`` copies of ``base``; in copy k the flat entry ``entries[k]`` is moved by ``steps[k]``."""
    copies = np.repeat(base[None], len(entries), axis=0)
    flat = copies.reshape(len(entries), -1)
    flat[np.arange(len(entries)), entries] += steps
    return copies


def input_probe(network: Network, trace: Trace, params: dict[str, np.ndarray], analytic: np.ndarray,
                structured: bool = True) -> Probe:
    """Perturb the input. A first layer that is linear in its input (conv) is not re-run: a copy's
    output is y + s · ∂y/∂x_e, exactly what its forward would give."""
    x = trace.inputs[0][0]
    first = network.layers[0] if network.layers else None
    if not (structured and hasattr(first, "input_change")):
        scale = None if network.layers else network.loss.step_scale(x)   # no layers: x is the output
        return Probe("input", x, analytic, 0, lambda e, s: shifted_copies(x, e, s), lambda d: x + d, scale)
    own = network.params_of(0, params)
    y = trace.outputs[0][0]

    def perturbed(entries, steps):
        change = first.input_change(trace.inputs[0], own, entries)
        return y[None] + steps.reshape((-1,) + (1,) * y.ndim) * change

    return Probe("input", x, analytic, 1, perturbed, lambda d: first.forward(x + d, own)[0])


def output_probe(network: Network, trace: Trace, index: int, analytic: np.ndarray) -> Probe:
    """Perturb the output of layer ``index`` and run only the layers after it.

    The final output goes straight into the loss, which says how far it may move (a probability
    into an entropy loss moves relative to itself).
    """
    y = trace.outputs[index][0]
    scale = network.loss.step_scale(y) if index == len(network.layers) - 1 else None
    return Probe(network.names[index], y, analytic, index + 1,
                 lambda e, s: shifted_copies(y, e, s), lambda d: y + d, scale)


def param_probe(network: Network, trace: Trace, params: dict[str, np.ndarray], name: str,
                analytic: np.ndarray, structured: bool = True) -> Probe:
    """Perturb one parameter of a layer; its output is recomputed, then the layers after it.

    With ``structured`` and a layer that provides ``output_change`` (conv and fc are affine in
    each parameter), a copy's output is y + s · ∂y/∂θ_e, exactly what the layer's forward would
    give, without re-running the layer once per entry; and when that moves one channel of a map
    (conv) that channel-wise layers read, those layers run on that channel alone.
    """
    layer_name, pname = name.rsplit(".", 1)
    index = network.names.index(layer_name)
    layer = network.layers[index]
    x = trace.inputs[index]
    y = trace.outputs[index][0]
    own = network.params_of(index, params)
    theta = own[pname]

    def forward_with(thetas):
        """The layer's output for each of ``thetas`` (one call each: the plain, unstructured path)."""
        return np.stack([layer.forward(x, {**own, pname: t})[0][0] for t in thetas])

    def moved(changes):
        return forward_with(theta + change for change in changes)

    if structured and hasattr(layer, "output_change"):
        def perturbed(entries, steps):
            change = layer.output_change(x, own, pname, entries)
            return y[None] + steps.reshape((-1,) + (1,) * y.ndim) * change
    else:
        def perturbed(entries, steps):
            def one(entry, step):
                shifted = theta.copy()
                shifted.flat[entry] += step
                return shifted
            return forward_with(one(e, s) for e, s in zip(entries, steps))

    if structured and hasattr(layer, "output_unit"):
        return Probe(name, theta, analytic, index + 1, perturbed, moved,
                     unit_probe=output_probe(network, trace, index, np.zeros_like(y)),
                     units=lambda entries: layer.output_unit(x, own, pname, entries))
    if structured and hasattr(layer, "output_channel") and index + 1 < len(network.layers) \
            and network.layers[index + 1].channelwise:
        def one_channel(entries, steps):
            channels = layer.output_channel(own, pname, entries)
            change = layer.output_change(x, own, pname, entries)[np.arange(len(entries)), channels]
            return (y[channels] + steps.reshape((-1,) + (1,) * (y.ndim - 1)) * change)[:, None], channels

        return Probe(name, theta, analytic, index + 1, perturbed, moved, one_channel=one_channel)
    return Probe(name, theta, analytic, index + 1, perturbed, moved)

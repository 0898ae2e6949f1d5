"""What a finite-difference check perturbs: the input, a parameter, or a layer's output.

A ``Probe`` turns "entries e of this quantity moved by steps s" into the batch of inputs of the
first layer that the change reaches (``start``), so only the layers downstream are re-run and
every perturbed copy runs in one batched call.

A copy holds all N examples of the spec (``batch: N``): the input and a layer's output are
quantities of shape (N, ...), an entry of which belongs to one example, and the inputs a probe
gives have the shape (copies, N, ...). A parameter is shared: moving it moves every example.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..network import Network, Trace
from ..record import Record
from . import crop
from .finite import Differences, Evaluator, central_differences


class Probe(Record):
    """A quantity to perturb entry by entry.

    ``values`` and ``analytic`` have the quantity's internal shape (the N axis first for the input
    and layer outputs, none for a parameter). Both callables return the inputs of layer ``start``,
    (copies, N, ...): ``perturbed(entries, steps)`` moves flat
    entry ``entries[k]`` by ``steps[k]``; ``moved(changes)`` adds ``changes[k]`` (the quantity's
    shape) to the whole quantity. ``step_scale`` is per entry: the step is eps times it (default
    max(1, |θ|)). ``shortcut``, if any, is a cheaper way to the same differences of every entry
    (``SharedUnitRuns``, ``OneChannelRuns``, ``crop.CroppedRuns``). ``penalty``, for a regularized
    parameter, is the change of the L2 penalty each copy makes (``PenaltyChange``). ``reader``, if
    any, is the one layer that sees the copies' change of value ``start`` (``reader_probe``).
    ``moved(changes, overwrite=True)`` may form the sums in the memory of ``changes``.
    """

    __slots__ = ("quantity", "values", "analytic", "start", "perturbed", "moved", "step_scale", "shortcut",
                 "penalty", "reader")

    def __init__(self, quantity: str, values: np.ndarray, analytic: np.ndarray, start: int,
                 perturbed: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 moved: Callable[[np.ndarray], np.ndarray], step_scale: np.ndarray | None = None,
                 shortcut: SharedUnitRuns | OneChannelRuns | crop.CroppedRuns | None = None,
                 penalty: PenaltyChange | None = None, reader: int | None = None):
        self.quantity, self.values, self.analytic, self.start = quantity, values, analytic, start
        self.perturbed, self.moved = perturbed, moved
        self.step_scale, self.shortcut = step_scale, shortcut
        self.penalty, self.reader = penalty, reader

    @property
    def runs(self) -> int:
        """How many entries get their own four perturbed runs (units, when they share them)."""
        return self.values.size if self.shortcut is None else self.shortcut.runs(self)

    def steps(self, eps: float) -> np.ndarray:
        """The finite-difference step of every flat entry, a multiple of two units in the last
        place of the entry, so that θ ± h and θ ± h/2 are exact and the quotients divide by the
        step actually taken (y = 1 − 1e-7 stepped by 1e-11 would otherwise be off by 2e-5)."""
        scale = np.maximum(1.0, np.abs(self.values)) if self.step_scale is None else self.step_scale
        wanted = eps * scale.reshape(-1)
        grain = 2 * np.spacing(np.maximum(np.abs(self.values).reshape(-1), wanted))
        return np.maximum(np.round(wanted / grain), 1.0) * grain

    def smallest_step(self, eps: float) -> float:
        """The step of a move along a direction (--fast), so that no entry moves farther than its
        own step allows: eps · max(1, min |θ|), not rounded to a grain, as θ + s·v lands between
        grid points anyway (and without visiting every entry's step: fc1's 48,000); with a
        ``step_scale`` (a probability's, which may be tiny) the smallest of ``steps``."""
        if self.step_scale is not None:
            return float(self.steps(eps).min())
        return eps * max(1.0, float(np.min(np.abs(self.values))))

    def differences(self, evaluator: Evaluator, eps: float) -> Differences:
        """Central differences of every entry: four perturbed runs each, or through the shortcut."""
        if self.shortcut is not None:
            return self.shortcut.differences(evaluator, self, eps)
        return central_differences(evaluator, self.start, self.steps(eps), self.perturbed,
                                   penalty=self.penalty_entries)

    def finer(self, evaluator: Evaluator, entries: np.ndarray, eps: float) -> Differences:
        """Central differences of flat ``entries`` alone with step ``eps`` (a second look at a
        failure, ``check.second_look``), through the plain path: ``perturbed``."""
        penalty = None if self.penalty is None else (lambda k, steps: self.penalty.entries(entries[k], steps))
        return central_differences(evaluator, self.start, self.steps(eps)[entries],
                                   lambda k, steps: self.perturbed(entries[k], steps), penalty=penalty)

    @property
    def penalty_entries(self):
        """For a regularized parameter, how each copy moved the L2 penalty (``PenaltyChange.entries``),
        which every way of running its copies adds to their losses; else None."""
        return None if self.penalty is None else self.penalty.entries


class SharedUnitRuns(Record):
    """Speed-up for a parameter each of whose entries moves one output unit of its layer (fc):
    the entries of a unit share that unit's four runs. ``unit_probe`` perturbs the layer's output;
    ``units(entries)`` gives each entry's unit and its factor (``Differences.along``)."""

    __slots__ = ("unit_probe", "units")

    def __init__(self, unit_probe: Probe, units: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]):
        self.unit_probe, self.units = unit_probe, units

    def runs(self, probe: Probe) -> int:
        return self.unit_probe.values.size

    def differences(self, evaluator: Evaluator, probe: Probe, eps: float) -> Differences:
        unit = self.unit_probe
        per_unit = central_differences(evaluator, unit.start, unit.steps(eps), unit.perturbed)
        return per_unit.along(*self.units(np.arange(probe.values.size)))


class OneChannelRuns(Record):
    """Speed-up for a parameter each of whose entries moves one channel of its layer's output map
    (conv), followed by channel-wise layers: ``copies(entries, steps)`` gives that channel of each
    copy, shape (N, 1, H, W), and its index; those layers run on it alone, the other channels are
    the unperturbed run's."""

    __slots__ = ("copies",)

    def __init__(self, copies: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]):
        self.copies = copies

    def runs(self, probe: Probe) -> int:
        return probe.values.size

    def differences(self, evaluator: Evaluator, probe: Probe, eps: float) -> Differences:
        return central_differences(evaluator, probe.start, probe.steps(eps), self.copies, one_channel=True,
                                   penalty=probe.penalty_entries)


class PenaltyChange(Record):
    """How a perturbed copy of a regularized parameter θ changes the L2 penalty λ Σ θ²: by
    λ s (2 θ_e + s) when entry e moves by s, by λ Σ d ⊙ (2 θ + d) when θ moves by d."""

    __slots__ = ("factor", "theta")

    def __init__(self, factor: float, theta: np.ndarray):
        self.factor, self.theta = factor, theta

    def entries(self, entries: np.ndarray, steps: np.ndarray) -> np.ndarray:
        return self.factor * steps * (2.0 * self.theta.reshape(-1)[entries] + steps)

    def moved(self, changes: np.ndarray) -> np.ndarray:
        flat = changes.reshape(len(changes), -1)
        return self.factor * np.sum(flat * (2.0 * self.theta.reshape(-1) + flat), axis=1)


def shifted_copies(base: np.ndarray, entries: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``len(entries)`` copies of ``base``; in copy k the flat entry ``entries[k]`` is moved by ``steps[k]``."""
    copies = np.repeat(base[None], len(entries), axis=0)
    flat = copies.reshape(len(entries), -1)
    flat[np.arange(len(entries)), entries] += steps
    return copies


def adding(base: np.ndarray) -> Callable[..., np.ndarray]:
    """``moved`` of a quantity that is itself its start layer's input: base + each of ``changes``,
    (copies, N, ...) (``overwrite``: in the memory of ``changes``, as ``LayerParameter.moved``)."""
    def moved(changes: np.ndarray, overwrite: bool = False) -> np.ndarray:
        return np.add(changes, base, out=changes if overwrite else None)
    return moved


def moved_exactly(y: np.ndarray, steps: np.ndarray, change: np.ndarray) -> np.ndarray:
    """y + s_k · ∂y/∂(entry k) for every copy k: the output a layer affine in what moved gives,
    exactly what its forward would give, without running it once per entry."""
    return y[None] + steps.reshape((-1,) + (1,) * y.ndim) * change


class LinearFirstLayer:
    """The input seen through a first layer linear in it (conv): copies start after that layer.
    ``x`` is the input (N, ...), ``y`` the layer's output (N, ...)."""

    def __init__(self, layer, x: np.ndarray, y: np.ndarray, own: dict[str, np.ndarray]):
        self.layer, self.x, self.y, self.own = layer, x, y, own

    def perturbed(self, entries: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Input entry e is entry e mod size of example e // size: only that example's output moves,
        by s · ∂y/∂x_e (the same for every example, the layer being linear)."""
        example, local = np.divmod(entries, self.x[0].size)
        change = self.layer.input_change(self.x[:1], self.own, local)
        copies = np.repeat(self.y[None], len(entries), axis=0)
        rows = np.arange(len(entries))
        copies[rows, example] += steps.reshape((-1,) + (1,) * (self.y.ndim - 1)) * change
        return copies

    def moved(self, changes: np.ndarray, overwrite: bool = False) -> np.ndarray:
        """The layer's output for the input x + each of ``changes`` (``overwrite``: in their memory)."""
        moved = np.add(changes, self.x, out=changes if overwrite else None)   # (copies, N, ...)
        out = self.layer.forward(moved.reshape((-1,) + self.x.shape[1:]), self.own)[0]
        return out.reshape(changes.shape[:2] + out.shape[1:])


def input_probe(network: Network, trace: Trace, params: dict[str, np.ndarray], analytic: np.ndarray,
                structured: bool = True, shortcuts: bool = True) -> Probe:
    """Perturb the input. A first layer that is linear in its input (conv) and its only reader is
    not re-run: a copy's output is y + s · ∂y/∂x_e, exactly what its forward would give.
    ``shortcuts=False`` leaves out the entry-by-entry speed-ups (``Probe.shortcut``), which --fast
    does not use (the input's receptive-field runs take LeNet-5 0.15 ms to plan)."""
    x = trace.value(0)
    first = network.layers[0] if network.layers else None
    if not (structured and first is not None and first.linear_in_input and network.chained(0)):
        scale = None if network.layers else network.loss.step_scale(x)   # no layers: x is the output
        cropped = crop.point_runs(network, trace, 0, x[0]) if structured and shortcuts else None
        return Probe("input", x, analytic, 0, lambda e, s: shifted_copies(x, e, s), adding(x), scale,
                     shortcut=cropped)
    through = LinearFirstLayer(first, x, trace.outputs[0], network.params_of(0, params))
    return Probe("input", x, analytic, 1, through.perturbed, through.moved,
                 shortcut=crop.first_conv_runs(network, trace, params) if shortcuts else None)


def output_probe(network: Network, trace: Trace, index: int, analytic: np.ndarray, shortcuts: bool = True) -> Probe:
    """Perturb the output of layer ``index`` and run only the layers after it.

    The final output goes straight into the loss, which says how far it may move (a probability
    into an entropy loss moves relative to itself). ``shortcuts``: as for ``input_probe``.
    """
    y = trace.outputs[index]
    scale = network.loss.step_scale(y) if index == len(network.layers) - 1 else None
    return Probe(network.names[index], y, analytic, index + 1,
                 lambda e, s: shifted_copies(y, e, s), adding(y), scale,
                 shortcut=crop.point_runs(network, trace, index + 1, y[0]) if shortcuts else None)


def reader_probe(network: Network, trace: Trace, value: int, reader: int, analytic: np.ndarray) -> Probe:
    """Perturb value ``value`` (0 the input, k + 1 layer k's output) as layer ``reader`` alone reads
    it, its other readers reading it unmoved: the differences are that reader's part of ∂E/∂v,
    J_readerᵀ δ_reader (``analytic``: ``Network.read_part``), apart from the other readers' parts.
    The copies run through ``Evaluator.read_by(reader)``."""
    v = trace.value(value)
    return Probe(network.value_name(value), v, analytic, value, lambda e, s: shifted_copies(v, e, s),
                 adding(v), reader=reader)


def _penalty_change(network: Network, params: dict[str, np.ndarray], name: str) -> PenaltyChange | None:
    """The L2 penalty's change for a regularized parameter (λ Σ θ² moves with θ too), else None."""
    if network.regularizes(name):
        return PenaltyChange(network.regularization[0], params[name])
    return None


def _one_example_runs(network: Network, trace: Trace, index: int, parameter: LayerParameter, penalty):
    """For one example: fc's entries share their output unit's runs (not with a penalty, whose
    change is not a unit's); conv's run the channel-wise layer after it on their one channel; else None."""
    layer = network.layers[index]
    if penalty is None and layer.param_moves_one_unit:
        return SharedUnitRuns(output_probe(network, trace, index, np.zeros_like(parameter.y)), parameter.units)
    if layer.param_moves_one_channel and index + 1 < len(network.layers) \
            and network.layers[index + 1].channelwise and network.chained(index + 1):
        return OneChannelRuns(parameter.one_channel)
    return None


class LayerParameter:
    """One parameter of one layer at the unperturbed run, and the ways a change of it reaches the
    layer's output: re-running the layer (always right), or, for a layer affine in its parameters,
    y + s · ∂y/∂θ_e (exact, no re-run), whole or one output channel at a time. ``x`` and ``y`` are
    the layer's input and output, (N, ...)."""

    def __init__(self, layer, x: np.ndarray, y: np.ndarray, own: dict[str, np.ndarray], pname: str):
        self.layer, self.x, self.y, self.own, self.pname = layer, x, y, own, pname
        self.theta = own[pname]

    def rerun(self, thetas) -> np.ndarray:
        """The layer's output for each of ``thetas`` (one forward each: the plain path), (copies, N, ...)."""
        return np.stack([self.layer.forward(self.x, {**self.own, self.pname: t})[0] for t in thetas])

    def moved(self, changes: np.ndarray, overwrite: bool = False) -> np.ndarray:
        """The layer's output at θ + each of ``changes``, (copies, N, ...), in one call
        (``Layer.forward_each``: conv and fc build their columns or products once for all);
        ``overwrite``: θ + changes is formed in the memory of ``changes`` (fc1's 7 × 48,000)."""
        values = np.add(changes, self.theta, out=changes if overwrite else None)
        return self.layer.forward_each(self.x, self.own, self.pname, values)

    def rerun_entries(self, entries: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """The output with flat entry ``entries[k]`` moved by ``steps[k]``, by re-running the layer."""
        return self.rerun(self._shifted(entry, step) for entry, step in zip(entries, steps))

    def _shifted(self, entry: int, step: float) -> np.ndarray:
        shifted = self.theta.copy()
        shifted.flat[entry] += step
        return shifted

    def exact_entries(self, entries: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """The same outputs as ``rerun_entries``, as y + s · ∂y/∂θ_e (``output_change``, which
        takes one example at a time: ∂y/∂θ_e depends on each example's input)."""
        change = np.stack([self.layer.output_change(self.x[n:n + 1], self.own, self.pname, entries)
                           for n in range(len(self.x))], axis=1)
        return moved_exactly(self.y, steps, change)

    def units(self, entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.layer.output_unit(self.x, self.own, self.pname, entries)

    def one_channel(self, entries: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The one output channel each perturbed copy moves, (copies, 1, H, W), and its index (one
        example only: ``param_probe`` takes this path for N = 1)."""
        channels, change = self.layer.channel_change(self.x, self.own, self.pname, entries)
        y = self.y[0]
        return (y[channels] + steps.reshape((-1,) + (1,) * (y.ndim - 1)) * change)[:, None], channels


def param_probe(network: Network, trace: Trace, params: dict[str, np.ndarray], name: str,
                analytic: np.ndarray, structured: bool = True, shortcuts: bool = True) -> Probe:
    """Perturb one parameter of a layer; its output is recomputed, then the layers after it.

    With ``structured``, a layer affine in its parameters (conv, fc) is not re-run per entry
    (``LayerParameter.exact_entries``); for one example (N = 1), fc's entries share their output
    unit's runs (``SharedUnitRuns``; with N examples an entry moves each example's unit by another
    factor), and conv's run the channel-wise layers after it on their one channel (``OneChannelRuns``).
    A regularized parameter's copies add their change of the L2 penalty (``PenaltyChange``); its
    entries then each run their own copies (the penalty's change is not a unit's).
    ``shortcuts``: as for ``input_probe``.
    """
    layer_name, pname = name.rsplit(".", 1)
    index = network.names.index(layer_name)
    layer = network.layers[index]
    penalty = _penalty_change(network, params, name)
    own = network.params_of(index, params)
    parameter = LayerParameter(layer, trace.inputs[index], trace.outputs[index], own, pname)
    exact = structured and layer.affine_in_params
    perturbed = parameter.exact_entries if exact else parameter.rerun_entries
    shortcut = None
    if structured and shortcuts:
        shortcut = _one_example_runs(network, trace, index, parameter, penalty) if network.batch == 1 else None
        # an untied conv bias entry moves one output entry: receptive-field probes after it
        shortcut = crop.untied_bias_runs(network, trace, index, pname) or shortcut
    return Probe(name, parameter.theta, analytic, index + 1, perturbed, parameter.moved, shortcut=shortcut,
                 penalty=penalty)

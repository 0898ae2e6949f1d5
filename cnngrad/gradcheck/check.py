"""``check_model``: every analytic gradient of a model against finite differences, and its ``expect``.

An entry passes when |analytic − numeric| ≤ atol + rtol · max(|analytic|, |numeric|) + noise, where
noise = 4 ε S / h + |D(h/2) − D(h)| / 16 bounds the rounding error of the difference quotients
(S = |E| + Σ_layers Σ |y ⊙ δ| being the first-order size of the rounding errors the forward pass
makes) and what Richardson's extrapolation leaves where the curvature is steep. A difference that
overflowed verifies nothing and fails. A kink entry passes when
the analytic value lies between its one-sided quotients (widened by the same tolerance and by how
much those quotients move between the steps h and h/2). When the steps cross more than one kink, no
such bracket holds (each unit may sit on its own side): the entry is a kink and is not judged.
"""
from __future__ import annotations

import numpy as np

from ..model import Model
from . import expect as expect_check
from .finite import STEPS, Differences, Evaluator, central_differences
from .probes import Probe, input_probe, output_probe, param_probe
from .results import EntryResult, QuantityResult, SpecResult

DEFAULT_EPS = 1e-4
DEFAULT_RTOL = 1e-7
DEFAULT_ATOL = 1e-10
DIRECTIONS = 6          # random directions per quantity with --fast


class UnknownQuantity(ValueError):
    """``--wrt`` named something that is neither the input, a parameter nor a layer."""


def judge(quantity: str, shape, analytic: np.ndarray, diffs: Differences, indices,
          rtol: float, atol: float, method: str = "full") -> QuantityResult:
    """Turn differences into per-entry verdicts; ``indices`` label the entries (user rank)."""
    numeric = diffs.numeric
    with np.errstate(all="ignore"):   # a difference that overflowed fails below, without warnings
        error = np.abs(analytic - numeric)
        tolerance = atol + rtol * np.maximum(np.abs(analytic), np.abs(numeric)) + diffs.noise
        measured = np.isfinite(numeric) & np.isfinite(tolerance)   # else nothing was verified
        ok = (error <= tolerance) & measured
        widen = tolerance + diffs.spread
        low = np.minimum(diffs.left, diffs.right) - widen
        high = np.maximum(diffs.left, diffs.right) + widen
        kink_ok = (((analytic >= low) & (analytic <= high)) | diffs.several) & measured
    status = np.where(diffs.kink, np.where(kink_ok, "kink", "fail"), np.where(ok, "ok", "fail"))
    smooth = ~diffs.kink
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    relative = np.divide(error, scale, out=np.zeros_like(error), where=np.isfinite(scale) & (scale > 0))
    relative[~np.isfinite(error)] = np.inf
    kinks = diffs.kink.tolist()
    entries = [
        EntryResult(index=index, analytic=a, numeric=n, abs_error=e, status=s,
                    left=lo if k else None, right=hi if k else None)
        for index, a, n, e, s, k, lo, hi in zip(indices, analytic.tolist(), numeric.tolist(),
                                                 error.tolist(), status.tolist(), kinks,
                                                 diffs.left.tolist(), diffs.right.tolist())
    ]
    return QuantityResult(
        quantity=quantity, shape=tuple(shape), passed=bool(np.all(status != "fail")),
        max_abs_error=float(error[smooth].max()) if smooth.any() else 0.0,
        max_rel_error=float(relative[smooth].max()) if smooth.any() else 0.0,
        kinks=int(diffs.kink.sum()), entries=entries, method=method)


def check_entries(evaluator: Evaluator, probe: Probe, user_shape, eps, rtol, atol) -> QuantityResult:
    """Every entry of one quantity: four perturbed runs per entry, batched (entries that move one
    output unit of their layer share that unit's runs; those that move one channel of a map run
    the channel-wise layers after it on that channel alone)."""
    if probe.units is not None:
        inner = probe.unit_probe
        per_unit = central_differences(evaluator, inner.start, inner.steps(eps), inner.perturbed)
        diffs = per_unit.along(*probe.units(np.arange(probe.values.size)))
    elif probe.one_channel is not None:
        diffs = central_differences(evaluator, probe.start, probe.steps(eps), probe.one_channel,
                                    one_channel=True)
    else:
        diffs = central_differences(evaluator, probe.start, probe.steps(eps), probe.perturbed)
    indices = [tuple(i) for i in np.argwhere(np.ones(user_shape, dtype=bool)).tolist()] \
        if user_shape else [()]
    return judge(probe.quantity, user_shape, probe.analytic.reshape(-1), diffs, indices, rtol, atol)


def check_directions(evaluator: Evaluator, probe: Probe, user_shape, eps, rtol, atol,
                     rng: np.random.Generator) -> QuantityResult:
    """Directional derivatives along a few random unit directions v: ∇E·v against the quotient."""
    directions = rng.standard_normal((DIRECTIONS, probe.values.size))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    step = float(probe.steps(eps).min())   # no entry moves farther than its own step allows
    shape = probe.values.shape

    def perturbed(items, steps):
        return probe.moved((steps[:, None] * directions[items]).reshape((-1,) + shape))

    diffs = central_differences(evaluator, probe.start, np.full(DIRECTIONS, step), perturbed)
    analytic = directions @ probe.analytic.reshape(-1)
    indices = [(k,) for k in range(DIRECTIONS)]
    return judge(probe.quantity, user_shape, analytic, diffs, indices, rtol, atol, method="fast")


def delta_probe(model: Model, trace, grads, index: int) -> Probe:
    """Probe ∂E/∂(output of layer ``index``).

    After a fused loss the reported ∂E/∂y of the final softmax/sigmoid comes from the logits; a
    finite difference can only move the stored, rounded y, so it is compared with the plain
    formula at that y (the two differ by the rounding of y, ε/(1−y) relative near y = 1).
    """
    net = model.network
    analytic = grads.outputs[net.names[index]][0]
    if net.fused and index == len(net.layers) - 1:
        analytic = net.loss.grad(trace.output, model.target)[0]
    return output_probe(net, trace, index, analytic)


def probes_for(model: Model, trace, grads, wrt) -> tuple[list[Probe], list[Probe]]:
    """The gradient probes (input and parameters) and delta probes (layer outputs) asked for."""
    net = model.network
    everything = {"input": lambda: input_probe(net, trace, model.params, grads.input[0])}
    for name in model.params:
        everything[name] = (lambda n=name: param_probe(net, trace, model.params, n, grads.params[n]))
    layers = {name: (lambda i=i: delta_probe(model, trace, grads, i)) for i, name in enumerate(net.names)}
    if not wrt:
        return [make() for make in everything.values()], []
    chosen, deltas = [], []
    for name in wrt:
        bare = name[5:] if name.startswith("grad.") else name
        if bare in everything:
            chosen.append(everything[bare]())
        elif bare in layers:
            deltas.append(layers[bare]())
        else:
            from ..spec.nodes import suggest
            allowed = list(everything) + net.names
            raise UnknownQuantity(f"--wrt {name}: no such quantity{suggest(bare, allowed)} "
                                  f"(choose from {', '.join(allowed)})")
    return chosen, deltas


def check_model(model: Model, *, eps: float | None = None, rtol: float | None = None,
                atol: float | None = None, wrt=(), fast: bool = False, deltas: bool = False,
                seed: int = 0, progress=None) -> SpecResult:
    """Check every gradient (or those in ``wrt``), the per-layer deltas when needed, and ``expect``.

    ``progress(advance, total)``, if given, hears how many perturbed copies each batch ran and how
    many the check needs in all (the total grows if per-layer delta checks become necessary).
    """
    eps = DEFAULT_EPS if eps is None else eps
    rtol = DEFAULT_RTOL if rtol is None else rtol
    atol = DEFAULT_ATOL if atol is None else atol
    trace = model.forward()
    model.loss(trace)   # raises if the loss is not finite: nothing to difference
    grads = model.backward(trace)
    gradient_probes, delta_probes = probes_for(model, trace, grads, wrt)
    total = 0

    def expect_work(probes):
        nonlocal total
        total += sum(len(STEPS) * (DIRECTIONS if fast else p.runs) for p in probes)

    def advance(count):
        if progress is not None:
            progress(count, total)

    evaluator = Evaluator(model.network, model.params, model.target, trace,
                          magnitude=rounding_magnitude(model, trace, grads), progress=advance)
    rng = np.random.default_rng(seed) if fast else None   # numpy.random costs a small check ~8 ms

    def run(probe: Probe) -> QuantityResult:
        shape = model.user_shapes[probe.quantity]
        if fast:
            return check_directions(evaluator, probe, shape, eps, rtol, atol, rng)
        return check_entries(evaluator, probe, shape, eps, rtol, atol)

    expect_work(gradient_probes + delta_probes)
    gradients = [run(probe) for probe in gradient_probes]
    delta_results = [run(probe) for probe in delta_probes]
    if deltas or not all(q.passed for q in gradients):
        delta_probes = [delta_probe(model, trace, grads, i)
                        for i in reversed(range(backpropagated_layers(model)))]
        expect_work(delta_probes)
        delta_results = [run(probe) for probe in delta_probes]

    values = model.values() if model.expect else {}   # a second forward/backward, only if needed
    expectations = [expect_check.verify(e, values[e.quantity]) for e in model.expect]
    passed = all(q.passed for q in gradients + delta_results) and all(e.passed for e in expectations)
    return SpecResult(spec=model.path, name=model.name, passed=passed, gradients=gradients,
                      expect=expectations, deltas=delta_results,
                      faulty_layer=faulty_layer(model, gradients, delta_results))


def rounding_magnitude(model: Model, trace, grads) -> float:
    """S = |E| + Σ_layers Σ |y ⊙ δ|: how much E moves when every value is off by one rounding
    (first order). A fused loss reads the last layer's input, not its output, so that is left out."""
    net = model.network
    total = abs(float(net.losses(trace, model.target)[0]))
    counted = net.names[:-1] if net.fused else net.names
    for name, output in zip(counted, trace.outputs):
        with np.errstate(invalid="ignore", over="ignore"):
            total += float(np.nansum(np.abs(output * grads.outputs[name])))
    return total


def backpropagated_layers(model: Model) -> int:
    """How many layers the backward pass runs through: all but a final softmax/sigmoid whose
    input gradient the fused loss gives directly."""
    return len(model.network.layers) - (1 if model.network.fused else 0)


def disagrees(result: QuantityResult) -> bool:
    """A failed entry whose difference was measured (not one that overflowed)."""
    return any(e.status == "fail" and np.isfinite(e.numeric) for e in result.entries)


def faulty_layer(model: Model, gradients, deltas) -> str | None:
    """The first layer, counting back from the loss, whose backward disagrees with the differences.

    If ∂E/∂(output of layer k) is right but ∂E/∂(output of layer k−1), or a parameter gradient of
    layer k, is wrong, layer k's backward is at fault; a wrong gradient where backprop starts
    (the last output, or the fused activation's input) blames the loss.
    """
    names = model.network.names[:backpropagated_layers(model)]
    delta_ok = {q.quantity: not disagrees(q) for q in deltas}
    if any(name not in delta_ok for name in names):
        return None
    bad_params = {q.quantity.rsplit(".", 1)[0] for q in gradients if disagrees(q) and q.quantity != "input"}
    input_bad = any(q.quantity == "input" and disagrees(q) for q in gradients)
    if not (delta_ok[names[-1]] if names else not input_bad):
        return "loss"
    for k in range(len(names) - 1, -1, -1):
        below_bad = (not delta_ok[names[k - 1]]) if k > 0 else input_bad
        if below_bad or names[k] in bad_params:
            return names[k]
    return None

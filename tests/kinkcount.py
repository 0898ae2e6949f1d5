"""How many non-smooth units (ReLU signs, pool winners, L2 zero windows) a perturbation crosses.

The checker's kink test compares an analytic value with the one-sided difference quotients. That
is exact when one perturbation crosses one kink; when a single entry feeds several units that sit
on their kinks at once (an exact-zero map into an fc layer, say), the PyTorch convention applied
unit by unit can lie outside [left, right]. These helpers count the units crossed, so a test can
tell that case from a wrong gradient.
"""
from __future__ import annotations

import numpy as np

from cnngrad.gradcheck.check import probes_for
from cnngrad.gradcheck.finite import STEPS, Evaluator
from cnngrad.gradcheck.probes import output_probe


def probe_named(model, quantity):
    trace = model.forward()
    grads = model.backward(trace)
    if quantity in model.network.names:
        i = model.network.names.index(quantity)
        return trace, output_probe(model.network, trace, i, grads.outputs[quantity][0])
    chosen, _ = probes_for(model, trace, grads, [quantity])
    return trace, chosen[0]


def units_crossed(model, quantity: str, flat_entry: int, eps: float = 1e-4) -> int:
    """How many distinct pattern elements (units) the checker's copies for this entry change."""
    trace, probe = probe_named(model, quantity)
    evaluator = Evaluator(model.network, model.params, model.target, trace)
    h = eps * max(1.0, abs(float(probe.values.reshape(-1)[flat_entry])))
    batch = probe.perturbed(np.full(len(STEPS), flat_entry), STEPS * h)
    run = model.network.forward(batch, model.params, probe.start)
    units = 0
    for offset, cache in enumerate(run.caches):
        base = evaluator.base_patterns[probe.start + offset]
        if base is not None:
            pattern = model.network.layers[probe.start + offset].pattern(cache)
            units += int((pattern != base).reshape(len(STEPS), -1).any(axis=0).sum())
    return units

"""How accurate are the checker's finite differences, and does a 1e-6 error get caught?

For eps in 1e-2 … 1e-6, with Richardson extrapolation (the checker's numeric value) and without
(the plain central difference D(h), the ``wide`` quotient), over random networks from
tests/helpers/randomnets.py (non-integer ones, so entries are smooth unless a kink is labelled):
  max abs / max rel error of the numeric value against a correct analytic gradient (smooth entries),
  kinks labelled, entries with |g| ≥ 1e-3, how many of them a relative 1e-6 error would fail
  (judged with rtol=1e-7, atol=1e-10 and the checker's noise and kink rules), and false failures
  of the correct gradient.
Run: python benchmarks/gradcheck_accuracy.py [networks]
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.randomnets import random_spec, to_model  # noqa: E402

from cnngrad.gradcheck.check import (DEFAULT_ATOL, DEFAULT_RTOL, judge, probes_for,  # noqa: E402
                                     rounding_magnitude)
from cnngrad.gradcheck.finite import Evaluator, central_differences  # noqa: E402

EPSILONS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def smooth_models(count, seed=0):
    rng = np.random.default_rng(seed)
    models = []
    while len(models) < count:
        spec = random_spec(rng)
        model = to_model(spec)
        if np.all(model.input == np.round(model.input)):
            continue                                  # skip the integer-valued (kink-rich) specs
        models.append(model)
    return models


def run(models):
    rows = []
    for eps in EPSILONS:
        for richardson in (True, False):
            stats = dict(abs=0.0, rel=0.0, kinks=0, big=0, caught=0, false=0)
            for model in models:
                trace = model.forward()
                grads = model.backward(trace)
                evaluator = Evaluator(model.network, model.params, model.target, trace,
                                      magnitude=rounding_magnitude(model, trace, grads))
                for probe in probes_for(model, trace, grads, ())[0]:
                    values = probe.values.reshape(-1)
                    h = eps * np.maximum(1.0, np.abs(values))
                    d = central_differences(evaluator, probe.start, h, probe.perturbed)
                    if not richardson:   # the plain central difference D(h), and its own spread
                        d.numeric = _wide(evaluator, probe, h)
                    g = probe.analytic.reshape(-1)
                    idx = [(k,) for k in range(g.size)]
                    smooth = ~d.kink
                    err = np.abs(d.numeric - g)[smooth]
                    scale = np.maximum(np.abs(g), np.abs(d.numeric))[smooth]
                    if err.size:
                        stats["abs"] = max(stats["abs"], float(err.max()))
                        big = scale >= 1e-3
                        if big.any():
                            stats["rel"] = max(stats["rel"], float((err[big] / scale[big]).max()))
                    stats["kinks"] += int(d.kink.sum())
                    right = judge("q", g.shape, g, d, idx, DEFAULT_RTOL, DEFAULT_ATOL)
                    stats["false"] += sum(e.status == "fail" for e in right.entries)
                    wrong = judge("q", g.shape, g * (1 + 1e-6), d, idx, DEFAULT_RTOL, DEFAULT_ATOL)
                    targets = (np.abs(g) >= 1e-3) & smooth
                    stats["big"] += int(targets.sum())
                    stats["caught"] += sum(wrong.entries[k].status == "fail" for k in np.flatnonzero(targets))
            rows.append((eps, richardson, stats))
    return rows


def _wide(evaluator, probe, h):
    steps = np.array([1.0, -1.0])
    n = len(h)
    batch = probe.perturbed(np.tile(np.arange(n), 2), (steps[:, None] * h[None]).reshape(-1))
    losses = evaluator.run(probe.start, batch)[0]
    plus, minus = losses.reshape(2, n)
    return (plus - minus) / (2 * h)


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    warnings.simplefilter("ignore", RuntimeWarning)
    models = smooth_models(count)
    print(f"{count} random networks (non-integer values), rtol={DEFAULT_RTOL}, atol={DEFAULT_ATOL}")
    print("max rel error over entries with |g| >= 1e-3; 'caught' = entries with |g| >= 1e-3 whose "
          "×(1+1e-6) fails; 'false' = correct entries failed")
    print(f"{'eps':>7} {'method':>10} {'max abs err':>12} {'max rel err':>12} {'kinks':>6} "
          f"{'caught':>13} {'false':>6}")
    for eps, richardson, s in run(models):
        print(f"{eps:>7.0e} {'richardson' if richardson else 'central':>10} {s['abs']:>12.2e} "
              f"{s['rel']:>12.2e} {s['kinks']:>6} {s['caught']:>6}/{s['big']:<6} {s['false']:>6}")


if __name__ == "__main__":
    main()

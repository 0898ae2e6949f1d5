"""Random valid networks (tests/randomnets.py): ``check_model`` must not fail a correct engine.

Two failure kinds are known limits of finite differences, not engine errors, and are recognised
independently before being excused (and counted):
  * multi-kink: one perturbation crosses two or more non-smooth units at once (an exact-zero map
    into an fc layer, a kernel entry feeding several ReLU inputs that are exactly 0). PyTorch's
    convention applied unit by unit can then lie outside the one-sided quotients [left, right],
    so the interval test does not apply. Recognised by counting the units crossed (tests/kinkcount.py).
  * rounding: a smooth entry whose error is below 1e-8 and which passes when re-checked with a
    10× larger step (rounding noise shrinks with the step; a wrong gradient does not). The
    checker's noise model (16 ε |E| / h) underestimates rounding when E is a small difference of
    large terms (loss: none with mixed-sign upstream gradients).
Anything else is a false failure and fails the test.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from cnngrad.gradcheck import check_model

from kinkcount import units_crossed
from randomnets import random_models, to_yaml


def classify(model):
    """(unexplained failures, multi-kink entries, rounding entries, kinks) of one model's check."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = check_model(model)   # deltas only when a gradient fails, as in use
    kinks = sum(q.kinks for q in result.gradients)
    unexplained, multi, rounding = [], [], []
    for q in result.gradients + result.deltas:
        for flat, e in enumerate(q.entries):
            if e.status != "fail":
                continue
            if e.left is not None and units_crossed(model, q.quantity, flat) >= 2:
                multi.append((q.quantity, e.index))
            elif e.left is None and e.abs_error <= 1e-8 and _passes_wider(model, q.quantity, e.index):
                rounding.append((q.quantity, e.index))
            else:
                unexplained.append((q.quantity, e))
    for e in result.expect:
        if not e.passed:
            unexplained.append((e.quantity, e))
    return unexplained, multi, rounding, kinks


def _passes_wider(model, quantity, index):
    wider = check_model(model, eps=1e-3, wrt=[quantity])
    q = (wider.gradients + wider.deltas)[0]
    return next(e for e in q.entries if e.index == index).status != "fail"


def run(seed, count):
    totals = {"networks": 0, "kinks": 0, "multi_kink": 0, "rounding": 0}
    failures = []
    for spec, model in random_models(seed, count):
        unexplained, multi, rounding, kinks = classify(model)
        totals["networks"] += 1
        totals["kinks"] += kinks
        totals["multi_kink"] += len(multi)
        totals["rounding"] += len(rounding)
        if unexplained:
            failures.append((to_yaml(spec), unexplained))
    return totals, failures


def test_random_networks_quick():
    totals, failures = run(seed=20240601, count=20)
    assert totals["networks"] == 20
    assert not failures, failures[0]


@pytest.mark.slow
def test_random_networks_thousand():
    totals, failures = run(seed=1, count=1000)
    print(totals)
    assert totals["networks"] == 1000
    assert totals["kinks"] > 0            # the integer specs do reach the kink code
    assert not failures, "\n".join(f"{spec}\n{bad}" for spec, bad in failures[:3])

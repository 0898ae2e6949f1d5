"""Random valid networks (tests/helpers/randomnets.py): ``check_model`` must not fail a correct engine.

Every failure is a false failure: kinks, several kinks crossed at once and rounding noise are the
checker's to handle (tests/unit/test_gradcheck.py pins each of them down). A gradient the check
calls unverified is not a failure but an honest "cannot tell" (e.g. every gradient exactly 0 at a
point where E = 0 but curves sharply, a layer norm of a constant vector); it must stay rare.
"""
from __future__ import annotations

import warnings

import pytest

from cnngrad.gradcheck import check_model

from helpers.randomnets import random_models, to_yaml


def classify(model, deltas=False, fast=False, seed=0):
    """(failed quantities and expectations, kinks) of one model's check."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = check_model(model, deltas=deltas, fast=fast, seed=seed)
    kinks = sum(q.kinks for q in result.gradients + result.deltas)
    failed = [(q.quantity, [e for e in q.entries if e.status == "fail"][:3])
              for q in result.gradients + result.deltas if q.status == "failed"]
    failed += [(e.quantity, e) for e in result.expect if not e.passed]
    unverified = [q.quantity for q in result.gradients + result.deltas if q.status == "unverified"]
    return failed, kinks, unverified


def run(seed, count, deltas=False, fast_seeds=()):
    """Check ``count`` random networks: every entry, or with ``fast_seeds`` --fast once per seed."""
    totals = {"networks": 0, "kinks": 0, "unverified": 0}
    failures = []
    for spec, model in random_models(seed, count):
        failed, kinks, unverified = [], 0, []
        for fast_seed in fast_seeds or [None]:
            bad, crossed, unsure = classify(model, deltas, fast=fast_seed is not None, seed=fast_seed or 0)
            failed, kinks, unverified = failed + bad, kinks + crossed, unverified + unsure
        totals["networks"] += 1
        totals["kinks"] += kinks
        totals["unverified"] += bool(unverified)
        if failed:
            failures.append((to_yaml(spec), failed))
    return totals, failures


def test_random_networks_quick():
    totals, failures = run(seed=20240601, count=20)
    assert totals["networks"] == 20
    assert not failures, failures[0]
    assert totals["unverified"] == 0


def test_random_networks_quick_fast():
    """--fast carries its directions along lines through most layers (``Evaluator.run_lines``)."""
    totals, failures = run(seed=20240601, count=20, fast_seeds=(0, 1))
    assert not failures, failures[0]
    assert totals["unverified"] == 0


def test_random_networks_quick_with_deltas():
    totals, failures = run(seed=7, count=20, deltas=True)
    assert not failures, failures[0]
    assert totals["unverified"] == 0


@pytest.mark.slow
def test_random_networks_thousand():
    totals, failures = run(seed=1, count=1000)
    print(totals)
    assert totals["networks"] == 1000
    assert totals["kinks"] > 0            # the integer specs do reach the kink code
    assert not failures, "\n".join(f"{spec}\n{bad}" for spec, bad in failures[:3])
    assert totals["unverified"] <= 5, totals   # at most 0.5% of the networks cannot be told


@pytest.mark.slow
def test_random_networks_thousand_fast():
    """The thousand networks with --fast, two seeds of directions each."""
    totals, failures = run(seed=1, count=1000, fast_seeds=(0, 1))
    print(totals)
    assert totals["kinks"] > 0
    assert not failures, "\n".join(f"{spec}\n{bad}" for spec, bad in failures[:3])
    assert totals["unverified"] <= 10, totals   # at most 0.5% of the checks cannot tell

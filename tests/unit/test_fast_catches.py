"""What ``check --fast`` catches on LeNet-5 (configs/lenet5.yaml): an analytic gradient off by one
part in a million, whole or in its largest entry, must fail (issue 18: making --fast faster must
not weaken it)."""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.gradcheck import check_model
from cnngrad.model import Model
from cnngrad.spec import load_model
from helpers import ROOT

LENET = load_model(str(ROOT / "configs/lenet5.yaml"))
PARAMETERS = list(LENET.params)


def fast_status(monkeypatch, name: str, scale, factor: float) -> str:
    """The --fast verdict on ``name`` when ``scale(gradient, factor)`` spoils its analytic gradient."""
    backward = Model.backward

    def wrong(self, trace):
        grads = backward(self, trace)
        scale(grads.input if name == "input" else grads.params[name], factor)
        return grads

    monkeypatch.setattr(Model, "backward", wrong)
    return check_model(LENET, fast=True, wrt=[name]).gradients[0].status


def whole(gradient, factor):
    gradient *= factor


def largest_entry(gradient, factor):
    gradient.flat[np.abs(gradient).argmax()] *= factor


def test_lenet5_passes_fast():
    assert check_model(LENET, fast=True).passed


@pytest.mark.parametrize("factor", [1 + 1e-6, 1 - 1e-6])
@pytest.mark.parametrize("name", ["input"] + PARAMETERS)
def test_fast_catches_a_whole_gradient_off_by_1e_6(monkeypatch, name, factor):
    assert fast_status(monkeypatch, name, whole, factor) == "failed"


@pytest.mark.parametrize("factor", [1 + 1e-6, 1 - 1e-6])
@pytest.mark.parametrize("name", PARAMETERS)
def test_fast_catches_the_largest_entry_of_each_parameter_off_by_1e_6(monkeypatch, name, factor):
    assert fast_status(monkeypatch, name, largest_entry, factor) == "failed"


GRADIENTS = LENET.backward(LENET.forward())


def leading_entries(name: str) -> list[int]:
    """The flat positions of the three largest |∂E/∂name| entries (the largest first) and of the
    most negative and most positive entry: the ones whose 1e-6 errors move E measurably."""
    gradient = (GRADIENTS.input if name == "input" else GRADIENTS.params[name]).reshape(-1)
    return list(dict.fromkeys([int(e) for e in np.argsort(-np.abs(gradient))[:3]]
                              + [int(gradient.argmin()), int(gradient.argmax())]))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", ["input"] + PARAMETERS)
def test_fast_catches_any_leading_entry_off_by_1e_6_whatever_the_seed(monkeypatch, name, seed):
    """One entry at a time, both ways, three seeds: the analytic gradient is spoilt here, apart from
    how --fast draws its directions, and every such error must fail (the normal directions drawn
    before missed one of input's or fc1.weights' at each of these seeds)."""
    backward = Model.backward
    spoilt = {}

    def wrong(self, trace):
        grads = backward(self, trace)
        entry, factor = spoilt["entry"]
        (grads.input if name == "input" else grads.params[name]).flat[entry] *= factor
        return grads

    monkeypatch.setattr(Model, "backward", wrong)
    missed = []
    for entry in leading_entries(name):
        for factor in (1 + 1e-6, 1 - 1e-6):
            spoilt["entry"] = (entry, factor)
            if check_model(LENET, fast=True, wrt=[name], seed=seed).gradients[0].status != "failed":
                missed.append((entry, factor))
    assert missed == []

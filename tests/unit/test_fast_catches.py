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

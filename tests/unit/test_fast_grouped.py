"""``--fast`` runs the directional copies of all quantities that start at the same layer as one
batch (issue 18): the same verdicts, and the same numbers to rounding, as checking each quantity
on its own along the same directions; a group mixing regularized and plain parameters adds each
copy's own change of the penalty."""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.gradcheck.check import (DEFAULT_ATOL, DEFAULT_EPS, DEFAULT_RTOL, QuantityChecker, check_directions,
                                     probes_for, rounding_magnitude)
from cnngrad.gradcheck.finite import Evaluator
from cnngrad.network import Network
from cnngrad.spec import load_model
from helpers import ROOT

from helpers.specs import write_spec
from test_regularization import conv_spec


def grouped_and_alone(model, seed: int = 0):
    """check_directions on every gradient at once, and on each alone, drawing the same directions."""
    trace = model.forward()
    grads = model.backward(trace)
    probes, _ = probes_for(model, trace, grads, ())
    evaluator = Evaluator(model.network, model.params, model.target, trace,
                          magnitude=rounding_magnitude(model, trace, grads, recompute=True))
    checker = QuantityChecker(model, evaluator, DEFAULT_EPS, DEFAULT_RTOL, DEFAULT_ATOL, True, seed)
    affine = [checker.moves_affinely(probe) for probe in probes]
    shapes = [model.user_shapes[probe.quantity] for probe in probes]
    settings = (DEFAULT_EPS, DEFAULT_RTOL, DEFAULT_ATOL)
    grouped = check_directions(evaluator, probes, shapes, *settings, np.random.default_rng(seed), affine)
    rng = np.random.default_rng(seed)
    alone = [check_directions(evaluator, [probe], [shape], *settings, rng, [moves])[0]
             for probe, shape, moves in zip(probes, shapes, affine)]
    return probes, grouped, alone


@pytest.mark.parametrize("model", [
    pytest.param(lambda tmp_path: load_model(str(ROOT / "configs/lenet5.yaml")), id="lenet5"),
    pytest.param(lambda tmp_path: load_model(write_spec(tmp_path, conv_spec(np.random.default_rng(4), 2, 0.3,
                                                                          "[conv1.kernel, fc1.weights]"))),
                 id="regularized-batch")])
def test_grouped_directions_give_what_each_quantity_gives_alone(tmp_path, model):
    probes, grouped, alone = grouped_and_alone(model(tmp_path))
    starts = [probe.start for probe in probes]
    assert max(starts.count(start) for start in starts) >= 2          # some copies did run together
    for together, single in zip(grouped, alone):
        assert together.quantity == single.quantity and together.status == single.status == "passed"
        a, b = together.verdicts, single.verdicts
        assert np.array_equal(a.analytic, b.analytic) and np.array_equal(a.status, b.status)
        # to rounding of the quantity's directional derivatives (some are made small on purpose)
        assert np.allclose(a.numeric, b.numeric, rtol=0, atol=1e-9 * np.abs(b.numeric).max())


def test_a_regularized_parameter_grouped_with_a_plain_one_adds_its_penalty(tmp_path, monkeypatch):
    """Without the penalty's change the regularized kernel's copies would differ from its gradient
    by 2λθ·v: grouped with the plain conv bias it must still pass, and a backward that forgets the
    penalty must still fail there, and only there."""
    model = load_model(write_spec(tmp_path, conv_spec(np.random.default_rng(5), 1, 0.5, "[conv1.kernel]")))
    probes, grouped, _ = grouped_and_alone(model)
    assert [p.quantity for p in probes if p.start == 1] == ["input", "conv1.kernel", "conv1.bias"]
    assert all(result.status == "passed" for result in grouped)
    monkeypatch.setattr(Network, "penalty_grad", lambda self, name, theta: None)   # as test_regularization
    _, grouped, _ = grouped_and_alone(model)
    assert [result.quantity for result in grouped if result.status == "failed"] == ["conv1.kernel"]


def test_fast_builds_no_entry_by_entry_shortcuts(monkeypatch):
    """--fast runs directions, never a quantity's entry-by-entry speed-ups (receptive-field runs,
    shared units, one-channel runs): it does not plan them (``shortcuts=False``), and its probes
    otherwise are the same, so its verdicts are the same bits as with them."""
    from cnngrad.gradcheck import check_model, crop, probes as probes_module
    model = load_model(str(ROOT / "configs/lenet5.yaml"))
    trace = model.forward()
    grads = model.backward(trace)
    planned, _ = probes_for(model, trace, grads, ())
    bare, _ = probes_for(model, trace, grads, (), shortcuts=False)
    assert any(probe.shortcut is not None for probe in planned)
    assert all(probe.shortcut is None for probe in bare)
    assert [(p.quantity, p.start) for p in bare] == [(p.quantity, p.start) for p in planned]
    evaluator = Evaluator(model.network, model.params, model.target, trace,
                          magnitude=rounding_magnitude(model, trace, grads, recompute=True))
    checker = QuantityChecker(model, evaluator, DEFAULT_EPS, DEFAULT_RTOL, DEFAULT_ATOL, True, 0)
    shapes = [model.user_shapes[probe.quantity] for probe in planned]
    affine = [checker.moves_affinely(probe) for probe in planned]
    results = [check_directions(evaluator, probes, shapes, DEFAULT_EPS, DEFAULT_RTOL, DEFAULT_ATOL,
                                np.random.default_rng(0), affine) for probes in (planned, bare)]
    for with_them, without in zip(*results):
        assert with_them.status == without.status == "passed"
        for field, value in with_them.verdicts.as_dict().items():
            assert np.asarray(value).tobytes() == np.asarray(getattr(without.verdicts, field)).tobytes(), field

    def unplanned(*args, **kwargs):
        raise AssertionError("--fast planned an entry-by-entry shortcut")
    for module, name in ((crop, "first_conv_runs"), (crop, "point_runs"), (crop, "untied_bias_runs"),
                         (probes_module, "_one_example_runs")):
        monkeypatch.setattr(module, name, unplanned)
    assert check_model(model, fast=True, deltas=True).passed

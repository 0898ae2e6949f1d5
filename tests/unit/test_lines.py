"""``--fast`` carries each direction's change through the layers affine in it and through runs of
piecewise linear ones (``Evaluator.run_lines``), forming the four copies y + s·Δ only where the
carry stops. Against the plain path, which forms the copies at the start and runs every layer on
them: the same kinks, and the numeric derivatives within both paths' rounding allowances."""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.gradcheck import check_model
from cnngrad.gradcheck.check import DEFAULT_EPS, QuantityChecker, rounding_magnitude
from cnngrad.gradcheck.finite import Evaluator, central_differences, line_differences
from cnngrad.layers.activations import LeakyReLU, ReLU
from cnngrad.layers.conv import Conv
from cnngrad.layers.fc import FC
from cnngrad.layers.flatten import Flatten
from cnngrad.layers.pooling import Pool
from cnngrad.spec import load_text

from helpers.randomnets import random_models
from test_gradcheck import hand_model
from test_increment import agree, conv_chain

DIRECTIONS = 6


def at_steps(changes: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Each line's change at its step, h[k]·``changes[k]`` (what ``line_differences`` carries)."""
    return h.reshape((-1,) + (1,) * (changes.ndim - 1)) * changes


def both_paths(evaluator: Evaluator, start: int, changes: np.ndarray, h: np.ndarray):
    """The differences of lines y + s·``changes[k]`` at value ``start``, carried, and run as copies."""
    base = evaluator.trace.value(start)

    def copies(items, steps):
        return base + steps.reshape((-1,) + (1,) * base.ndim) * changes[items]

    return (line_differences(evaluator, h, [(start, at_steps(changes, h))]),
            central_differences(evaluator, start, h, copies))


def evaluator_of(model) -> Evaluator:
    trace = model.forward()
    grads = model.backward(trace)
    return Evaluator(model.network, model.params, model.target, trace,
                     magnitude=rounding_magnitude(model, trace, grads, recompute=True))


def random_lines(rng, evaluator: Evaluator, start: int, grid: bool):
    """Six random changes of value ``start`` and their steps: normal, or on a grid of quarters (so
    a unit at 0 or a tied maximum stays there or moves by a whole step)."""
    shape = (DIRECTIONS,) + evaluator.trace.value(start).shape
    changes = rng.integers(-2, 3, shape) / 4.0 if grid else rng.standard_normal(shape)
    return changes, np.full(DIRECTIONS, DEFAULT_EPS * rng.choice([1.0, 0.01]))


class Seen:
    """What the comparisons covered: lines carried through a piecewise linear layer, and kinks."""

    def __init__(self, evaluator: Evaluator):
        self.evaluator, self.carried, self.kinks = evaluator, 0, 0

    def count(self, start: int, plain) -> None:
        net = self.evaluator.network
        index = start
        while self.evaluator.carries(index):
            self.carried += int(net.layers[index].piecewise_linear)
            index += 1
        self.kinks += int(plain.kink.sum())


def test_random_networks_agree_with_the_plain_path():
    """Lines from every value of random networks (every kind, batches, branches; a third on
    integer grids, where ReLUs sit at 0 and pools tie): carried where they may be, the same kinks
    as the copies, the numbers to rounding."""
    rng = np.random.default_rng(0)
    carried = kinks = 0
    for number, (_, model) in enumerate(random_models(11, 300)):
        evaluator = evaluator_of(model)
        seen = Seen(evaluator)
        for start in range(len(model.network.layers)):
            changes, h = random_lines(rng, evaluator, start, grid=number % 2 == 0)
            lines, plain = both_paths(evaluator, start, changes, h)
            agree(lines, plain, f"network {number}, value {start}")
            seen.count(start, plain)
        carried += seen.carried
        kinks += seen.kinks
    assert carried > 100 and kinks > 200, (carried, kinks)


def test_lines_of_every_value_at_once_join_and_agree_with_the_plain_path():
    """Lines of all values of a network in one call: each group joins those carried to its value
    (in the middle of a run of piecewise linear layers too, which then stops there), and every
    line gives what its own copies give."""
    rng = np.random.default_rng(3)
    joined = 0
    for number, (_, model) in enumerate(random_models(12, 150)):
        starts = range(len(model.network.layers))
        if not starts:
            continue
        evaluator = evaluator_of(model)
        drawn = [random_lines(rng, evaluator, start, grid=number % 2 == 0) for start in starts]
        h = np.concatenate([steps for _, steps in drawn])
        lines = line_differences(evaluator, h, [(start, at_steps(changes, steps)) for start, (changes, steps)
                                                in zip(starts, drawn)])
        for start, (changes, steps) in zip(starts, drawn):
            plain = both_paths(evaluator, start, changes, steps)[1]
            own = lines.along(np.arange(start * DIRECTIONS, (start + 1) * DIRECTIONS), np.ones(DIRECTIONS))
            agree(own, plain, f"network {number}, value {start}")
            joined += int(start > 0 and evaluator.carries(start - 1))
    assert joined > 100, joined


def test_chains_near_kinks_agree_with_the_plain_path():
    """conv → relu → max pool (→ conv → relu) → flatten → fc → relu → fc on grids, a relu after the
    fc 1e-7 from 0: lines of the first conv's output that cross kinks at relus and pools, in the
    middle of a run of them or at its end, fall back to copies with the same kinks."""
    rng = np.random.default_rng(1)
    kinks = 0
    for seed in range(60):
        model = conv_chain(seed, second_conv=seed % 2 == 1)
        evaluator = evaluator_of(model)
        for grid in (True, False):
            changes, h = random_lines(rng, evaluator, 1, grid)
            lines, plain = both_paths(evaluator, 1, changes, h)
            agree(lines, plain, f"chain {seed}")
            kinks += int(plain.kink.sum())
    assert kinks > 100, kinks


def test_a_line_that_meets_a_kink_runs_as_copies_from_the_start_of_its_run():
    """relu → max pool → leaky relu → flatten → fc: one line moves a unit at 0 of the relu, one a
    tied maximum of the pool, one crosses nothing. The kinked ones give what their copies give
    (their one-sided quotients), the straight one its line's derivative, exact for this loss."""
    x = np.array([[[0.0, 1.0, 2.0, 3.0], [3.0, 3.0, 0.5, -1.0]]])              # (1, 2, 4): relu at 0, a tie of 3s
    layers = [("relu1", ReLU()), ("pool1", Pool("max", (1, 2))), ("leaky1", LeakyReLU(0.1)), ("flatten1", Flatten()),
              ("fc1", FC((1, 4)))]
    weights = np.array([[1.0, -2.0, 0.5, 3.0]])
    model = hand_model(x, layers, "squared_error", np.array([0.0]), {"fc1.weights": weights, "fc1.bias": np.zeros(1)})
    evaluator = evaluator_of(model)
    assert [evaluator.carries(k) for k in range(5)] == [True, True, True, True, False]
    changes = np.zeros((3, 1, 1, 2, 4))
    changes[0, 0, 0, 0, 0] = 1.0                  # the relu's 0: a kink at the run's first layer
    changes[1, 0, 0, 1, 1] = -1.0                 # the tie 3, 3 at the pool: its second layer
    changes[2, 0, 0, 0, 3] = 1.0                  # 3 wins its window alone: no kink
    h = np.full(3, 1e-3)
    lines, plain = both_paths(evaluator, 0, changes, h)
    agree(lines, plain, "hand chain")
    np.testing.assert_array_equal(lines.kink, [True, True, False])
    y = float(model.forward().outputs[-1][0, 0])   # E = y²/2, y = w · leaky(pool(relu(x))) + b = −2
    assert y == -2.0
    # E along each line at ±h/2 (the one-sided quotients' points), h = 1e-3. Line 0: relu(0 + s)
    # enters the window (0, 1), whose maximum 1 it does not reach: E is flat. Line 1: the second 3
    # of the window (3, 3) falls as s grows (E flat) and wins as s falls: y = −2 − s/2, so
    # left = (E(0) − E(−h/2)) / (h/2) = 1 − h/16. Line 2: 3 + s wins alone, y = −2 − 2s:
    # E = 2 + 4s + 2s², left 4 − h, right 4 + h, central (Richardson) 4.
    np.testing.assert_allclose(lines.left, [0.0, 1 - 1e-3 / 16, 4 - 1e-3], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lines.right, [0.0, 0.0, 4 + 1e-3], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lines.numeric[2], 4.0, rtol=1e-9)


def test_the_carry_stops_at_a_branch_a_smooth_layer_and_the_last_layer():
    """Only chained layers affine in their input or piecewise linear carry lines, and never the
    last layer (the loss reads its whole output)."""
    x = np.random.default_rng(2).standard_normal((1, 4, 4))
    layers = [("conv1", Conv((2, 1, 3, 3))), ("relu1", ReLU()), ("pool1", Pool("l2", 2)), ("flatten1", Flatten()),
              ("fc1", FC((2, 2))), ("relu2", ReLU())]
    model = hand_model(x, layers, "squared_error", np.zeros(2), seed=2)
    evaluator = evaluator_of(model)
    assert [evaluator.carries(k) for k in range(6)] == [True, True, False, True, True, False]


def test_deltas_and_an_input_before_a_nonlinear_layer_check_the_same_along_lines(monkeypatch):
    """A layer's output and an input re-run from the first layer are moved themselves, y + s·v: with
    --fast their directions run as lines too. Against their copies run whole (the probes taken as
    not affine): the same verdicts and kinks, on random networks with every delta checked."""
    lined = {}
    for number, (_, model) in enumerate(random_models(13, 120)):
        lined[number] = check_model(model, fast=True, deltas=True)
    monkeypatch.setattr(QuantityChecker, "moves_affinely",
                        lambda self, probe: probe.quantity in self.model.params and
                        self.model.network.layers[probe.start - 1].affine_in_params or
                        probe.quantity == "input" and probe.start == 1)
    compared = 0
    for number, (_, model) in enumerate(random_models(13, 120)):
        plain = check_model(model, fast=True, deltas=True)
        ours, theirs = lined[number].gradients + lined[number].deltas, plain.gradients + plain.deltas
        assert [(q.quantity, q.status, q.kinks) for q in ours] == [(q.quantity, q.status, q.kinks) for q in theirs], number
        compared += len(plain.deltas)
    assert compared > 200, compared


# values near 1e8, the smallest 2.7e6: the input's step is 1e-4 · 2.7e6 = 270 (found by --fast on
# random network 208/19 with its input scaled by 1e8: a false failure the plain path does not give)
LARGE_INPUT = """
input:
- [-164523400.0, 93228200.0, 6826700.0, -164035200.0, -75551200.0]
- [-2708100.0, -14464500.0, 162243900.0, 78802900.0, -66039500.0]
- [108622000.0, -188702300.0, 201107400.0, -147687300.0, 184818900.0]
- [46625000.0, -98263400.0, 231729200.0, 66231200.0, 164017600.0]
- [-51156000.0, -74947000.0, 42133200.0, 26572400.0, -15753600.0]
- [-102843600.0, -40373700.0, -19299000.0, 68579500.0, -99269700.0]
layers:
- pool: {type: avg, size: 2}
- flatten: {order: F}
loss: {multiclass_svm: {reduction: sum}}
target: 5
"""


def test_lines_with_a_step_above_1_round_as_their_copies():
    """A step h > 1 (every entry above 1e4): the line's change is carried at the step, f(y + h·Δ) −
    f(y), not f(y + Δ) − f(y), whose rounding ε|y| the copies y + s·Δ would multiply by h. Here
    ∂E/∂input is ±1/4 on 8 entries, so a balanced direction's ∇E·v is 0 and the allowance is
    rounding alone: the line path must give the copies' numbers (it gave 1.5e-8 against 0)."""
    model = load_text(LARGE_INPUT, "large.yaml", ".")
    evaluator = evaluator_of(model)
    changes = np.random.default_rng(4).standard_normal((DIRECTIONS,) + evaluator.trace.value(0).shape)
    h = np.full(DIRECTIONS, 270.0)
    lines, plain = both_paths(evaluator, 0, changes, h)
    agree(lines, plain, "large input")
    for seed in range(3):
        assert check_model(model, fast=True, seed=seed).passed, seed


def test_a_line_whose_change_per_unit_step_would_overflow_runs_as_its_copies():
    """relu → fc with weights 1.7e308 on inputs near 1e-3: the copies' changes, h·Δ, stay finite
    through the fc where a change per unit step, Δ (h = 1e-4), would overflow it (W·Δ ≈ 7e308): the
    line carries its change at the step, h·Δ, and gives the copies' finite numbers."""
    x = np.full((1, 1, 8), 1e-3)
    layers = [("relu1", ReLU()), ("flatten1", Flatten()), ("fc1", FC((1, 8))), ("fc2", FC((1, 1)))]
    params = {"fc1.weights": np.full((1, 8), 1.7e308), "fc1.bias": np.zeros(1),
              "fc2.weights": np.array([[1e-306]]), "fc2.bias": np.zeros(1)}
    model = hand_model(x, layers, "squared_error", np.array([0.5]), params)
    evaluator = evaluator_of(model)
    changes = np.full((2,) + evaluator.trace.value(0).shape, 0.5)
    changes[1] *= -1
    lines, plain = both_paths(evaluator, 0, changes, np.full(2, DEFAULT_EPS))
    assert np.isfinite(plain.numeric).all()
    agree(lines, plain, "overflow")

"""What ``check``'s verdicts claim: the rounding allowance of sums that cancel, the resolution a
check reaches (and ``unverified`` where it reaches too little), the work bound, which kinks are
worth a look. Expected values are derived by hand beside each test, or come from PyTorch."""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.gradcheck import check_model
from cnngrad.layers.conv import Conv
from cnngrad.layers.fc import FC
from cnngrad.layers.pooling import Pool

from test_gradcheck import hand_model

SCALES = [1e4, 1e5, 1e6, 1e7, 1e8]


class OffFC(FC):
    """fc whose input gradient is off by a relative 1e-6 (a subtle bug)."""

    def backward(self, dy, cache, params):
        dx, grads = super().backward(dy, cache, params)
        return dx * (1 + 1e-6), grads


class OffConv(Conv):
    def backward(self, dy, cache, params):
        dx, grads = super().backward(dy, cache, params)
        return dx * (1 + 1e-6), grads


def cancelling_fc(scale, layer=FC):
    """input [s, 1, −s] → fc [[1, 1, 1]] → loss none, upstream 1: E = s + 1 − s = 1, and
    ∂E/∂input = [1, 1, 1] (ones times the upstream gradient), whatever s is."""
    return hand_model([scale, 1.0, -scale], [("fc1", layer((1, 3)))], "none", [1.0],
                      params={"fc1.weights": [[1.0, 1.0, 1.0]], "fc1.bias": [0.0]})


def cancelling_conv(scale, layer=Conv):
    """The same sum as a 1×3 kernel over a 1×3 map: one output s + 1 − s, ∂E/∂x = K = [1, 1, 1]."""
    return hand_model([[[scale, 1.0, -scale]]], [("conv1", layer((1, 1, 1, 3)))], "none", [1.0],
                      params={"conv1.kernel": [[[[1.0, 1.0, 1.0]]]], "conv1.bias": [0.0]})


def cancelling_conv_rerun(scale, layer=Conv):
    """Filters [1, 1, 1] and [−3, −3, −3] after a 1×1 average pool (the identity), so that a
    perturbed input re-runs the conv's sums; upstream [1, 1/3]: E = (s + 1 − s) + (−3s − 3 + 3s)/3
    = 0 and ∂E/∂x = 1 − 3 · (1/3) = 0 (5.6e-17 in float64), while each sum's terms are as
    large as s (and, unlike the input's own |x ⊙ δ|, which is 0 here, they round)."""
    kernel = [[[[1.0, 1.0, 1.0]]], [[[-3.0, -3.0, -3.0]]]]
    return hand_model([[[scale, 1.0, -scale]]], [("pool1", Pool("avg", 1)), ("conv1", layer((2, 1, 1, 3)))],
                      "none", [[[1.0]], [[1 / 3]]], params={"conv1.kernel": kernel, "conv1.bias": [0.0, 0.0]})


@pytest.mark.parametrize("build,analytic", [(cancelling_fc, 1.0), (cancelling_conv, 1.0),
                                            (cancelling_conv_rerun, 0.0)])
@pytest.mark.parametrize("scale", SCALES)
def test_a_sum_that_cancels_is_not_a_false_failure(build, analytic, scale):
    result = check_model(build(scale))
    gradient = {q.quantity: q for q in result.gradients}["input"]
    np.testing.assert_allclose([e.analytic for e in gradient.entries], [analytic] * 3, rtol=0, atol=1e-15)
    assert result.passed, [(q.quantity, [e for e in q.entries if e.status != "ok"]) for q in result.gradients]
    assert result.faulty_layer is None


@pytest.mark.parametrize("build,layer", [(cancelling_fc, OffFC), (cancelling_conv, OffConv)])
@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_a_wrong_gradient_through_a_modest_sum_still_fails(build, layer, scale):
    result = check_model(build(scale, layer))
    gradient = {q.quantity: q for q in result.gradients}["input"]
    assert [e.status for e in gradient.entries] == ["fail"] * 3
    assert not result.passed


# --------------------------------------------------------------------------- option values

from helpers.cli import invoke as run  # noqa: E402

SPEC = """\
input: [[0.5, -0.2, 0.1], [0.3, 0.8, -0.6], [0.9, 0.4, 0.2]]
layers:
  - conv: {kernel: [[0.1, -0.2], [0.3, 0.4]], bias: 0.05}
  - tanh
  - flatten
  - fc: {weights: [[0.2, -0.1, 0.4, 0.3]]}
loss: squared_error
target: [1]
"""


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(SPEC)
    return path


@pytest.mark.parametrize("option,value", [
    ("--atol", "inf"), ("--atol", "nan"), ("--atol", "-1"), ("--rtol", "nan"), ("--rtol", "inf"),
    ("--rtol", "-1e-3"), ("--eps", "nan"), ("--eps", "inf"), ("--eps", "1e300"), ("--eps", "0"),
    ("--eps", "1"), ("--eps", "-1e-4"), ("--eps", "1e-400")])
def test_a_check_option_that_is_not_a_sane_number_cannot_run(spec, option, value):
    result = run("check", spec, option, value)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and option in line
    assert result.stdout == ""


@pytest.mark.parametrize("lr", ["nan", "inf", "-inf", "1e400"])
def test_backward_refuses_a_learning_rate_that_is_not_finite(spec, lr):
    result = run("backward", spec, "--lr", lr)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "--lr" in line
    assert result.stdout == ""


def test_backward_refuses_an_update_that_overflows(tmp_path):
    # with target 5, |y| < 1 (y = W·tanh(…) with Σ|W| = 1), so grad.conv1.kernel[0,0] = δ · Σ …:
    # the JSON below gives −1.85, and 0.1 − 1e308 · (−1.85) is beyond float64's 1.8e308
    path = tmp_path / "net.yaml"
    path.write_text(SPEC.replace("target: [1]", "target: [5]"))
    grads = __import__("json").loads(run("backward", path, "--format", "json").stdout)["gradients"]
    assert grads["grad.conv1.kernel"][0][0] < -1.8
    result = run("backward", path, "--lr", "1e308", "--format", "json")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "--lr" in line and "conv1.kernel" in line
    assert result.stdout == ""


def test_backward_with_a_sane_learning_rate_still_updates(spec):
    import json
    result = run("backward", spec, "--lr", "0.5", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    grad = np.asarray(doc["gradients"]["grad.fc1.bias"])
    np.testing.assert_allclose(doc["updated"]["fc1.bias"], 0.0 - 0.5 * grad)


# --------------------------------------------------------------------------- resolution, unverified

from cnngrad.layers.activations import ReLU, Softmax  # noqa: E402
from cnngrad.layers.flatten import Flatten  # noqa: E402
from cnngrad.gradcheck.check import rounding_magnitude  # noqa: E402
from test_gradcheck import relu_at_zero_model, small_net  # noqa: E402

EPSILON = np.finfo(np.float64).eps


def linear_fc():
    """input [1, 2] → fc [[3, 4]], loss none, upstream 1: E = 3·1 + 4·2 = 11, ∂E/∂input = [3, 4].
    Rounding magnitude of the copies of the input (fc re-run): S = |E| + (|3|·1 + |4|·2)·1 = 22."""
    return hand_model([1.0, 2.0], [("fc1", FC((1, 2)))], "none", [1.0],
                      params={"fc1.weights": [[3.0, 4.0]], "fc1.bias": [0.0]})


def test_the_rounding_of_a_loss_none_sum_and_of_fast_input_copies_is_counted():
    """input [1, −2] → flatten → loss none, upstream [3, 4]: E = 3 − 8 = −5, but the loss sums
    terms of sizes 3 and 8 and the flatten rounds nothing, so T = 11 (|E| = 5 would undercount).
    The full check's input copies x ± h are exact: S = [11, 11 + Σ|y||δ| = 22]; --fast's copies
    x + s·v round every entry: S[0] = 11 + Σ|x||δ| = 22, and value 1 comes from the flatten's
    forward, which rounds nothing: S[1] = 11."""
    model = hand_model([[[1.0, -2.0]]], [("flatten1", Flatten())], "none", [3.0, 4.0])
    trace = model.forward()
    grads = model.backward(trace)
    np.testing.assert_array_equal(rounding_magnitude(model, trace, grads), [11.0, 22.0])
    np.testing.assert_array_equal(rounding_magnitude(model, trace, grads, recompute=True), [22.0, 11.0])


def test_fast_does_not_fail_a_flatten_into_loss_none():
    """A right gradient through flatten into ``loss: none``, 243 integer terms that cancel to a
    small E: with S = |E| its rounding noise passed the allowance for direction seed 1."""
    rng = np.random.default_rng(38)
    size = int(rng.integers(8, 16))
    x = rng.integers(-2, 3, (3, size, size)).astype(float)
    model = hand_model(x, [("flatten1", Flatten())], "none", rng.integers(-2, 3, 3 * size * size).astype(float))
    assert [check_model(model, fast=True, seed=seed).passed for seed in range(3)] == [True] * 3


@pytest.mark.parametrize("eps", [1e-4, 1e-12])
def test_resolution_is_the_allowance_over_the_gradient_at_the_best_entry(eps):
    # entry 1 (θ = 2, step h = 2·eps, g = 4) resolves best: (atol + rtol·4 + 4ε·22/h) / 4;
    # entry 0 (θ = 1, h = eps, g = 3) gives (atol + rtol·3 + 4ε·22/eps) / 3, larger
    result = check_model(linear_fc(), eps=eps)
    gradient = {q.quantity: q for q in result.gradients}["input"]
    noise = 4 * EPSILON * 22 / (2 * eps)
    assert gradient.resolution == pytest.approx((1e-10 + 1e-7 * 4 + noise) / 4, rel=2e-2)
    assert gradient.difference_resolution == pytest.approx(noise / 4, rel=5e-2)
    assert gradient.status == "passed" and result.passed


def test_finite_differences_too_coarse_for_one_percent_are_unverified():
    # at eps 1e-13 the noise on entry 1 is 4ε·22/2e-13 ≈ 0.098, a relative 0.024 of g = 4
    result = check_model(linear_fc(), eps=1e-13)
    gradient = {q.quantity: q for q in result.gradients}["input"]
    assert gradient.difference_resolution == pytest.approx(4 * EPSILON * 22 / 2e-13 / 4, rel=5e-2)
    assert gradient.status == "unverified" and not gradient.passed and not result.passed
    assert all(e.status == "unresolved" for e in gradient.entries)   # neither resolves 1% of itself
    assert result.faulty_layer is None and result.deltas == []     # nothing disagreed


class HalfWrongReLU(ReLU):
    """ReLU whose backward is 50% too large."""

    def backward(self, dy, cache, params):
        dx, grads = super().backward(dy, cache, params)
        return dx * 1.5, grads


def test_a_gradient_half_wrong_never_passes_at_a_tiny_eps():
    wrong = small_net(act=HalfWrongReLU)
    assert {q.status for q in check_model(wrong).gradients if q.quantity.startswith(("input", "conv1"))} \
        == {"failed"}
    tiny = check_model(wrong, eps=1e-14)
    assert not tiny.passed
    assert {q.status for q in tiny.gradients} <= {"failed", "unverified"}
    assert "unverified" in {q.status for q in tiny.gradients}
    correct = check_model(small_net(), eps=1e-14)
    assert not correct.passed and {q.status for q in correct.gradients} <= {"failed", "unverified"}


def test_a_gradient_that_is_zero_by_symmetry_is_verified_not_unverified():
    """A one-filter conv bias before softmax + cross-entropy moves every logit alike, which softmax
    ignores: ∂E/∂b = Σ_k (y_k − t_k) = 1 − 1 = 0; its finite difference is rounding, ~1e-12."""
    layers = [("conv1", Conv((1, 1, 2, 2))), ("flatten1", Flatten()), ("softmax1", Softmax())]
    model = hand_model(np.arange(9.0).reshape(1, 3, 3) / 9, layers, "cross_entropy", [0, 1, 0, 0], seed=2)
    result = check_model(model)
    bias = {q.quantity: q for q in result.gradients}["conv1.bias"]
    assert abs(bias.entries[0].analytic) < 1e-15
    assert bias.status == "passed" and result.passed
    assert bias.max_rel_error == 0.0       # 0 against 1e-13 is no relative error: both are in the allowance


def test_unverified_in_the_table_and_json_with_the_way_out(spec):
    import json
    result = run("check", spec, "--eps", "1e-14")
    assert result.exit_code == 1, result.output
    assert "unverified" in result.stdout and "larger --eps" in result.stdout
    assert f"{spec}: unverified (" in result.stdout
    assert result.stdout.rstrip().endswith("1 spec: 0 passed, 0 failed, 1 unverified")
    result = run("check", spec, "--eps", "1e-14", "--format", "json")
    doc = json.loads(result.stdout)
    assert not doc["passed"]
    gradients = doc["specs"][0]["gradients"]
    assert "unverified" in {q["status"] for q in gradients}
    assert all(q["resolution"] > 1e-2 for q in gradients if q["status"] == "unverified")
    passing = json.loads(run("check", spec, "--format", "json").stdout)["specs"][0]["gradients"]
    assert all(q["status"] == "passed" and 1e-7 <= q["resolution"] < 1e-6 for q in passing)


# --------------------------------------------------------------------------- kinks worth a look

def zero_bias_relu_model():
    """A map mostly of zeros → conv with bias 0 → relu: most conv outputs are exactly 0, so most
    input entries straddle relu kinks; max pooling and fc after them."""
    x = np.zeros((1, 4, 5))
    x[0, 0, 4], x[0, 1, 4], x[0, 2, 2] = 1.0, 2.0, 0.5
    layers = [("conv1", Conv((1, 1, 2, 2))), ("relu1", ReLU()), ("pool1", Pool("max", 2, 1)),
              ("flatten1", Flatten()), ("fc1", FC((2, 6)))]
    params = {"conv1.kernel": [[[[0.3, -0.2], [0.1, 0.4]]]], "conv1.bias": [0.0]}
    return hand_model(x, layers, "squared_error", [1.0, 0.0], params=params, seed=1)


def test_kinks_that_make_no_difference_are_not_listed_but_kept():
    result = check_model(zero_bias_relu_model())
    gradient = {q.quantity: q for q in result.gradients}["input"]
    kinks = [e for e in gradient.entries if e.status == "kink"]
    assert len(kinks) == gradient.kinks > 5                  # every kink entry stays in the result
    for e in kinks:                                          # … its one-sided quotients agree with it
        assert abs(e.left - e.analytic) <= 1e-4 * abs(e.analytic) + 1e-11
        assert abs(e.right - e.analytic) <= 1e-4 * abs(e.analytic) + 1e-11
        assert not e.notable
    assert result.passed


def test_a_kink_at_an_edge_or_with_a_wide_bracket_is_listed():
    # relu'(0) = 0 is the left edge of [0, −10] (tests/unit/test_gradcheck.py derives both by hand)
    delta = {q.quantity: q for q in check_model(relu_at_zero_model(), deltas=True).deltas}["conv1"]
    assert delta.entries[0].status == "kink" and delta.entries[0].notable
    # a tie split in two: 0.5 in the middle of [0, 1], a bracket as wide as the value
    model = hand_model([[[1.0, 1.0], [0.5, 0.2]]], [("pool1", Pool("max", 2, ties="split")),
                                                     ("flatten1", Flatten())], "none", [1.0])
    entries = check_model(model).gradients[0].entries
    assert [(e.analytic, e.status, e.notable) for e in entries[:2]] == [(0.5, "kink", True)] * 2
    assert [e.notable for e in entries[2:]] == [False, False]


def test_the_table_says_what_its_errors_measure_and_how_many_kinks_it_left_out(tmp_path):
    path = tmp_path / "kinks.yaml"
    path.write_text("""\
input: [[0, 0, 0, 0, 1], [0, 0, 0, 0, 2], [0, 0, 0.5, 0, 0], [0, 0, 0, 0, 0]]
layers:
  - conv: {kernel: [[0.3, -0.2], [0.1, 0.4]], bias: 0}
  - relu
  - pool: {type: max, size: 2, stride: 1}
  - flatten
  - fc: {weights: {random: {shape: [2, 6], seed: 1}}, bias: [0, 0]}
loss: squared_error
target: [1, 0]
""")
    result = run("check", path)
    assert result.exit_code == 0, result.output
    assert "entries of input to look at" not in result.stdout
    assert "over the entries that are not kinks" in result.stdout
    assert "16 kinks of input not listed" in result.stdout


# --------------------------------------------------------------------------- work

from cnngrad.gradcheck import DEFAULT_MAX_WORK, TooMuchWork  # noqa: E402
from cnngrad.gradcheck.work import FORMING, check_work  # noqa: E402
from cnngrad.spec import load_model  # noqa: E402

BIG = """\
input: {random: {shape: [1, 300, 300], seed: 1}}
layers:
  - conv: {kernel: {random: {shape: [1, 1, 3, 3], seed: 2}}}
  - relu
  - flatten
  - tanh
  - fc: {weights: {random: {shape: [2, 88804], seed: 3, scale: 0.01}}}
loss: squared_error
target: [1, 0]
"""
# (the tanh keeps each input pixel's copies on the whole 88,804 values: a flatten straight into
# the fc would run on a copy's 3×3 box of change alone, a check of a second)


def test_the_work_of_a_check_by_hand():
    # input [3] → fc 2×3: the input's 3 entries each run 4 copies of fc (6 multiply-adds) from
    # a copy of the 3 inputs (FORMING each); the weights' and the bias's copies move fc's 2 output
    # units (4 copies each, one value formed, nothing left to run)
    model = hand_model([1.0, 2.0, 3.0], [("fc1", FC((2, 3)))], "squared_error", [0.0, 1.0])
    per_unit = 4 * 2 * FORMING
    assert check_work(model.network) == 3 * 4 * (6 + 3 * FORMING) + per_unit + per_unit
    assert check_work(model.network, wrt=["fc1.bias"]) == per_unit
    assert check_work(model.network, fast=True) == 6 * 4 * (6 + 3 * FORMING) + 2 * 6 * 4 * FORMING
    # fc1's delta: its 2 outputs, 4 copies each, formed and straight into the loss
    assert check_work(model.network, wrt=["fc1.bias"], deltas=True) == per_unit + per_unit


def test_lenet5_is_well_within_the_default_work():
    assert check_work(load_model("configs/lenet5.yaml").network) < DEFAULT_MAX_WORK / 20


def test_a_check_too_big_to_finish_is_refused_up_front(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(BIG)
    model = load_model(str(path))
    with pytest.raises(TooMuchWork):
        check_model(model)
    result = run("check", path)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {path}: ") and "multiply-adds" in line
    assert "--fast" in line and "--wrt" in line and "--max-work" in line
    fast = run("check", path, "--fast")
    assert fast.exit_code == 0, fast.output
    assert run("check", path, "--wrt", "conv1.kernel").exit_code == 0


def test_a_long_check_says_its_estimate_on_stderr(spec, monkeypatch):
    import cnngrad.gradcheck.work as work
    assert run("check", spec).stderr == ""
    monkeypatch.setattr(work, "NOTE_SECONDS", 0.0)
    result = run("check", spec)
    assert result.exit_code == 0
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"note: {spec}: ") and "multiply-adds" in line


def test_max_work_lowers_and_raises_the_limit(spec):
    assert run("check", spec, "--max-work", "10").exit_code == 2
    assert run("check", spec, "--max-work", "1e30").exit_code == 0
    for bad in ("0", "nan", "inf"):
        result = run("check", spec, "--max-work", bad)
        assert result.exit_code == 2 and result.stderr.startswith("error: --max-work ")


def test_a_rounding_allowance_beyond_float64_leaves_a_right_gradient_unverified_not_failed():
    """Average pool of [[1e308, 1e308]] (mean 1e308, finite; issue 17.17), loss none, upstream 1:
    ∂E/∂x = [0.5, 0.5] by hand, and the differences give 0.5 too. The size of the sums behind
    them, S ≈ 2e308, overflows, so the allowance 4εS/h is inf: nothing was measured. That was
    "FAILED, faulty layer: loss" with an error of 3e-12 (and 0 for the pool's delta)."""
    model = hand_model([[[1e308, 1e308]]], [("pool1", Pool("avg", (1, 2)))], "none", [[[1.0]]])
    result = check_model(model, deltas=True)
    by = {q.quantity: q for q in result.gradients + result.deltas}
    assert [e.analytic for e in by["input"].entries] == [0.5, 0.5]
    assert by["input"].status == "unverified" and by["pool1"].status == "unverified"
    assert not result.passed and result.faulty_layer is None


def test_the_table_says_why_an_overflowed_allowance_verifies_nothing(tmp_path):
    spec = tmp_path / "pool.yaml"
    spec.write_text("input: [[1e308, 1e308]]\nlayers:\n  - pool: {type: avg, size: [1, 2]}\n"
                    "loss: none\nupstream_grad: [[1]]\n")
    result = run("check", spec)
    assert result.exit_code == 1, result.output
    assert "input: unverified: the sums behind E exceed float64" in result.stdout
    assert result.stdout.rstrip().endswith("1 spec: 0 passed, 0 failed, 1 unverified")


# --------------------------------------------------------------------------- unresolved entries

class HalfWrongMiddle(FC):
    """fc whose ∂E/∂input[1] is 50% too large."""

    def backward(self, dy, cache, params):
        dx, grads = super().backward(dy, cache, params)
        dx = dx.copy()
        dx[:, 1] *= 1.5
        return dx, grads


@pytest.mark.parametrize("layer", [FC, HalfWrongMiddle])
def test_an_entry_lost_under_a_cancelling_sum_is_unverified_not_passed(layer):
    """input [1e12, 1, −1e12] → fc [[1, 1, 1]]: E = 1, but a step of input[1] moves E by less than
    the rounding of 1e12, so its difference says nothing of ∂E/∂input[1] = 1 (right or 50% wrong)."""
    result = check_model(cancelling_fc(1e12, layer))
    gradient = {q.quantity: q for q in result.gradients}["input"]
    assert gradient.status == "unverified" and not result.passed
    assert [e.status for e in gradient.entries] == ["ok", "unresolved", "ok"]
    assert [e.index for e in gradient.flagged()] == [(1,)]

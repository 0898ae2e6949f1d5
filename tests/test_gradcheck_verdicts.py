"""What ``check``'s verdicts claim: the rounding allowance of sums that cancel, the resolution a
check reaches (and ``unverified`` where it reaches too little), the work bound, which kinks are
worth a look. Expected values are derived by hand beside each test, or come from PyTorch."""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.gradcheck import check_model
from cnngrad.layers.conv import Conv
from cnngrad.layers.fc import FC

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


@pytest.mark.parametrize("build", [cancelling_fc, cancelling_conv])
@pytest.mark.parametrize("scale", SCALES)
def test_a_sum_that_cancels_is_not_a_false_failure(build, scale):
    result = check_model(build(scale))
    gradient = {q.quantity: q for q in result.gradients}["input"]
    np.testing.assert_array_equal([e.analytic for e in gradient.entries], [1.0, 1.0, 1.0])
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

from click.testing import CliRunner  # noqa: E402

from cnngrad.cli import cli  # noqa: E402

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


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


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
    assert grads["conv1.kernel"][0][0] < -1.8
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
    grad = np.asarray(doc["gradients"]["fc1.bias"])
    np.testing.assert_allclose(doc["updated"]["fc1.bias"], 0.0 - 0.5 * grad)

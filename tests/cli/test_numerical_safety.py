"""Extreme values end in finite, correct numbers through the stable forms, or in one clear error
naming the layer or gradient where a value stopped being finite; nothing prints nan silently.

Every run goes through the CLI under tests/helpers/cli.py's judge (exit 0/1 with valid output and no
unmarked nan/inf, or exit 2 with one ``error:`` line naming the file); a saturated sigmoid's ∂E/∂y is
read from the loss itself. Expected numbers are worked by hand in the comments.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from helpers.cli import run_text


def doc(tmp_path, text, command="backward"):
    outcome = run_text(tmp_path, text, command, "--format", "json")
    assert outcome.exit_code == 0, outcome.stderr
    return json.loads(outcome.stdout)


def error(tmp_path, text, command="backward"):
    outcome = run_text(tmp_path, text, command)
    assert outcome.exit_code == 2
    return outcome.stderr.strip()


@pytest.mark.parametrize("z", [1000.0, -1000.0])
def test_sigmoid_bce_at_logits_of_1000(tmp_path, z):
    # E = max(z, 0) − t z + log(1 + e^−|z|) = 1000 for (z, t) = (1000, 0) or (−1000, 1);
    # ∂E/∂z = σ(z) − t = ±1 exactly in float64. ∂E/∂y = 1/(1 − y) or −1/y = ±(1 + e^1000): beyond
    # float64, so JSON has null and the table marks it.
    target = 0 if z > 0 else 1
    spec = f"input: [{z}]\nlayers: [sigmoid]\nloss: binary_cross_entropy\ntarget: [{target}]\n"
    result = doc(tmp_path, spec)
    assert result["loss"] == 1000.0
    assert result["gradients"]["grad.input"] == [1.0 if z > 0 else -1.0]
    assert result["gradients"]["grad.sigmoid1"] == [None]
    table = run_text(tmp_path, spec, "backward").stdout
    assert ("-inf (overflow)" if z < 0 else "inf (overflow)") in table
    assert run_text(tmp_path, spec, "check").exit_code == 0


def test_pre_activations_of_1000_saturate_to_exact_values(tmp_path):
    # fc gives [1000, −1000, 1000, −1000]; tanh → [1, −1, 1, −1], sigmoid/relu likewise exact;
    # their derivatives there are 0 in float64 (1 − tanh² = 0, σ(1 − σ) = 0 or e^−1000 → 0)
    for act, output in (("tanh", [1.0, -1.0, 1.0, -1.0]), ("sigmoid", [1.0, 0.0, 1.0, 0.0]),
                        ("relu", [1000.0, 0.0, 1000.0, 0.0])):
        spec = (f"input: [1, -1]\nlayers:\n  - fc: {{weights: [[1000, 0], [0, 1000], [1000, 0], "
                f"[0, 1000]]}}\n  - {act}\nloss: squared_error\ntarget: [0, 0, 0, 0]\n")
        forward = doc(tmp_path, spec, "forward")
        assert forward["output"] == output
        grads = doc(tmp_path, spec)["gradients"]
        assert all(v is not None and math.isfinite(v) for v in grads["grad.input"])


def test_probabilities_of_exactly_0_and_1_into_the_plain_entropy_losses(tmp_path):
    # with no layers the input [0, 1] is the output; t = [0, 1]: E = −(0·log 0 + 1·log 1) = 0
    # (0·log 0 taken as 0), ∂E/∂y = −t/y = [0 (0/0 taken as 0), −1]; BCE: ∂E/∂y = −t/y +
    # (1−t)/(1−y) = [1, −1]
    ce = doc(tmp_path, "input: [0, 1]\nlayers: []\nloss: cross_entropy\ntarget: [0, 1]\n")
    assert ce["loss"] == 0.0 and ce["gradients"]["grad.input"] == [0.0, -1.0]
    bce = doc(tmp_path, "input: [0, 1]\nlayers: []\nloss: binary_cross_entropy\ntarget: [0, 1]\n")
    assert bce["loss"] == 0.0 and bce["gradients"]["grad.input"] == [1.0, -1.0]
    # the wrong way round the loss is −log 0 = inf: an error saying so, for every command
    for loss in ("cross_entropy", "binary_cross_entropy"):
        spec = f"input: [0, 1]\nlayers: []\nloss: {loss}\ntarget: [1, 0]\n"
        for command in ("forward", "backward", "check"):
            line = error(tmp_path, spec, command)
            assert f"loss: {loss} is inf" in line and "output[0] is exactly 0" in line


def test_cross_entropy_after_a_sigmoid_is_refused_with_the_fix(tmp_path):
    # sigmoid outputs are no distribution (and sigmoid(−1000) is exactly 0, so −log y was inf):
    # the error names the stable pairings
    result = run_text(tmp_path, "input: [1000, -1000]\nlayers:\n  - sigmoid\n"
                                "loss: cross_entropy\ntarget: [0, 1]\n", "check")
    assert result.exit_code == 2
    assert "the last layer sigmoid1 is sigmoid, not softmax" in result.stderr
    assert "add `- softmax`" in result.stderr and "{cross_entropy: {from: logits}}" in result.stderr


def test_bce_gradient_at_a_saturated_sigmoid_comes_from_the_logit():
    # sigmoid(40) rounds to 1 − 4.2e−18 ≈ 1.0; ∂E/∂y = (1 − t)(1 + e^z) for t = 0 is 1 + e^40,
    # which the plain (y − t)/(y(1 − y)) would give as inf or 0.
    from cnngrad.losses import LOSSES
    loss = LOSSES["binary_cross_entropy"]()
    z = np.array([[40.0]])
    y = 1 / (1 + np.exp(-z))
    output_grad, input_grad = loss.fused_grads(z, y, np.array([[0.0]]))
    assert np.isclose(output_grad[0, 0], 1 + np.exp(40.0), rtol=1e-15)
    assert input_grad[0, 0] == y[0, 0]
    # and the plain form at y = t = 1 is −1 (−t/y), not 0/0
    assert loss.grad(np.array([[1.0]]), np.array([[1.0]]))[0, 0] == -1.0


def test_huge_inputs_overflowing_in_a_layer_name_the_layer(tmp_path):
    spec = "input: [[1e300, 1e300], [1e300, 1e300]]\nlayers:\n  - conv: {kernel: [[1e10, 1], [1, 1]]}\n" \
           "loss: none\nupstream_grad: [[1]]\n"
    for command in ("forward", "backward", "check"):
        assert "conv1: the output is not finite (inf at [0, 0])" in error(tmp_path, spec, command)


def test_a_finite_forward_whose_backward_overflows_names_the_gradient(tmp_path):
    # y = 1e250 · 1e-100 = 1e150, E = ½ y² = 5e299 (finite); δ = y = 1e150 and
    # ∂E/∂x = w δ = 1e400: beyond float64, so backward and check refuse, naming grad.input
    spec = "input: [1e-100]\nlayers:\n  - fc: {weights: [[1e250]]}\nloss: squared_error\ntarget: [0]\n"
    forward = doc(tmp_path, spec, "forward")
    assert forward["loss"] == pytest.approx(5e299, rel=1e-12)
    for command in ("backward", "check"):
        line = error(tmp_path, spec, command)
        assert "grad.input: the gradient is not finite (inf at [0])" in line
        assert "backward pass overflowed" in line
    # with loss none, an upstream gradient of 1e308 through a kernel: grad.conv1.kernel overflows
    spec = "input: [[2, 3], [4, 5]]\nlayers:\n  - conv: {kernel: [[1]]}\nloss: none\n" \
           "upstream_grad: [[1e308, 0], [0, 0]]\n"
    assert "grad.conv1.kernel: the gradient is not finite (inf" in error(tmp_path, spec)


@pytest.mark.parametrize("scale", ["1e-300", "1e300"])
def test_l2_pooling_of_tiny_and_huge_entries(tmp_path, scale):
    # √((3s)² + (4s)²) = 5s and ∂y/∂x = x/y = [0.6, 0.8], whatever the scale s: the squares of
    # 1e-300 underflow to 0 and those of 1e300 overflow, so only the scaled form gets them right
    spec = f"input: [[3, 4], [0, 0]]\nlayers:\n  - pool: {{type: l2, size: 2}}\nloss: none\nupstream_grad: [[1]]\n"
    spec = spec.replace("[[3, 4]", f"[[{3 * float(scale)!r}, {4 * float(scale)!r}]")
    assert doc(tmp_path, spec, "forward")["output"][0][0] == pytest.approx(5 * float(scale), rel=1e-15)
    assert doc(tmp_path, spec)["gradients"]["grad.input"] == [[pytest.approx(0.6, rel=1e-15),
                                                         pytest.approx(0.8, rel=1e-15)], [0.0, 0.0]]


def test_tiny_inputs_stay_finite_and_exact_through_every_activation(tmp_path):
    for act in ("relu", "sigmoid", "tanh", "softmax", "leaky_relu"):
        spec = f"input: [1e-300, -1e-300]\nlayers: [{act}]\nloss: squared_error\ntarget: [0, 0]\n"
        result = doc(tmp_path, spec)
        assert all(math.isfinite(v) for v in result["gradients"]["grad.input"])


def test_a_random_scale_of_minus_zero_is_zero(tmp_path):
    # found by the fuzzer: numpy's uniform(-s, s) with s = -0.0 raised "high - low < 0"
    spec = "input: {random: {shape: [2, 2], distribution: uniform, scale: -0.0}}\n" \
           "layers: [relu]\nloss: none\nupstream_grad: [[1, 1], [1, 1]]\n"
    assert doc(tmp_path, spec, "forward")["output"] == [[0.0, 0.0], [0.0, 0.0]]


def test_an_upstream_gradient_near_the_float64_limit_checks_without_a_numpy_warning(tmp_path):
    """Found by the fuzzer: the rounding sizes S of the layers, summed, overflowed with a
    RuntimeWarning on stderr (the judge of run_text refuses any). The check itself cannot measure
    such a network: its entries fail (their differences overflow), exit 1."""
    spec = ("input: [[0.2, 0.7, 0.1], [0.9, 0.3, 0.6], [0.5, -0.8, 0.2]]\n"
            "layers:\n  - conv: {kernel: [[0.4, -0.3], [0.2, 0.1]], bias: 0.5}\n"
            "loss: none\nupstream_grad: [[0.1, -0.2], [1e308, -0.1]]\n")
    assert run_text(tmp_path, spec, "check").exit_code == 1


@pytest.mark.parametrize("fast", [[], ["--fast"]])
def test_a_loss_none_whose_sum_overflows_cannot_be_checked(tmp_path, fast):
    """Found by the fuzzer: with loss: none, check differences E = Σ upstream_grad · output; a max
    pool passing 1e308 twice makes it inf, and every difference was nan (FAILED, a numpy warning
    on stderr). Like a loss that overflows, it is one error naming the loss, exit 2; backward
    still works (its gradients, 1 at the winners, are finite)."""
    spec = ("input: [[1, 1e308, 3], [5, 6, 7], [9, 10, 11]]\nlayers:\n  - pool: {type: max, size: 2, stride: 1}\n"
            "loss: none\nupstream_grad: [[1, 1], [1, 1]]\n")
    message = error(tmp_path, spec, ["check", *fast])
    assert message.startswith(f"error: {tmp_path / 'net.yaml'}: loss: ") and "overflowed float64" in message
    assert doc(tmp_path, spec)["gradients"]["grad.input"] == [[0, 2, 0], [0, 0, 0], [0, 1, 1]]

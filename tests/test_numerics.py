"""Values that overflow are errors naming the layer; saturated probabilities stay exact where they can."""
from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from cnngrad.cli import cli


def run(tmp_path, text, *args):
    path = tmp_path / "net.yaml"
    path.write_text(text)
    return CliRunner().invoke(cli, [*args, str(path)])


def test_overflow_names_the_layer(tmp_path):
    result = run(tmp_path, "input: [[1e300, 2e300], [3e300, 4e300]]\n"
                           "layers:\n  - conv: {kernel: [[1e10, 1], [1, 1]]}\n"
                           "loss: none\nupstream_grad: [[1]]\n", "forward")
    assert result.exit_code == 2
    assert "conv1: the output is not finite (inf at [0, 0])" in result.output
    assert "Traceback" not in result.output


def test_infinite_loss_is_an_error_with_the_fix(tmp_path):
    # sigmoid(−1000) is exactly 0 in float64, so −log y is infinite: cross_entropy is not fused with
    # sigmoid, and the message says which pairing is.
    result = run(tmp_path, "input: [1000, -1000]\nlayers:\n  - sigmoid\n"
                           "loss: cross_entropy\ntarget: [0, 1]\n", "check")
    assert result.exit_code == 2
    assert "loss: cross_entropy is inf" in result.output
    assert "sigmoid right before binary_cross_entropy" in result.output


def test_fused_forms_stay_finite_at_logits_of_1000(tmp_path):
    # softmax([1000, −1000]) = [1, e^−2000]: E = −log y₂ = 2000 exactly; ∂E/∂z = y − t = [1, −1].
    result = run(tmp_path, "input: [1000, -1000]\nlayers:\n  - softmax\n"
                           "loss: cross_entropy\ntarget: [0, 1]\n", "backward", "--format", "json")
    assert result.exit_code == 0, result.output
    import json
    doc = json.loads(result.output)
    assert doc["loss"] == 2000.0
    assert doc["gradients"]["input"] == [1.0, -1.0]


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

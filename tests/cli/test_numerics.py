"""cross_entropy after a sigmoid is refused with the fix; a saturated sigmoid's ∂E/∂y comes from its logit.

(Overflow in a layer, and logits of ±1000, are in tests/cli/test_numerical_safety.py.)
"""
from __future__ import annotations

import numpy as np

from helpers.cli import run_text


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

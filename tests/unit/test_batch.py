"""A batch is B independent examples: running them together must give what B separate runs give.

The checker relies on this when it evaluates hundreds of perturbed copies in one call. Outputs,
input gradients, every layer's delta and the per-example losses must agree to the last bit, or,
once an fc layer is involved, within a few units in the last place: numpy hands a (B, in) @ (in,
out) product to BLAS as a matrix product (gemm) but a single row as a vector product (gemv), which
sum in different orders. Measured over 30 seeds the worst gap is 2.5e-15 relative on fc outputs
of magnitude ~5 and 4.7e-15 on the softmax delta −t/y (which divides by a probability), so the
bound is 32 ulp of max(1, |value|). Everything without an fc layer is bit-identical. Parameter gradients of the batch are the sum of the single runs' (equal
up to the order of that sum).
"""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.layers.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from cnngrad.layers.conv import Conv
from cnngrad.layers.fc import FC
from cnngrad.layers.flatten import Flatten
from cnngrad.layers.pooling import Pool
from cnngrad.losses import LOSSES
from cnngrad.network import Network

BATCH = 5


def networks():
    """(id, input shape, layers, loss, target kind) covering every layer option and loss."""
    yield ("conv_relu_maxpool_fc_softmax_ce", (2, 9, 8), [
        ("conv1", Conv((3, 2, 3, 3), padding=1)), ("relu1", ReLU()),
        ("pool1", Pool("max", size=2)), ("flatten1", Flatten()),
        ("fc1", FC((4, 3 * 4 * 4))), ("softmax1", Softmax())], "cross_entropy", "distribution")
    yield ("conv_modes_untied_avg_l2_sigmoid_bce", (1, 8, 7), [
        ("conv1", Conv((2, 1, 2, 3), stride=[2, 1], padding=[[0, 1], [2, 0]], dilation=[1, 2],
                       mode="convolution", untied_bias=True)),
        ("tanh1", Tanh()), ("pool1", Pool("avg", size=2, stride=1, padding=1)),
        ("pool2", Pool("l2", size=[2, 1], stride=[1, 2])), ("flatten1", Flatten("F")),
        ("fc1", FC((3, 2 * 4 * 3))), ("sigmoid1", Sigmoid())], "binary_cross_entropy", "unit")
    yield ("same_leaky_split_map_output_mse", (2, 6, 6), [
        ("conv1", Conv((2, 2, 2, 2), padding="same", dilation=2)), ("leaky_relu1", LeakyReLU(0.1)),
        ("pool1", Pool("max", size=3, stride=1, padding="same", ties="split"))], "mse", "any")
    yield ("fc_only_squared_error", (7,), [
        ("fc1", FC((5, 7))), ("sigmoid1", Sigmoid()), ("fc2", FC((2, 5)))], "squared_error", "any")
    yield ("map_softmax_none", (1, 5, 5), [
        ("conv1", Conv((2, 1, 2, 2), padding="valid")), ("softmax1", Softmax())], "none", "any")


def make_target(kind, shape, rng):
    if kind == "distribution":
        t = rng.random(shape)
        return t / t.reshape(shape[0], -1).sum(axis=1).reshape((-1,) + (1,) * (len(shape) - 1))
    if kind == "unit":
        return rng.random(shape)
    return rng.standard_normal(shape)


def assert_same(batch_value, single_value, what, exact):
    if exact:
        np.testing.assert_array_equal(batch_value, single_value, err_msg=what)
        return
    allowed = 32 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(single_value))
    excess = np.abs(batch_value - single_value) - allowed
    assert np.all(excess <= 0), f"{what}: off by {np.max(excess):.3e} more than allowed"


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("case", list(networks()), ids=lambda case: case[0])
def test_batch_equals_separate_runs(case, seed):
    _, in_shape, layers, loss_name, target_kind = case
    rng = np.random.default_rng(seed)
    net = Network(in_shape, layers, LOSSES[loss_name]())
    exact = not any(isinstance(layer, FC) for _, layer in layers)
    # moderate weights, as a real network has: logits of a few units, not thousands
    params = {name: 0.3 * rng.standard_normal(shape) for name, shape in net.param_shapes.items()}
    x = rng.standard_normal((BATCH,) + in_shape)
    x[0, ...] = np.round(x[0], 1)  # coarse values: ties in max pools, exact zeros for ReLU
    target = make_target(target_kind, (BATCH,) + net.output_shape, rng)

    trace = net.forward(x, params)
    losses = net.losses(trace, target)
    grads = net.backward(trace, params, target)
    assert losses.shape == (BATCH,)

    summed = {name: np.zeros(shape) for name, shape in net.param_shapes.items()}
    for b in range(BATCH):
        one = slice(b, b + 1)
        single = net.forward(x[one], params)
        single_grads = net.backward(single, params, target[one])
        for k, (ours, theirs) in enumerate(zip(trace.outputs, single.outputs)):
            assert_same(ours[one], theirs, f"example {b}: output of {net.names[k]}", exact)
        assert_same(losses[one], net.losses(single, target[one]), f"example {b}: loss", exact)
        assert_same(grads.input[one], single_grads.input, f"example {b}: grad input", exact)
        for name, delta in single_grads.outputs.items():
            assert_same(grads.outputs[name][one], delta, f"example {b}: grad {name}", exact)
        for name, value in single_grads.params.items():
            summed[name] += value

    assert set(grads.params) == set(summed)
    for name, value in summed.items():
        np.testing.assert_allclose(grads.params[name], value, rtol=1e-13, atol=1e-15, err_msg=name)
        assert np.max(np.abs(value)) > 0  # a gradient that is zero everywhere would prove nothing

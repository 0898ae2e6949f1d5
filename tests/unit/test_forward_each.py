"""``Layer.forward_each``: a layer's output for several values of one parameter in one call (what
--fast's affine directions re-run) - each the very bits of that value's own ``forward``, and each
agreeing with PyTorch's conv2d / linear."""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.layers.conv import Conv
from cnngrad.layers.fc import FC
from cnngrad.layers.pooling import Pool

CONVS = [
    (dict(kernel_shape=(4, 3, 3, 3), padding=1), (2, 3, 7, 6)),
    (dict(kernel_shape=(6, 1, 2, 3), stride=[2, 1], dilation=[1, 2], groups=3, mode="convolution"), (1, 3, 8, 9)),
    (dict(kernel_shape=(2, 2, 3, 3), untied_bias=True), (3, 2, 5, 5)),
]


def params_of(layer, in_shape, rng):
    return {name: rng.normal(size=shape) for name, shape in layer.param_shapes(in_shape[1:]).items()}


def one_by_one(layer, x, params, pname, values):
    return np.stack([layer.forward(x, {**params, pname: v})[0] for v in values])


@pytest.mark.parametrize("settings,in_shape", CONVS)
@pytest.mark.parametrize("pname", ["kernel", "bias"])
def test_conv_forward_each_is_each_forward_and_torch(settings, in_shape, pname):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    layer = Conv(**settings)
    x = rng.normal(size=in_shape)
    params = params_of(layer, in_shape, rng)
    values = params[pname] + rng.normal(size=(5,) + params[pname].shape)
    each = layer.forward_each(x, params, pname, values)
    np.testing.assert_array_equal(each, one_by_one(layer, x, params, pname, values))
    for value, y in zip(values, each):
        mine = {**params, pname: value}
        kernel = torch.tensor(mine["kernel"])
        if settings.get("mode") == "convolution":
            kernel = kernel.flip(-1, -2)
        theirs = torch.nn.functional.conv2d(torch.tensor(x), kernel, None, settings.get("stride", 1),
                                            settings.get("padding", 0), settings.get("dilation", 1),
                                            settings.get("groups", 1))
        bias = torch.tensor(mine["bias"])
        theirs = theirs + (bias if settings.get("untied_bias") else bias[:, None, None])
        np.testing.assert_allclose(y, theirs.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("pname", ["weights", "bias"])
def test_fc_forward_each_is_each_forward_and_torch(batch, pname):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    layer = FC((7, 11))
    x = rng.normal(size=(batch, 11))
    params = params_of(layer, x.shape, rng)
    values = params[pname] + rng.normal(size=(6,) + params[pname].shape)
    each = layer.forward_each(x, params, pname, values)
    np.testing.assert_array_equal(each, one_by_one(layer, x, params, pname, values))
    for value, y in zip(values, each):
        mine = {**params, pname: value}
        theirs = torch.nn.functional.linear(torch.tensor(x), torch.tensor(mine["weights"]), torch.tensor(mine["bias"]))
        np.testing.assert_allclose(y, theirs.numpy(), rtol=1e-12, atol=1e-12)


def test_a_layer_without_its_own_forward_each_runs_forward_per_value():
    """The default (here a pool, which has no parameters to batch): one forward per value."""
    layer = Pool(type="max", size=2)
    x = np.random.default_rng(5).normal(size=(2, 3, 4, 4))
    each = layer.forward_each(x, {}, "unused", np.zeros((3, 1)))
    np.testing.assert_array_equal(each, np.stack([layer.forward(x, {})[0]] * 3))


@pytest.mark.parametrize("pname", ["kernel", "bias"])
def test_moved_in_the_changes_memory_is_the_same_bits(pname):
    """``LayerParameter.moved``, ``LinearFirstLayer.moved`` and ``adding`` (a layer output's, the
    input's) with ``overwrite``: θ + changes formed in the changes' own memory (--fast's 7 stacked
    copies of fc1's weights) give the bits of the sums formed apart, and without it the changes are
    left as they were."""
    from cnngrad.gradcheck.probes import LayerParameter, LinearFirstLayer, adding
    settings, in_shape = CONVS[1]
    rng = np.random.default_rng(6)
    layer = Conv(**settings)
    x = rng.normal(size=in_shape)
    params = params_of(layer, in_shape, rng)
    y = layer.forward(x, params)[0]
    for moved, base in ((LayerParameter(layer, x, y, params, pname).moved, params[pname]),
                        (LinearFirstLayer(layer, x, y, params).moved, x), (adding(y), y)):
        changes = rng.normal(size=(7,) + base.shape)
        kept = changes.copy()
        apart = moved(changes)
        np.testing.assert_array_equal(changes, kept)
        np.testing.assert_array_equal(moved(changes, overwrite=True), apart)
        np.testing.assert_array_equal(changes, base + kept)

"""``softmax: {axis: channels}``: one distribution over the channels of each pixel, as
``F.softmax(x, dim=1)`` on (N, C, H, W); ``axis: all`` (the default) keeps one over the example."""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad import SpecError, loads
from cnngrad.explain import explain
from cnngrad.gradcheck import check_model
from cnngrad.layers.activations import Softmax

torch = pytest.importorskip("torch")
F = torch.nn.functional

from test_explain import assert_every_entry_explained  # noqa: E402
from test_gradcheck import by_name, hand_model  # noqa: E402
from test_layers_torch import CASES, compare_layer  # noqa: E402
from helpers.torchnet import torch_softmax_all  # noqa: E402


def test_channels_matches_torch_dim_1():
    rng = np.random.default_rng(1701)
    for _ in range(CASES * 2):
        shape = (int(rng.integers(1, 4)), int(rng.integers(2, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        x = rng.standard_normal(shape) * rng.choice([0.5, 3.0, 8.0])   # (saturated: both sides round)
        compare_layer(Softmax("channels"), x, {}, lambda tx, p: F.softmax(tx, dim=1), rng, shape)


def test_all_is_unchanged_on_vectors_and_maps():
    rng = np.random.default_rng(1702)
    for shape in ((2, 5), (2, 3, 2, 4)):
        x = rng.standard_normal(shape)
        compare_layer(Softmax(), x, {}, torch_softmax_all, rng, shape)
        compare_layer(Softmax("all"), x, {}, torch_softmax_all, rng, shape)


def test_every_pixel_sums_to_one_and_extremes_stay_finite():
    x = np.array([[[[1000.0, 0.0]], [[-1000.0, 0.0]], [[0.0, 0.0]]]])   # (1, 3, 1, 2)
    y, _ = Softmax("channels").forward(x, {})
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(y[0, :, 0, 1], [1 / 3] * 3, rtol=1e-15)
    assert y[0, 0, 0, 0] == 1.0 and np.isfinite(y).all()


SPEC = """\
input: {random: {shape: [3, 2, 2], seed: 4}}
layers:
  - conv: {kernel: {random: {shape: [3, 3, 1, 1], seed: 5}}}
  - softmax: {axis: channels}
loss: squared_error
target: {random: {shape: [3, 2, 2], seed: 6}}
"""


def test_spec_reads_the_axis_and_refuses_a_vector():
    model = loads(SPEC)
    assert model.network.layers[1].axis == "channels"
    with pytest.raises(SpecError) as err:
        loads("input: [1, 2, 3]\nlayers:\n  - softmax: {axis: channels}\nupstream_grad: [1, 1, 1]\n")
    assert err.value.path == "layers[0]" and "map" in err.value.message
    with pytest.raises(SpecError):
        loads(SPEC.replace("axis: channels", "axis: rows"))


def test_cross_entropy_after_a_channel_softmax_is_per_pixel_not_fused():
    """−Σ t log y over every pixel's distribution: F.cross_entropy(z, t, reduction='sum') with a
    per-pixel target distribution over the channels."""
    rng = np.random.default_rng(7)
    t = rng.random((3, 2, 2))
    t /= t.sum(axis=0)
    text = SPEC.replace("loss: squared_error", "loss: cross_entropy").replace(
        "target: {random: {shape: [3, 2, 2], seed: 6}}", f"target: {t.tolist()}")
    model = loads(text)
    assert not model.network.fused
    values = model.values()
    z = torch.tensor(values["conv1"][None], requires_grad=True)
    loss = F.cross_entropy(z, torch.tensor(t[None]), reduction="sum")
    loss.backward()
    assert values["loss"] == pytest.approx(float(loss.detach()), rel=1e-12)
    np.testing.assert_allclose(values["grad.conv1"], z.grad.numpy()[0], rtol=1e-10, atol=1e-14)
    assert check_model(model).passed


def test_checker_and_explain_work_and_a_wrong_jacobian_fails():
    model = loads(SPEC)
    assert check_model(model).passed
    assert_every_entry_explained(model)
    explained = explain(model, "grad.conv1[1,0,1]")
    assert len(explained.terms) + explained.zeros == 3      # one term per channel of that pixel
    assert "over the channels" in explained.formula

    class WholeMapJacobian(Softmax):
        """The Σ_k over the whole map instead of the pixel's channels (the other axis's backward)."""
        def backward(self, dy, cache, params):
            y = cache
            return y * (dy - (dy * y).sum(axis=(1, 2, 3), keepdims=True)), {}

    rng = np.random.default_rng(8)
    from cnngrad.layers.conv import Conv
    layers = [("conv1", Conv((3, 3, 1, 1))), ("softmax1", WholeMapJacobian("channels"))]
    bad = hand_model(rng.standard_normal((3, 2, 2)), layers, "squared_error", rng.standard_normal((3, 2, 2)))
    result = check_model(bad)
    assert not result.passed and by_name(result)["input"].status == "failed"

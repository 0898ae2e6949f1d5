"""Layer and group normalisation (``layer_norm``, ``group_norm``) against PyTorch's
``F.layer_norm(x, x.shape[1:])`` and ``F.group_norm``, through the spec, the explanation and the checker."""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.gradcheck.check import check_model
from cnngrad.layers.group_norm import GroupNorm
from cnngrad.layers.layer_norm import LayerNorm, standardize_backward
from cnngrad.spec import SpecError, load_model

torch = pytest.importorskip("torch")
F = torch.nn.functional

from helpers.layerchecks import assert_explains, assert_wrong_backward_blamed, spec_path  # noqa: E402
from helpers.torchnet import rel_err  # noqa: E402

RTOL = 1e-10


def compare(layer, x, params, torch_fn, rng):
    """Output and gradients within RTOL of PyTorch's. ∂E/∂x is a sum of terms that cancel (for
    two entries per set almost wholly, the result ~eps/σ² of the terms), so it is held to RTOL of
    the terms' size, (1/σ)(|g| + mean |g| + |x̂| mean |g x̂|), the scale both sides round at."""
    y, cache = layer.forward(x, params)
    dy = rng.standard_normal(y.shape)
    dx, grads = layer.backward(dy, cache, params)
    tx = torch.tensor(x, requires_grad=True)
    tp = {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}
    ty = torch_fn(tx, tp)
    ty.backward(torch.from_numpy(dy))
    assert rel_err(y, ty.detach().numpy()) <= RTOL
    terms = np.linalg.norm(_terms(layer, dy, cache, params))
    assert np.linalg.norm(dx - tx.grad.numpy()) <= RTOL * max(np.linalg.norm(dx), terms), (dx, tx.grad)
    for name in params:
        assert rel_err(grads[name], tp[name].grad.numpy()) <= RTOL, name


def _terms(layer, dy, cache, params):
    """(1/σ)(|g| + mean |g| + |x̂| mean |g x̂|) per entry, g = γ δ, over each normalised set."""
    xhat, inv_std = cache
    sets = inv_std.shape[:-1] + (-1,)
    gamma = params["gamma"] if isinstance(layer, LayerNorm) else params["gamma"].reshape((-1,) + (1,) * (dy.ndim - 2))
    g = np.abs(gamma * dy).reshape(sets)
    xh = np.abs(xhat).reshape(sets)
    return inv_std * (g + g.mean(axis=-1, keepdims=True) + xh * (g * xh).mean(axis=-1, keepdims=True))


def random_input(rng, shape):
    """Entries at a random offset and scale (a large mean tests the centring). Every normalised set
    has at least 2 entries: a single one standardises to 0 exactly here, and to PyTorch's rounding
    error of its variance (1e-11) there, which no relative test can compare."""
    return rng.choice([0.0, 3.0, 1e3]) + rng.choice([1e-2, 1.0, 50.0]) * rng.standard_normal(shape)


def test_layer_norm_matches_torch():
    rng = np.random.default_rng(51)
    for _ in range(60):
        batch = int(rng.integers(1, 4))
        shape = ((int(rng.integers(2, 9)),) if rng.random() < 0.3 else
                 (int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(2, 5))))
        eps = float(rng.choice([1e-5, 1e-3, 0.5]))
        params = {"gamma": rng.standard_normal(shape), "beta": rng.standard_normal(shape)}
        compare(LayerNorm(eps), random_input(rng, (batch,) + shape), params,
                lambda x, p: F.layer_norm(x, x.shape[1:], p["gamma"], p["beta"], eps), rng)


def test_group_norm_matches_torch():
    rng = np.random.default_rng(52)
    for _ in range(60):
        groups = int(rng.integers(1, 4))
        channels = groups * int(rng.integers(1, 4))
        batch = int(rng.integers(1, 4))
        shape = (channels,) + (int(rng.integers(1, 5)), int(rng.integers(2, 5)))
        if rng.random() < 0.2 and channels // groups >= 2:
            shape = (channels,)
        eps = float(rng.choice([1e-5, 1e-3, 0.5]))
        params = {"gamma": rng.standard_normal(channels), "beta": rng.standard_normal(channels)}
        compare(GroupNorm(groups, eps), random_input(rng, (batch,) + shape), params,
                lambda x, p: F.group_norm(x, groups, p["gamma"], p["beta"], eps), rng)


def test_group_norm_with_one_group_per_channel_is_instance_norm_and_one_group_is_layer_norm_with_shared_affine():
    rng = np.random.default_rng(53)
    x = rng.standard_normal((2, 4, 3, 3))
    ones = {"gamma": np.ones(4), "beta": np.zeros(4)}
    y, _ = GroupNorm(4).forward(x, ones)
    ref = F.instance_norm(torch.tensor(x), eps=1e-5).numpy()
    assert rel_err(y, ref) <= RTOL
    y1, _ = GroupNorm(1).forward(x, ones)
    ln, _ = LayerNorm().forward(x, {"gamma": np.ones((4, 3, 3)), "beta": np.zeros((4, 3, 3))})
    assert rel_err(y1, ln) <= RTOL


NET = """\
    input: {random: {shape: [4, 3, 3], seed: 1}}
    layers:
      - conv: {kernel: {random: {shape: [4, 4, 2, 2], seed: 2}}}
      - group_norm: {groups: 2, gamma: {random: {shape: [4], seed: 3}}, beta: 0.1}
      - tanh
      - layer_norm: {gamma: {random: {shape: [4, 2, 2], seed: 4}}, eps: 0.001}
      - flatten
      - layer_norm
    loss: squared_error
    target: {random: {shape: [16], seed: 5}}
    """


def test_spec_builds_checks_and_explains(tmp_path):
    model = load_model(spec_path(tmp_path, NET))
    assert model.user_shapes["group_norm1.gamma"] == (4,)
    assert model.params["group_norm1.beta"].tolist() == [0.1] * 4
    assert model.user_shapes["layer_norm1.gamma"] == (4, 2, 2)
    assert model.user_shapes["layer_norm2.beta"] == (16,)
    assert model.params["layer_norm2.gamma"].tolist() == [1.0] * 16
    result = check_model(model)
    assert result.passed
    assert all(q.kinks == 0 for q in result.gradients)      # smooth: no kinks anywhere
    assert_explains(model, ("grad.conv1[3,1,0]", "grad.group_norm1.gamma[2]", "grad.group_norm1.beta[1]",
                            "grad.tanh1[1,1,1]", "grad.layer_norm1.gamma[3,0,1]", "grad.layer_norm1.beta[0,0,0]",
                            "grad.flatten1[5]"))


def test_a_2d_input_writes_layer_norm_parameters_in_its_own_shape(tmp_path):
    model = load_model(spec_path(tmp_path, "input: [[1, 2, 4], [3, 5, 9]]\nlayers:\n"
                                           "  - layer_norm: {gamma: [[1, 2, 3], [4, 5, 6]]}\n"))
    assert model.user_shapes["layer_norm1.gamma"] == (2, 3)
    y = model.forward().outputs[0][0, 0]
    x = np.array([[1, 2, 4], [3, 5, 9]], dtype=float)
    xhat = (x - x.mean()) / np.sqrt(x.var() + 1e-5)
    np.testing.assert_allclose(y, np.array([[1, 2, 3], [4, 5, 6]]) * xhat, rtol=1e-14)


class ShiftlessLayerNorm(LayerNorm):
    """The input gradient without the −mean(g) term (forgetting that μ depends on x)."""

    def backward(self, dy, cache, params):
        dx, grads = super().backward(dy, cache, params)
        xhat, inv_std = cache
        g = (params["gamma"] * dy).reshape(dy.shape[0], -1)
        return dx + (inv_std * g.mean(axis=-1, keepdims=True)).reshape((-1,) + (1,) * (dy.ndim - 1)), grads


class UngroupedGroupNorm(GroupNorm):
    """The input gradient's mean terms taken over each channel instead of each group."""

    def backward(self, dy, cache, params):
        xhat, inv_std = cache
        _, grads = super().backward(dy, cache, params)
        per_channel = (dy.shape[0], dy.shape[1], -1)
        g = (params["gamma"].reshape(-1, 1, 1) * dy).reshape(per_channel)
        inv = np.repeat(inv_std, dy.shape[1] // self.groups, axis=1)
        return standardize_backward(g, xhat.reshape(per_channel), inv).reshape(dy.shape), grads


@pytest.mark.parametrize("layer, wrong", [("layer_norm1", ShiftlessLayerNorm), ("group_norm1", UngroupedGroupNorm)])
def test_wrong_backward_is_caught_and_blamed(tmp_path, layer, wrong):
    model = load_model(spec_path(tmp_path, NET))
    result = assert_wrong_backward_blamed(model, layer, wrong)
    assert not {q.quantity for q in result.gradients if not q.passed} & {f"{layer}.gamma", f"{layer}.beta"}


@pytest.mark.parametrize("settings, path, message", [
    ("group_norm: {groups: 3}", "layers[0].group_norm.groups",
     "groups 3 must divide the 4 channel(s) of its input (input); write a divisor of 4"),
    ("group_norm: {groups: 2, gamma: [1, 2, 3]}", "layers[0].group_norm.gamma",
     "group_norm1.gamma has shape 3 but its input needs 4; write that shape, or one number for every entry"),
    ("layer_norm: {beta: [1, 2]}", "layers[0].layer_norm.beta",
     "layer_norm1.beta has shape 2 but its input needs 4×2×2; write that shape, or one number for every entry"),
    ("layer_norm: {eps: 0}", "layers[0].layer_norm.eps", "eps must be positive (PyTorch's default is 1e-05), not 0"),
    ("group_norm", "layers[0]", "group_norm needs 'groups'"),
])
def test_spec_errors(tmp_path, settings, path, message):
    with pytest.raises(SpecError) as info:
        load_model(spec_path(tmp_path, "input: {random: {shape: [4, 2, 2]}}\nlayers:\n  - " + settings + "\n"))
    assert (info.value.path, info.value.message) == (path, message)

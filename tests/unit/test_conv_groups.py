"""Grouped and depthwise convolution (conv ``groups: G``) against PyTorch's ``F.conv2d(groups=G)``,
through the engine, the spec, the explanation and the checker's exact shortcuts."""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.gradcheck.check import check_model
from cnngrad.layers.conv import Conv
from cnngrad.spec import SpecError, load_model

torch = pytest.importorskip("torch")
F = torch.nn.functional

from helpers.layerchecks import assert_explains, assert_shortcuts_exact, assert_wrong_backward_blamed, spec_path  # noqa: E402
from helpers.torchnet import rel_err, torch_conv  # noqa: E402

RTOL = 1e-10


def draw(rng):
    """A random grouped conv: G groups of 1..3 channels and 1..3 filters each, any stride,
    dilation, padding form and mode; sometimes depthwise (one channel per group)."""
    groups = int(rng.integers(1, 5))
    per_group = 1 if rng.random() < 0.3 else int(rng.integers(1, 4))
    cfg = dict(groups=groups, channels=groups * per_group, filters=groups * int(rng.integers(1, 4)),
               kernel=(int(rng.integers(1, 4)), int(rng.integers(1, 4))),
               stride=[int(rng.integers(1, 3)), int(rng.integers(1, 3))],
               dilation=[int(rng.integers(1, 3)), int(rng.integers(1, 3))],
               padding=[[int(rng.integers(0, 3)), int(rng.integers(0, 3))],
                        [int(rng.integers(0, 3)), int(rng.integers(0, 3))]],
               mode=str(rng.choice(["cross_correlation", "convolution"])), untied=bool(rng.integers(0, 2)),
               batch=int(rng.integers(1, 3)))
    span = [cfg["dilation"][a] * (cfg["kernel"][a] - 1) + 1 for a in range(2)]
    cfg["height"], cfg["width"] = (int(rng.integers(span[a], span[a] + 5)) for a in range(2))
    return cfg


def layer_of(cfg):
    kh, kw = cfg["kernel"]
    return Conv((cfg["filters"], cfg["channels"] // cfg["groups"], kh, kw), stride=cfg["stride"],
                padding=cfg["padding"], dilation=cfg["dilation"], mode=cfg["mode"],
                untied_bias=cfg["untied"], groups=cfg["groups"])


def test_grouped_conv_matches_torch_forward_and_backward():
    rng = np.random.default_rng(2026)
    drawn = set()
    for _ in range(60):
        cfg = draw(rng)
        layer = layer_of(cfg)
        in_shape = (cfg["channels"], cfg["height"], cfg["width"])
        params = {name: rng.standard_normal(shape) for name, shape in layer.param_shapes(in_shape).items()}
        x = rng.standard_normal((cfg["batch"],) + in_shape)
        y, cache = layer.forward(x, params)
        dy = rng.standard_normal(y.shape)
        dx, grads = layer.backward(dy, cache, params)
        tx = torch.tensor(x, requires_grad=True)
        tp = {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}
        ty = torch_conv(cfg)(tx, tp)
        ty.backward(torch.from_numpy(dy))
        assert rel_err(y, ty.detach().numpy()) <= RTOL, cfg
        assert rel_err(dx, tx.grad.numpy()) <= RTOL, cfg
        for name in params:
            assert rel_err(grads[name], tp[name].grad.numpy()) <= RTOL, (name, cfg)
        drawn.add((cfg["groups"] > 1, cfg["channels"] == cfg["groups"]))
    assert drawn == {(False, False), (False, True), (True, False), (True, True)}


def test_checker_shortcuts_are_exact_with_groups():
    """input_change / output_change / channel_change read only a filter's own group."""
    rng = np.random.default_rng(5)
    for _ in range(12):
        cfg = draw(rng)
        layer = layer_of(cfg)
        in_shape = (cfg["channels"], cfg["height"], cfg["width"])
        params = {name: rng.standard_normal(shape) for name, shape in layer.param_shapes(in_shape).items()}
        assert_shortcuts_exact(layer, rng.standard_normal((1,) + in_shape), params)


DEPTHWISE = """\
    input: {random: {shape: [4, 5, 5], seed: 1}}
    layers:
      - conv: {kernel: {random: {shape: [8, 2, 3, 3], seed: 2}}, groups: 2, padding: 1, stride: 2}
      - tanh
      - conv: {kernel: {random: {shape: [8, 1, 2, 2], seed: 3}}, bias: 0.1, groups: 8}
      - flatten
    loss: squared_error
    target: {random: {shape: [32], seed: 4}}
    """


def test_grouped_spec_checks_and_explains(tmp_path):
    model = load_model(spec_path(tmp_path, DEPTHWISE))
    assert model.user_shapes["conv1.kernel"] == (8, 2, 3, 3)
    assert model.user_shapes["conv2"] == (8, 2, 2)
    assert check_model(model).passed
    assert_explains(model, ("grad.conv1.kernel[5,1,2,0]", "grad.input[3,2,1]", "grad.conv2.kernel[6,0,1,1]",
                            "grad.conv1[7,1,1]", "grad.input[0,0,0]"))


class GroupBlindConv(Conv):
    """A grouped conv whose input gradient takes every group's channels from group 0's deltas
    (the kernel gradient stays right): a plausible bug in a hand-written grouped backward."""

    def backward(self, dy, cache, params):
        dx, grads = super().backward(dy, cache, params)
        per_group = self.group_channels
        return np.concatenate([dx[:, :per_group]] * self.groups, axis=1), grads


def test_wrong_grouped_backward_is_caught_and_blamed(tmp_path):
    model = load_model(spec_path(tmp_path, DEPTHWISE))
    result = assert_wrong_backward_blamed(model, "conv2", GroupBlindConv)
    failed = {q.quantity for q in result.gradients if not q.passed}
    assert "conv1.kernel" in failed and "conv2.kernel" not in failed


@pytest.mark.parametrize("body, path, words", [
    ("kernel: {random: {shape: [3, 2, 3, 3]}}, groups: 2", "layers[0].conv.groups", ("groups 2 must divide", "3 filter")),
    ("kernel: {random: {shape: [4, 3, 3, 3]}}, groups: 2", "layers[0].conv.kernel",
     ("3 channel(s) per group × 2 groups = 6", "has 4")),
    ("kernel: {random: {shape: [4, 2, 3, 3]}}, groups: 0", "layers[0].conv.groups", ("groups",)),
])
def test_grouped_spec_errors(tmp_path, body, path, words):
    with pytest.raises(SpecError) as info:
        load_model(spec_path(tmp_path, "input: {random: {shape: [4, 5, 5]}}\nlayers:\n  - conv: {" + body + "}\n"))
    assert info.value.path == path, str(info.value)
    for word in words:
        assert word in info.value.message, str(info.value)


@pytest.mark.parametrize("mode", ["cross_correlation", "convolution"])
def test_checker_shortcuts_are_exact_with_an_untied_bias(mode):
    """channel_change of an untied bias entry (d, i, j): 1 at its one output, in channel d."""
    rng = np.random.default_rng(6)
    layer = Conv((3, 2, 3, 2), stride=(2, 1), padding=1, dilation=(1, 2), mode=mode, untied_bias=True)
    in_shape = (2, 6, 7)
    params = {name: rng.standard_normal(shape) for name, shape in layer.param_shapes(in_shape).items()}
    assert params["bias"].shape == layer.output_shape(in_shape)
    assert_shortcuts_exact(layer, rng.standard_normal((1,) + in_shape), params)

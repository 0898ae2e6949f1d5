"""Transposed convolution (``conv_transpose``) against PyTorch's ``F.conv_transpose2d`` and its
own plain-loop reference, through the spec, the explanation and the checker."""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.gradcheck.check import check_model
from cnngrad.layers.conv_transpose import ConvTranspose, reference_forward
from cnngrad.spec import SpecError, load_model

torch = pytest.importorskip("torch")
F = torch.nn.functional

from helpers.layerchecks import assert_explains, assert_shortcuts_exact, assert_wrong_backward_blamed, spec_path  # noqa: E402
from helpers.torchnet import rel_err  # noqa: E402

RTOL = 1e-10


def draw(rng):
    """A random transposed conv: channels, kernel, stride, padding, output_padding, dilation, batch."""
    stride = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
    dilation = [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
    kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    cfg = dict(channels=int(rng.integers(1, 4)), outputs=int(rng.integers(1, 4)), kernel=kernel, stride=stride,
               dilation=dilation, padding=[int(rng.integers(0, 3)), int(rng.integers(0, 3))],
               output_padding=[int(rng.integers(0, max(stride[a], dilation[a]))) for a in range(2)],
               height=int(rng.integers(1, 6)), width=int(rng.integers(1, 6)), batch=int(rng.integers(1, 3)))
    layer = ConvTranspose((cfg["channels"], cfg["outputs"]) + kernel, stride=stride, padding=cfg["padding"],
                          output_padding=cfg["output_padding"], dilation=dilation)
    in_shape = (cfg["channels"], cfg["height"], cfg["width"])
    full = layer.full_size(cfg["height"], cfg["width"])
    if min(full[a] - 2 * cfg["padding"][a] for a in range(2)) < 1:
        return draw(rng)            # padding crops everything (the spec refuses it; tested below)
    return cfg, layer, in_shape


def torch_conv_transpose(cfg):
    def run(x, p):
        return F.conv_transpose2d(x, p["kernel"], p["bias"], stride=tuple(cfg["stride"]),
                                  padding=tuple(cfg["padding"]), output_padding=tuple(cfg["output_padding"]),
                                  dilation=tuple(cfg["dilation"]))
    return run


def test_conv_transpose_matches_torch_forward_and_backward():
    rng = np.random.default_rng(31)
    overlapping = 0
    for _ in range(60):
        cfg, layer, in_shape = draw(rng)
        params = {name: rng.standard_normal(shape) for name, shape in layer.param_shapes(in_shape).items()}
        x = rng.standard_normal((cfg["batch"],) + in_shape)
        y, cache = layer.forward(x, params)
        assert y.shape[1:] == layer.output_shape(in_shape)
        dy = rng.standard_normal(y.shape)
        dx, grads = layer.backward(dy, cache, params)
        tx = torch.tensor(x, requires_grad=True)
        tp = {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}
        ty = torch_conv_transpose(cfg)(tx, tp)
        ty.backward(torch.from_numpy(dy))
        assert rel_err(y, ty.detach().numpy()) <= RTOL, cfg
        assert rel_err(dx, tx.grad.numpy()) <= RTOL, cfg
        for name in params:
            assert rel_err(grads[name], tp[name].grad.numpy()) <= RTOL, (name, cfg)
        overlapping += any(cfg["dilation"][a] * (cfg["kernel"][a] - 1) + 1 > cfg["stride"][a] for a in range(2))
    assert 10 < overlapping < 60     # both the strided write and the bincount scatter were drawn


def test_vectorized_scatter_equals_the_plain_loop_reference():
    rng = np.random.default_rng(32)
    for _ in range(40):
        cfg, layer, in_shape = draw(rng)
        params = {name: rng.standard_normal(shape) for name, shape in layer.param_shapes(in_shape).items()}
        x = rng.standard_normal((cfg["batch"],) + in_shape)
        np.testing.assert_allclose(layer.forward(x, params)[0], reference_forward(layer, x, params),
                                   rtol=1e-13, atol=1e-13)


def test_hand_example_stride_two():
    """x = [[1, 2]], K = [[1, 10]], stride 2: the stamps 1·[1, 10] and 2·[1, 10] side by side."""
    layer = ConvTranspose((1, 1, 1, 2), stride=2)
    y, _ = layer.forward(np.array([[[[1.0, 2.0]]]]), {"kernel": np.array([[[[1.0, 10.0]]]]), "bias": np.zeros(1)})
    assert y.tolist() == [[[[1.0, 10.0, 2.0, 20.0]]]]


def test_checker_shortcuts_are_exact():
    rng = np.random.default_rng(33)
    for _ in range(12):
        _, layer, in_shape = draw(rng)
        params = {name: rng.standard_normal(shape) for name, shape in layer.param_shapes(in_shape).items()}
        assert_shortcuts_exact(layer, rng.standard_normal((1,) + in_shape), params)


NET = """\
    input: {random: {shape: [2, 3, 3], seed: 1}}
    layers:
      - conv_transpose: {kernel: {random: {shape: [2, 3, 3, 3], seed: 2}}, bias: [0.1, 0.2, -0.1],
                         stride: 2, padding: 1, output_padding: 1}
      - tanh
      - conv_transpose: {kernel: {random: {shape: [3, 1, 2, 2], seed: 3}}, dilation: 2}
      - flatten
    loss: squared_error
    target: {random: {shape: [64], seed: 4}}
    """


def test_spec_builds_checks_and_explains(tmp_path):
    model = load_model(spec_path(tmp_path, NET))
    assert model.user_shapes["conv_transpose1"] == (3, 6, 6)
    assert model.user_shapes["conv_transpose2"] == (1, 8, 8)
    assert model.user_shapes["conv_transpose2.bias"] == (1,)
    assert check_model(model).passed
    assert_explains(model, ("grad.conv_transpose1.kernel[1,2,0,1]", "grad.conv_transpose1.bias[2]",
                            "grad.input[1,2,0]", "grad.conv_transpose1[0,5,5]", "grad.conv_transpose2.kernel[2,0,1,1]"))


class FlippedConvTranspose(ConvTranspose):
    """The input gradient read through the kernel unrotated in the wrong direction (a conv instead
    of its adjoint's correlation): right only for symmetric kernels."""

    def backward(self, dy, cache, params):
        flipped = {**params, "kernel": params["kernel"][..., ::-1, ::-1]}
        dx, _ = super().backward(dy, cache, flipped)
        return dx, super().backward(dy, cache, params)[1]


def test_wrong_backward_is_caught_and_blamed(tmp_path):
    model = load_model(spec_path(tmp_path, NET))
    result = assert_wrong_backward_blamed(model, "conv_transpose2", FlippedConvTranspose)
    failed = {q.quantity for q in result.gradients if not q.passed}
    assert "conv_transpose1.kernel" in failed and "conv_transpose2.kernel" not in failed


@pytest.mark.parametrize("settings, path, message", [
    ("kernel: [[1, 2], [3, 4]]", "layers[0].conv_transpose.kernel",
     "kernel must be 4-D (C_in, C_out, kh, kw), as PyTorch's conv_transpose2d weight, not 2×2"),
    ("kernel: {random: {shape: [2, 1, 2, 2]}}", "layers[0].conv_transpose.kernel",
     "the kernel has 2 input channel(s) (its first axis) but its input has 1 (input)"),
    ("kernel: {random: {shape: [1, 2, 2, 2]}}, bias: [1, 2, 3]", "layers[0].conv_transpose.bias",
     "conv_transpose1.bias has shape 3 but conv_transpose1.kernel has 2 output channel(s) (its second axis): "
     "write 2 values, or one number"),
    ("kernel: {random: {shape: [1, 1, 2, 2]}}, stride: 2, output_padding: 2", "layers[0].conv_transpose.output_padding",
     "output_padding 2 must be less than the stride or the dilation (2) on its axis, as in PyTorch"),
    ("kernel: {random: {shape: [1, 1, 1, 1]}}, padding: 2", "layers[0].conv_transpose.padding",
     "padding 2×2 crops the whole 3×3 output of its input (input); write a smaller padding"),
])
def test_spec_errors(tmp_path, settings, path, message):
    with pytest.raises(SpecError) as info:
        load_model(spec_path(tmp_path, "input: [[1, 2, 3], [4, 5, 6], [7, 8, 9]]\nlayers:\n"
                                       "  - conv_transpose: {" + settings + "}\n"))
    assert (info.value.path, info.value.message) == (path, message)


def test_scalar_and_omitted_bias(tmp_path):
    for bias, value in (("", 0.0), (", bias: 0.25", 0.25)):
        model = load_model(spec_path(tmp_path, "input: [[1, 2], [3, 4]]\nlayers:\n  - conv_transpose: "
                                               "{kernel: {random: {shape: [1, 3, 2, 2]}}" + bias + "}\n"))
        assert model.params["conv_transpose1.bias"].tolist() == [value] * 3
        assert model.user_shapes["conv_transpose1"] == (3, 3, 3)

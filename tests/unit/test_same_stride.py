"""``padding: same`` at a stride above 1 (conv and pool): ⌈H/s⌉ outputs, TensorFlow's and ONNX's
rule — a total of max((⌈H/s⌉ − 1)·s + k_eff − H, 0), the extra row/column at the bottom/right —
against PyTorch given that padding explicitly through F.pad."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cnngrad.layers.base import resolve_padding
from cnngrad.layers.conv import Conv
from cnngrad.layers.pooling import Pool
from cnngrad.spec import load_model

torch = pytest.importorskip("torch")
F = torch.nn.functional

from helpers.layerchecks import spec_path  # noqa: E402
from helpers.torchnet import rel_err  # noqa: E402


def tf_same(size: int, k_eff: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding of one axis, written from its documentation."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2


def test_conv_same_at_any_stride_matches_torch_with_explicit_padding():
    rng = np.random.default_rng(41)
    for _ in range(60):
        channels, filters = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        kh, kw, sh, sw, dh, dw = (int(v) for v in rng.integers(1, 4, size=6))
        height, width = (int(v) for v in rng.integers(1, 9, size=2))
        pads = (tf_same(height, dh * (kh - 1) + 1, sh), tf_same(width, dw * (kw - 1) + 1, sw))
        layer = Conv((filters, channels, kh, kw), stride=(sh, sw), dilation=(dh, dw),
                     padding=resolve_padding("same", (dh * (kh - 1) + 1, dw * (kw - 1) + 1), (sh, sw), (height, width)))
        x = rng.standard_normal((2, channels, height, width))
        params = {"kernel": rng.standard_normal((filters, channels, kh, kw)), "bias": rng.standard_normal(filters)}
        y, cache = layer.forward(x, params)
        assert y.shape[2:] == (math.ceil(height / sh), math.ceil(width / sw))
        dy = rng.standard_normal(y.shape)
        dx, grads = layer.backward(dy, cache, params)
        tx = torch.tensor(x, requires_grad=True)
        tk = torch.tensor(params["kernel"], requires_grad=True)
        padded = F.pad(tx, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
        ty = F.conv2d(padded, tk, torch.tensor(params["bias"]), stride=(sh, sw), dilation=(dh, dw))
        ty.backward(torch.from_numpy(dy))
        assert rel_err(y, ty.detach().numpy()) <= 1e-10
        assert rel_err(dx, tx.grad.numpy()) <= 1e-10
        assert rel_err(grads["kernel"], tk.grad.numpy()) <= 1e-10


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_same_at_any_stride_matches_torch_with_explicit_padding(kind):
    rng = np.random.default_rng(42 + len(kind))
    fill = float("-inf") if kind == "max" else 0.0
    for _ in range(40):
        kh, kw, sh, sw = (int(v) for v in rng.integers(1, 4, size=4))
        height, width = (int(v) for v in rng.integers(1, 9, size=2))
        pads = (tf_same(height, kh, sh), tf_same(width, kw, sw))
        layer = Pool(kind, (kh, kw), (sh, sw), resolve_padding("same", (kh, kw), (sh, sw), (height, width)))
        x = rng.standard_normal((1, 2, height, width))
        y, cache = layer.forward(x, {})
        dy = rng.standard_normal(y.shape)
        dx, _ = layer.backward(dy, cache, {})
        tx = torch.tensor(x, requires_grad=True)
        padded = F.pad(tx, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]), value=fill)
        pool = F.max_pool2d if kind == "max" else F.avg_pool2d
        ty = pool(padded, (kh, kw), (sh, sw))
        ty.backward(torch.from_numpy(dy))
        assert rel_err(y, ty.detach().numpy()) <= 1e-10
        assert rel_err(dx, tx.grad.numpy()) <= 1e-10


def test_same_at_stride_two_in_a_spec(tmp_path):
    """5×5 at stride 2 with a 3×3 kernel: 3×3 outputs, one row/column of padding on each side;
    6×6 at stride 2: 3×3 outputs, the one row/column of padding at the bottom/right."""
    for size, padding in ((5, ((1, 1), (1, 1))), (6, ((0, 1), (0, 1)))):
        model = load_model(spec_path(tmp_path, f"input: {{random: {{shape: [{size}, {size}]}}}}\nlayers:\n"
                                               "  - conv: {kernel: {random: {shape: [3, 3]}}, padding: same, stride: 2}\n"
                                               "  - pool: {size: 2, padding: same}\n"))
        conv, pool = model.network.layers
        assert model.user_shapes["conv1"] == (3, 3) and conv.padding == padding
        assert model.user_shapes["pool1"] == (2, 2) and pool.padding == ((0, 1), (0, 1))


def test_onnx_same_upper_at_stride_two(tmp_path):
    """ONNX's test_averagepool_2d_precomputed_same_upper (kernel 3, strides 2, auto_pad SAME_UPPER,
    count_include_pad 0, on 1..25) gives [[4, 5.5, 7], [11.5, 13, 14.5], [19, 20.5, 22]]; written
    with ``padding: same`` it is the same layer as configs/onnx_averagepool_2d_same_upper.yaml's."""
    np.save(tmp_path / "x.npy", np.arange(1.0, 26.0).reshape(5, 5))
    model = load_model(spec_path(tmp_path, "input: {file: x.npy}\nlayers:\n  - pool: {type: avg, size: 3, "
                                           "stride: 2, padding: same, count_include_pad: false}\n"))
    assert model.network.layers[0].padding == ((1, 1), (1, 1))
    np.testing.assert_allclose(model.forward().outputs[0][0, 0],
                               [[4, 5.5, 7], [11.5, 13, 14.5], [19, 20.5, 22]], rtol=1e-15)

"""The engine against numbers derived by hand from the seed examples (no PyTorch needed).

Every expected value below is written out with its derivation, so a reader can redo it on paper.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.layers.activations import Sigmoid
from cnngrad.layers.conv import Conv
from cnngrad.layers.fc import FC
from cnngrad.layers.pooling import Pool
from cnngrad.losses import LOSSES
from cnngrad.network import Network

# Seed 001: the 5×5 input map o of a 2×2 conv, and the delta map d (= ∂E/∂conv output, 4×4) as the
# answer printed it, to 4 decimals.
O = np.array([[0.51, 0.90, 0.88, 0.84, 0.05],
              [0.40, 0.62, 0.22, 0.59, 0.10],
              [0.11, 0.20, 0.74, 0.33, 0.14],
              [0.47, 0.01, 0.85, 0.70, 0.09],
              [0.76, 0.19, 0.72, 0.17, 0.57]])
D = np.array([[0, 0, 0.0686, 0],
              [0, 0.0364, 0, 0],
              [0, 0.0467, 0, 0],
              [0, 0, 0, -0.0681]])
KERNEL = np.array([[-0.13, 0.15], [0.24, 0.12]])  # any kernel: ∂E/∂K does not depend on it


def as_map(a):
    return a[None, None]  # (H, W) -> (B=1, C=1, H, W)


def conv_backward(kernel, x, dy, **options):
    layer = Conv((1, 1) + kernel.shape, **options)
    params = {"kernel": kernel[None, None], "bias": np.zeros(1)}
    y, cache = layer.forward(as_map(x), params)
    dx, grads = layer.backward(as_map(dy), cache, params)
    return y[0, 0], dx[0, 0], grads


def test_seed001_kernel_gradient():
    # ∂E/∂K[m, n] = Σ_ij d[i, j] · o[i + m, j + n]; only four deltas are non-zero, at (0,2), (1,1),
    # (2,1), (3,3), so each kernel entry is a sum of four products:
    # [0,0]: .0686·o[0,2] + .0364·o[1,1] + .0467·o[2,1] − .0681·o[3,3]
    #      = .0686·.88 + .0364·.62 + .0467·.20 − .0681·.70 = .060368 + .022568 + .00934 − .04767 = .044606
    # [0,1]: .0686·.84 + .0364·.22 + .0467·.74 − .0681·.09 = .057624 + .008008 + .034558 − .006129 = .094061
    # [1,0]: .0686·.22 + .0364·.20 + .0467·.01 − .0681·.17 = .015092 + .00728 + .000467 − .011577 = .011262
    # [1,1]: .0686·.59 + .0364·.74 + .0467·.85 − .0681·.57 = .040474 + .026936 + .039695 − .038817 = .068288
    _, _, grads = conv_backward(KERNEL, O, D)
    np.testing.assert_allclose(grads["kernel"][0, 0], [[0.044606, 0.094061], [0.011262, 0.068288]],
                               rtol=0, atol=1e-12)
    # ∂E/∂b = Σ_ij d[i, j] = .0686 + .0364 + .0467 − .0681 = .0836
    np.testing.assert_allclose(grads["bias"], [0.0836], rtol=0, atol=1e-12)


def test_seed001_kernel_gradient_with_exact_deltas():
    # The same sums with the untruncated deltas (0.068628, 0.0364182, 0.04675125, −0.06818625):
    # [0,0]: .068628·.88 + .0364182·.62 + .04675125·.20 − .06818625·.70
    #      = .06039264 + .022579284 + .00935025 − .047730375 = .044591799
    d = np.zeros((4, 4))
    d[0, 2], d[1, 1], d[2, 1], d[3, 3] = 0.068628, 0.0364182, 0.04675125, -0.06818625
    _, _, grads = conv_backward(KERNEL, O, d)
    np.testing.assert_allclose(grads["kernel"][0, 0],
                               [[0.044591799, 0.0941186865], [0.01125765, 0.068312388]],
                               rtol=0, atol=1e-12)


def test_seed001_fc_sigmoid_deltas():
    # Four sigmoid units with outputs s = (.58, .57, .65, .55) feed an fc layer W (2×4); the upstream
    # gradient at the fc output is g = (.25, −.15). Then δ = s(1 − s) ⊙ (Wᵀ g):
    # Wᵀ g = (.61·.25 + .02·(−.15), .82·.25 − .50·(−.15), .96·.25 + .23·(−.15), −1·.25 + .17·(−.15))
    #      = (.1495, .28, .2055, −.2755)
    # s(1 − s) = (.2436, .2451, .2275, .2475)
    # δ = (.0364182, .068628, .04675125, −.06818625)
    s = np.array([0.58, 0.57, 0.65, 0.55])
    weights = np.array([[0.61, 0.82, 0.96, -1.00], [0.02, -0.50, 0.23, 0.17]])
    net = Network((4,), [("sigmoid1", Sigmoid()), ("fc1", FC(weights.shape))], LOSSES["none"]())
    params = {"fc1.weights": weights, "fc1.bias": np.zeros(2)}
    logits = np.log(s / (1 - s))[None]  # the sigmoid's input, so its output is exactly s
    trace = net.forward(logits, params)
    np.testing.assert_allclose(trace.outputs[0][0], s, rtol=0, atol=1e-15)
    grads = net.backward(trace, params, np.array([[0.25, -0.15]]))
    np.testing.assert_allclose(grads.input[0], [0.0364182, 0.068628, 0.04675125, -0.06818625],
                               rtol=0, atol=1e-15)
    # ∂E/∂W = g sᵀ, e.g. [0, 0] = .25·.58 = .145, [1, 3] = −.15·.55 = −.0825
    np.testing.assert_allclose(grads.params["fc1.weights"], np.outer([0.25, -0.15], s),
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(grads.outputs["sigmoid1"][0], [0.1495, 0.28, 0.2055, -0.2755],
                               rtol=0, atol=1e-15)


M16 = np.arange(1.0, 17.0).reshape(4, 4)  # seed 000: the 4×4 matrix 1..16


def test_seed000_max_pool_3x3_stride1():
    # Windows of a 3×3 pool with stride 1 on a 4×4 map start at rows/cols 0 and 1; each window's
    # maximum is its bottom-right corner: (2,2)=11, (2,3)=12, (3,2)=15, (3,3)=16.
    # Upstream ones send 1 to each of those four positions and nothing elsewhere.
    layer = Pool("max", size=3, stride=1)
    y, cache = layer.forward(as_map(M16), {})
    np.testing.assert_array_equal(y[0, 0], [[11, 12], [15, 16]])
    dx, _ = layer.backward(np.ones_like(y), cache, {})
    np.testing.assert_array_equal(dx[0, 0], [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]])


@pytest.mark.parametrize("size, stride", [((2, 2), (2, 2)), ((3, 3), (1, 1)), ((2, 3), (1, 2))])
def test_max_pool_takes_the_first_maximum_like_argmax(size, stride):
    """Max pooling's winner is numpy's argmax over the row-major window, its value the entry there
    (zero's sign too), on maps full of ties: few distinct values, ±0, −∞ padding."""
    rng = np.random.default_rng(7)
    x = rng.choice([-2.0, -0.0, 0.0, 1.0, 1.0, 3.0], size=(5, 3, 9, 8))
    layer = Pool("max", size=size, stride=stride, padding=1)
    y, cache = layer.forward(x, {})
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(padded, size, axis=(2, 3))[:, :, ::stride[0], ::stride[1]]
    rows = win.reshape(win.shape[:4] + (-1,))
    first = rows.argmax(axis=-1)
    expected = np.take_along_axis(rows, first[..., None], axis=-1)[..., 0]
    np.testing.assert_array_equal(layer.pattern(cache), first)
    np.testing.assert_array_equal(y, expected)
    assert np.array_equal(np.signbit(y), np.signbit(expected))


def test_seed000_avg_pool_gives_each_entry_one_over_n():
    # A 2×2 average pool with stride 2: y = (Σ window) / 4, e.g. (1 + 2 + 5 + 6) / 4 = 3.5, and
    # ∂y/∂x = 1/N = 1/4 for every entry of its (non-overlapping) window.
    layer = Pool("avg", size=2)
    y, cache = layer.forward(as_map(M16), {})
    np.testing.assert_array_equal(y[0, 0], [[3.5, 5.5], [11.5, 13.5]])
    dx, _ = layer.backward(np.ones_like(y), cache, {})
    np.testing.assert_array_equal(dx[0, 0], np.full((4, 4), 0.25))
    # 3×3 window, stride 1: N = 9, entry (1,1) sits in all four windows → 4/9; corner (0,0) in one.
    layer = Pool("avg", size=3, stride=1)
    y, cache = layer.forward(as_map(M16), {})
    np.testing.assert_allclose(y[0, 0], [[6, 7], [10, 11]], rtol=0, atol=1e-14)  # centres
    dx, _ = layer.backward(np.ones_like(y), cache, {})
    counts = np.array([[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])
    np.testing.assert_allclose(dx[0, 0], counts / 9, rtol=0, atol=1e-15)


def test_conv_bias_gradient_is_the_sum_of_deltas():
    # y[d, i, j] = … + b[d], so ∂E/∂b[d] = Σ_ij δ[d, i, j] (per filter), summed over the batch too.
    rng = np.random.default_rng(0)
    layer = Conv((3, 2, 2, 2))
    params = {"kernel": rng.standard_normal((3, 2, 2, 2)), "bias": rng.standard_normal(3)}
    _, cache = layer.forward(rng.standard_normal((2, 2, 5, 4)), params)
    dy = rng.standard_normal((2, 3, 4, 3))
    _, grads = layer.backward(dy, cache, params)
    np.testing.assert_allclose(grads["bias"], [dy[:, d].sum() for d in range(3)], rtol=1e-14)
    # untied bias b[d, i, j]: each entry moves one output, so its gradient is that delta (batch-summed)
    untied = Conv((3, 2, 2, 2), untied_bias=True)
    params["bias"] = rng.standard_normal((3, 4, 3))
    _, cache = untied.forward(rng.standard_normal((2, 2, 5, 4)), params)
    _, grads = untied.backward(dy, cache, params)
    np.testing.assert_allclose(grads["bias"], dy[0] + dy[1], rtol=0, atol=1e-15)


def test_convolution_mode_is_correlation_with_the_rotated_kernel():
    # Textbook convolution y[i, j] = Σ K[m, n] x[i − m + kh − 1, j − n + kw − 1] on the valid part is
    # correlation with rot180(K). Hand check on a 3×3 input and K = [[1, 2], [3, 4]]:
    # rot180(K) = [[4, 3], [2, 1]]; x = [[1,2,3],[4,5,6],[7,8,9]]
    # y[0,0] = 4·1 + 3·2 + 2·4 + 1·5 = 23;  y[0,1] = 4·2 + 3·3 + 2·5 + 1·6 = 33
    # y[1,0] = 4·4 + 3·5 + 2·7 + 1·8 = 53;  y[1,1] = 4·5 + 3·6 + 2·8 + 1·9 = 63
    x = np.arange(1.0, 10.0).reshape(3, 3)
    kernel = np.array([[1.0, 2.0], [3.0, 4.0]])
    y, _, _ = conv_backward(kernel, x, np.zeros((2, 2)), mode="convolution")
    np.testing.assert_array_equal(y, [[23, 33], [53, 63]])
    y_cc, _, _ = conv_backward(kernel[::-1, ::-1], x, np.zeros((2, 2)))
    np.testing.assert_array_equal(y, y_cc)
    # Its kernel gradient is the rotated correlation gradient: with K' = rot180(K), ∂E/∂K = rot180(∂E/∂K').
    # With seed 001's o and d: rot180([[.044606, .094061], [.011262, .068288]]).
    _, dx_conv, grads = conv_backward(KERNEL, O, D, mode="convolution")
    np.testing.assert_allclose(grads["kernel"][0, 0], [[0.068288, 0.011262], [0.094061, 0.044606]],
                               rtol=0, atol=1e-12)
    _, dx_cc, _ = conv_backward(KERNEL[::-1, ::-1], O, D)
    np.testing.assert_allclose(dx_conv, dx_cc, rtol=0, atol=1e-15)


def test_conv_input_gradient_is_a_full_convolution():
    # Stride 1: ∂E/∂x[p, q] = Σ_mn δ[p − m, q − n] K[m, n]. With a single delta of 1 at (0, 0) the
    # input gradient is the kernel itself placed at the top-left corner; at (1, 2) it is shifted.
    d = np.zeros((4, 4))
    d[1, 2] = 1.0
    _, dx, _ = conv_backward(KERNEL, O, d)
    expected = np.zeros((5, 5))
    expected[1:3, 2:4] = KERNEL
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("padding", [0, 1, [[0, 2], [1, 0]]])
def test_padding_is_cropped_back_exactly(padding):
    # A zero pad must not crop anything (the x[p:-p] pitfall): the input gradient of a 1×1 conv with
    # kernel 2 is 2·δ on the input's positions, whatever the padding, and has the input's shape.
    layer = Conv((1, 1, 1, 1), padding=padding)
    params = {"kernel": np.full((1, 1, 1, 1), 2.0), "bias": np.zeros(1)}
    y, cache = layer.forward(as_map(O), params)
    dy = np.ones_like(y)
    dx, _ = layer.backward(dy, cache, params)
    np.testing.assert_array_equal(dx[0, 0], np.full((5, 5), 2.0))


def loop_scatter(dwin, padded_shape, stride, dilation):
    """The plain adjoint of ``windows``: one strided slice per kernel offset (m, n), in that order."""
    _, _, out_h, out_w, kh, kw = dwin.shape
    (sh, sw), (dh, dw) = stride, dilation
    out = np.zeros(padded_shape)
    for m in range(kh):
        for n in range(kw):
            out[:, :, m * dh:m * dh + sh * (out_h - 1) + 1:sh,
                n * dw:n * dw + sw * (out_w - 1) + 1:sw] += dwin[:, :, :, :, m, n]
    return out


def test_scatter_windows_is_the_adjoint_of_windows_bit_for_bit():
    # scatter_windows is the engine's fast adjoint (one strided view or one bincount). It must give
    # the same bits as the slice-by-slice loop, and satisfy ⟨windows(x), w⟩ = ⟨x, scatter(w)⟩.
    from cnngrad.layers.base import scatter_windows, windows
    rng = np.random.default_rng(4)
    for _ in range(200):
        size = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        stride = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        dilation = (1, 1) if rng.integers(0, 2) else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        span = [dilation[k] * (size[k] - 1) + 1 for k in (0, 1)]
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 3)),
                 span[0] + int(rng.integers(0, 7)), span[1] + int(rng.integers(0, 7)))
        x = rng.standard_normal(shape)
        win = windows(x, size, stride, dilation)
        w = rng.standard_normal(win.shape)
        scattered = scatter_windows(w, shape, stride, dilation)
        assert np.array_equal(scattered, loop_scatter(w, shape, stride, dilation))
        assert np.sum(win * w) == pytest.approx(np.sum(x * scattered), rel=1e-12)


def loop_unread(size, before, taps, dilation, stride, count):
    """The plain reference of ``base.unread``: mark what each window reads, one window at a time."""
    read = np.zeros(size, dtype=bool)
    for i in range(count):
        for m in range(taps):
            position = i * stride + dilation * m - before
            if 0 <= position < size:
                read[position] = True
    return np.flatnonzero(~read)


def test_unread_difference_array_equals_the_window_loop():
    # unread sums window coverage as a difference array (np.add.at, no loop over windows); it must
    # name exactly the entries the loop over windows leaves unread
    from cnngrad.layers.base import unread, window_output_size
    rng = np.random.default_rng(11)
    for _ in range(300):
        taps, dilation, stride = (int(rng.integers(1, 5)) for _ in range(3))
        before, after = int(rng.integers(0, 4)), int(rng.integers(0, 4))
        size = dilation * (taps - 1) + int(rng.integers(1, 12))
        count = window_output_size(size + before + after, dilation * (taps - 1) + 1, stride)
        assert np.array_equal(unread(size, before, taps, dilation, stride, count),
                              loop_unread(size, before, taps, dilation, stride, count))


def test_conv_columns_are_the_windows_in_one_layout():
    # Conv.columns reads base.windows (B, C, Ho, Wo, kh, kw); row (c, m, n), column (b, i, j) must
    # hold x[b, c, s·i + r·m, s·j + r·n], as a loop over positions reads it
    rng = np.random.default_rng(12)
    for _ in range(50):
        kh, kw, sh, sw, dh, dw = (int(v) for v in rng.integers(1, 4, 6))
        batch, channels = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        x = rng.standard_normal((batch, channels, dh * (kh - 1) + 1 + int(rng.integers(0, 5)),
                                 dw * (kw - 1) + 1 + int(rng.integers(0, 5))))
        layer = Conv((1, channels, kh, kw), stride=(sh, sw), dilation=(dh, dw))
        cols, (out_h, out_w) = layer.columns(x)
        expected = np.array([[x[b, c, sh * i + dh * m, sw * j + dw * n]
                              for b in range(batch) for i in range(out_h) for j in range(out_w)]
                             for c in range(channels) for m in range(kh) for n in range(kw)])
        assert np.array_equal(cols, expected)

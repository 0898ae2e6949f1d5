"""The fast forwards of conv and max pooling (issue 18) against plain references.

Conv: one matrix product per example over chunks of im2col columns, against a loop over output
positions (a different order of the same sums: within 1e-12 of the terms' size), and bit for bit
the same whatever the batch and chunking. Max pooling: a strided slice per tap, against argmax
over copied windows (values, sign of zero and NaN bits included, and winners), on inputs full of
ties, signed zeros, infinities and NaNs.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.layers import conv as conv_module
from cnngrad.layers.base import SLICED_TAPS, pad_map, window_max, windows
from cnngrad.layers.conv import Conv
from cnngrad.layers.pooling import Pool


def random_conv(rng):
    """A conv with random groups, kernel, stride, dilation, padding, mode and bias kind, and an
    input it fits."""
    groups = int(rng.integers(1, 4))
    group_channels, group_filters = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    kernel = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = ((int(rng.integers(0, 3)), int(rng.integers(0, 3))), (int(rng.integers(0, 3)), int(rng.integers(0, 3))))
    layer = Conv((groups * group_filters, group_channels) + kernel, stride=(int(rng.integers(1, 4)), int(rng.integers(1, 4))),
                 padding=padding, dilation=dilation, mode=str(rng.choice(["cross_correlation", "convolution"])),
                 untied_bias=bool(rng.integers(0, 2)), groups=groups)
    span = layer.span
    in_shape = (groups * group_channels, int(rng.integers(max(1, span[0] - 2), span[0] + 7)),
                int(rng.integers(max(1, span[1] - 2), span[1] + 7)))
    padded = (in_shape[1] + sum(padding[0]), in_shape[2] + sum(padding[1]))
    if padded[0] < span[0] or padded[1] < span[1]:
        return random_conv(rng)
    return layer, in_shape


def reference_conv(layer: Conv, x: np.ndarray, params) -> np.ndarray:
    """y[b, d, i, j] = Σ_{c', m, n} K[d, c', m, n] · x[b, g·C/G + c', s·i + r·m, s·j + r·n] + bias,
    filter d in group g, K rotated 180° in convolution mode: a loop over output positions."""
    (top, bottom), (left, right) = layer.padding
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    kernel = params["kernel"][..., ::-1, ::-1] if layer.mode == "convolution" else params["kernel"]
    (kh, kw), (sh, sw), (dh, dw) = layer.size, layer.stride, layer.dilation
    _, out_h, out_w = layer.output_shape(x.shape[1:])
    per_filters, per_channels = layer.filters // layer.groups, layer.group_channels
    y = np.zeros((len(x), layer.filters, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, :, sh * i + dh * np.arange(kh)[:, None], sw * j + dw * np.arange(kw)[None, :]]
            for g in range(layer.groups):
                filters, channels = slice(g * per_filters, (g + 1) * per_filters), slice(g * per_channels, (g + 1) * per_channels)
                y[:, filters, i, j] = np.einsum("bcmn,dcmn->bd", window[:, channels], kernel[filters])
    bias = params["bias"]
    return y + (bias if layer.untied_bias else bias[:, None, None])


@pytest.mark.parametrize("chunk", [conv_module.COLUMN_CHUNK, 40])
def test_conv_forward_agrees_with_a_loop_over_output_positions(monkeypatch, chunk):
    monkeypatch.setattr(conv_module, "COLUMN_CHUNK", chunk)    # 40 floats: a chunk of one example
    rng = np.random.default_rng(18)
    for _ in range(150):
        layer, in_shape = random_conv(rng)
        params = {name: rng.standard_normal(shape) for name, shape in layer.param_shapes(in_shape).items()}
        x = rng.standard_normal((int(rng.integers(1, 7)),) + in_shape)
        y = layer.forward(x, params)[0]
        expected = reference_conv(layer, x, params)
        size = reference_conv(layer, np.abs(x), {name: np.abs(value) for name, value in params.items()})
        assert y.shape == expected.shape and y.flags.c_contiguous
        assert np.all(np.abs(y - expected) <= 1e-12 * size), (layer.__dict__, np.abs(y - expected).max())


def test_a_conv_gives_each_example_the_bits_it_gives_alone(monkeypatch):
    """A perturbed copy in a batch of hundreds rounds as its example run alone (the checker's
    unperturbed run): the same product per example, however the batch is chunked."""
    rng = np.random.default_rng(6)
    for _ in range(60):
        layer, in_shape = random_conv(rng)
        params = {name: rng.standard_normal(shape) for name, shape in layer.param_shapes(in_shape).items()}
        x = rng.standard_normal((int(rng.integers(2, 40)),) + in_shape)
        alone = np.concatenate([layer.forward(x[k:k + 1], params)[0] for k in range(len(x))])
        for chunk in (conv_module.COLUMN_CHUNK, 40, 10**9):
            monkeypatch.setattr(conv_module, "COLUMN_CHUNK", chunk)
            assert np.array_equal(layer.forward(x, params)[0], alone)


def test_lenet5_conv2_batch_is_bit_for_bit_its_examples():
    """LeNet-5's second conv (6@14×14 → 16@10×10) on 300 copies: several chunks, each example's bits."""
    rng = np.random.default_rng(5)
    layer = Conv((16, 6, 5, 5))
    params = {"kernel": rng.standard_normal((16, 6, 5, 5)), "bias": rng.standard_normal(16)}
    x = rng.standard_normal((300, 6, 14, 14))
    y = layer.forward(x, params)[0]
    assert np.array_equal(y[[0, 137, 299]], np.concatenate([layer.forward(x[[k]], params)[0] for k in (0, 137, 299)]))
    assert np.all(np.abs(y - reference_conv(layer, x, params)) <= 1e-12 * reference_conv(
        layer, np.abs(x), {k: np.abs(v) for k, v in params.items()}))


def argmax_max(win: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plain max pool: copy every window, argmax (first maximum; first NaN), the value there."""
    flat = win.reshape(win.shape[:4] + (-1,))
    first = flat.argmax(axis=-1)
    return np.take_along_axis(flat, first[..., None], axis=-1)[..., 0], first


TIED = np.array([-0.0, 0.0, 1.0, -1.0, 2.0, np.inf, -np.inf, np.nan, 0.5])


def tied_input(rng, shape) -> np.ndarray:
    """Mostly values from a few of ``TIED`` (ties, signed zeros, infinities, NaNs); sometimes normal."""
    if rng.random() < 0.2:
        return rng.standard_normal(shape)
    return rng.choice(TIED[rng.permutation(len(TIED))[:int(rng.integers(2, 6))]], size=shape)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


def test_window_max_gives_argmaxs_values_and_winners():
    rng = np.random.default_rng(181)
    sliced = larger = 0
    for _ in range(1500):
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(3, 10)), int(rng.integers(3, 10)))
        size = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        if any((k - 1) * r + 1 > n for k, r, n in zip(size, dilation, shape[2:])):
            continue
        win = windows(tied_input(rng, shape), size, (int(rng.integers(1, 4)), int(rng.integers(1, 4))), dilation)
        y, first = window_max(win)
        expected, winners = argmax_max(win)
        assert same_bits(y, expected) and np.array_equal(first, winners) and first.dtype == winners.dtype
        sliced, larger = sliced + (size[0] * size[1] <= SLICED_TAPS), larger + (size[0] * size[1] > SLICED_TAPS)
    assert sliced > 500 and larger > 100


def test_a_negative_zero_after_a_positive_one_keeps_the_first_sign():
    x = np.array([[[[0.0, -0.0], [-0.0, 0.0]], [[-0.0, 0.0], [0.0, -0.0]], [[-1.0, np.nan], [np.nan, 3.0]]]])
    y, first = window_max(windows(x, (2, 2), (2, 2)))
    assert same_bits(y[0, :, 0, 0], np.array([0.0, -0.0, np.nan])) and first[0, :, 0, 0].tolist() == [0, 0, 1]


def test_max_pool_forward_gives_the_plain_values_and_winners():
    """Through the layer: −∞ padding, ceil_mode's overhang, strides, dilation, both tie rules."""
    rng = np.random.default_rng(1818)
    for _ in range(300):
        size = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        layer = Pool("max", size, (int(rng.integers(1, 4)), int(rng.integers(1, 4))),
                     (int(rng.integers(0, size[0] // 2 + 1)), int(rng.integers(0, size[1] // 2 + 1))),
                     str(rng.choice(["first", "split"])), (int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                     ceil_mode=bool(rng.integers(0, 2)))
        in_shape = (int(rng.integers(1, 3)), int(rng.integers(4, 10)), int(rng.integers(4, 10)))
        try:
            layer.output_shape(in_shape)
        except ValueError:
            continue
        x = tied_input(rng, (int(rng.integers(1, 4)),) + in_shape)
        y, cache = layer.forward(x, {})
        padded = pad_map(x, layer.extended_padding(in_shape[1:]), -np.inf)
        expected, winners = argmax_max(windows(padded, layer.size, layer.stride, layer.dilation))
        assert same_bits(y, expected) and np.array_equal(layer.pattern(cache), winners)

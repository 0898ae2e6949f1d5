"""Convolution layer: D filters over C channels, with stride, padding, dilation and both modes.

Cross-correlation (what deep-learning libraries compute):
    y[d, i, j] = Σ_c Σ_m Σ_n K[d, c, m, n] · x[c, s·i + r·m, s·j + r·n] + b[d]   (s stride, r dilation)
Convolution (the textbook definition) is the same with the kernel rotated 180°.
Backward: ∂E/∂K is the correlation of the input with the deltas, ∂E/∂b the sum of the deltas,
∂E/∂x the deltas scattered back through the kernel (a full convolution when stride is 1).
"""
from __future__ import annotations

import numpy as np

from .base import (Layer, ShapeError, crop_map, pad_map, pair, register, resolve_padding,
                   scatter_windows, window_output_size, windows)

MODES = ("cross_correlation", "convolution")


@register
class Conv(Layer):
    kind = "conv"
    param_names = ("kernel", "bias")

    def __init__(self, kernel_shape, stride=1, padding=0, dilation=1,
                 mode="cross_correlation", untied_bias=False):
        self.filters, self.channels, kh, kw = kernel_shape
        self.size = (kh, kw)
        self.stride = pair(stride)
        self.dilation = pair(dilation)
        span = (self.dilation[0] * (kh - 1) + 1, self.dilation[1] * (kw - 1) + 1)
        self.padding = resolve_padding(padding, span)
        self.span = span
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.untied_bias = untied_bias

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise ShapeError(f"conv needs a map, but its input is a vector of {in_shape[0]} values")
        channels, height, width = in_shape
        if channels != self.channels:
            raise ShapeError(f"the kernel has {self.channels} channel(s) but its input has {channels}")
        (top, bottom), (left, right) = self.padding
        padded = (height + top + bottom, width + left + right)
        if self.span[0] > padded[0] or self.span[1] > padded[1]:
            raise ShapeError(f"the kernel window {self.span[0]}×{self.span[1]} is larger than its "
                             f"padded input {padded[0]}×{padded[1]}")
        return (self.filters,
                window_output_size(padded[0], self.span[0], self.stride[0]),
                window_output_size(padded[1], self.span[1], self.stride[1]))

    def param_shapes(self, in_shape):
        out = self.output_shape(in_shape)
        bias = out if self.untied_bias else (self.filters,)
        return {"kernel": (self.filters, self.channels) + self.size, "bias": bias}

    def work_size(self, in_shape):
        """The input windows dominate: C·kh·kw values for every output position."""
        _, out_h, out_w = self.output_shape(in_shape)
        return super().work_size(in_shape) + self.channels * self.size[0] * self.size[1] * out_h * out_w

    def effective_kernel(self, kernel):
        """The kernel that is correlated with the input: rotated 180° in convolution mode."""
        return kernel[..., ::-1, ::-1] if self.mode == "convolution" else kernel

    def columns(self, padded):
        """im2col: every window of ``padded`` ``(B, C, Hp, Wp)`` as a column, shape ``(C·kh·kw, B·Ho·Wo)``.

        Row ``(c, m, n)`` holds x[b, c, s·i + r·m, s·j + r·n] for every output position ``(b, i, j)``,
        so the convolution is one matrix product with the kernel as a ``(D, C·kh·kw)`` matrix.
        """
        batch, channels, height, width = padded.shape
        (kh, kw), (sh, sw), (dh, dw) = self.size, self.stride, self.dilation
        out_h = window_output_size(height, self.span[0], sh)
        out_w = window_output_size(width, self.span[1], sw)
        sb, sc, sy, sx = padded.strides
        view = np.lib.stride_tricks.as_strided(
            padded, (channels, kh, kw, batch, out_h, out_w),
            (sc, dh * sy, dw * sx, sb, sh * sy, sw * sx), writeable=False)
        return view.reshape(channels * kh * kw, batch * out_h * out_w), (out_h, out_w)

    def forward(self, x, params):
        padded = pad_map(x, self.padding)
        cols, (out_h, out_w) = self.columns(padded)
        kernel = self.effective_kernel(params["kernel"]).reshape(self.filters, -1)
        y = (kernel @ cols).reshape(self.filters, x.shape[0], out_h, out_w).transpose(1, 0, 2, 3)
        y = np.ascontiguousarray(y)
        bias = params["bias"]
        y += bias if self.untied_bias else bias[:, None, None]
        return y, (cols, padded.shape)

    def backward(self, dy, cache, params):
        cols, padded_shape = cache
        batch, filters, out_h, out_w = dy.shape
        kh, kw = self.size
        delta = dy.transpose(1, 0, 2, 3).reshape(filters, -1)  # (D, B·Ho·Wo), as the columns
        dkernel = self.effective_kernel((delta @ cols.T).reshape(params["kernel"].shape))
        dbias = dy.sum(axis=0) if self.untied_bias else dy.sum(axis=(0, 2, 3))
        kernel = self.effective_kernel(params["kernel"]).reshape(filters, -1)
        dcols = (kernel.T @ delta).reshape(self.channels, kh, kw, batch, out_h, out_w)
        dwin = dcols.transpose(3, 0, 4, 5, 1, 2)  # (B, C, Ho, Wo, kh, kw), a view
        dx = crop_map(scatter_windows(dwin, padded_shape, self.stride, self.dilation), self.padding)
        return dx, {"kernel": dkernel, "bias": dbias}

    def output_change(self, x, params, pname, entries):
        """∂y/∂θ for each flat entry of parameter ``pname``: shape ``(len(entries), D, Ho, Wo)``.

        Exact, since y is affine in each parameter: kernel entry (d, c, m, n) moves only channel d,
        by the input window values x[c, s·i + r·m, s·j + r·n]; a bias entry adds 1 where it applies.
        ``x`` is the layer's input with a batch axis of 1.
        """
        count = len(entries)
        change = np.zeros((count,) + self.output_shape(x.shape[1:]))
        rows = np.arange(count)
        if pname == "kernel":
            d, c, m, n = np.unravel_index(entries, params["kernel"].shape)
            if self.mode == "convolution":
                m, n = self.size[0] - 1 - m, self.size[1] - 1 - n
            win = windows(pad_map(x, self.padding), self.size, self.stride, self.dilation)[0]
            change[rows, d] = win[c, :, :, m, n]
        elif self.untied_bias:
            change.reshape(count, -1)[rows, entries] = 1.0
        else:
            change[rows, entries] = 1.0
        return change

    def input_change(self, x, params, entries):
        """∂y/∂x for each flat entry of the input ``x`` (batch axis of 1): ``(len(entries), D, Ho, Wo)``.

        Exact, since y is linear in x: input pixel (c, p, q) moves every output (d, i, j) whose
        window covers it, s·i + r·m = p + top, by K[d, c, m, n]; one kernel offset at a time.
        """
        count = len(entries)
        change = np.zeros((count,) + self.output_shape(x.shape[1:]))
        _, out_h, out_w = change.shape[1:]
        c, p, q = np.unravel_index(entries, x.shape[1:])
        (top, _), (left, _) = self.padding
        kernel = self.effective_kernel(params["kernel"])
        rows = np.arange(count)
        for m in range(self.size[0]):
            for n in range(self.size[1]):
                i, i_rest = np.divmod(p + top - self.dilation[0] * m, self.stride[0])
                j, j_rest = np.divmod(q + left - self.dilation[1] * n, self.stride[1])
                hit = (i_rest == 0) & (j_rest == 0) & (i >= 0) & (i < out_h) & (j >= 0) & (j < out_w)
                change[rows[hit], :, i[hit], j[hit]] += kernel[:, c[hit], m, n].T
        return change

"""Convolution layer: D filters over C channels, with stride, padding, dilation, groups and both modes.

Cross-correlation (what deep-learning libraries compute):
    y[d, i, j] = Σ_c Σ_m Σ_n K[d, c, m, n] · x[c, s·i + r·m, s·j + r·n] + b[d]   (s stride, r dilation)
Convolution (the textbook definition) is the same with the kernel rotated 180°. With G groups the
channels split into G runs of C/G and the filters into G runs of D/G; filter d reads only its own
group's channels, c = g·C/G + c' for its kernel's channel c' (K is (D, C/G, kh, kw), as PyTorch's
``F.conv2d(groups=G)``; G = C is a depthwise convolution).
Backward: ∂E/∂K is the correlation of the input with the deltas, ∂E/∂b the sum of the deltas,
∂E/∂x the deltas scattered back through the kernel (a full convolution when stride is 1).
"""
from __future__ import annotations

import numpy as np

from .base import (Layer, Setting, ShapeError, crop_map, pad_map, padded_size, pair, register, resolve_padding,
                   scatter_memory, scatter_windows, spread_channels, window_output_size, windows)
from .explanation import Explanation, Factor, Ref, Term

MODES = ("cross_correlation", "convolution")
# floats of im2col columns the forward builds at a time (1 MiB): a batch of copies is convolved a
# few examples at a time, so its columns stay in the core's cache instead of a copy far larger
COLUMN_CHUNK = 2**17
SYMBOLS = {"dy": "δ", "x": "x", "kernel": "K", "bias": "b"}


@register
class Conv(Layer):
    kind = "conv"
    settings = (
        Setting("kernel", "array", required=True,
                description="2-D (kh, kw), 3-D (C, kh, kw) or 4-D (D, C, kh, kw)"),
        Setting("bias", "array", description="a scalar, one per filter/output, or an untied map"),
        Setting("stride", "pair", (1, 1), minimum=1, description="int or [sh, sw]"),
        Setting("padding", "padding", ((0, 0), (0, 0))),
        Setting("dilation", "pair", (1, 1), minimum=1, description="int or [dh, dw]"),
        Setting("mode", "word", "cross_correlation", choices=MODES),
        Setting("groups", "integer", 1, minimum=1,
                description="G: channels and filters split into G groups (kernel (D, C/G, kh, kw); G = C: depthwise)"),
    )
    param_names = ("kernel", "bias")
    linear_in_input = affine_in_input = affine_in_params = param_moves_one_channel = True

    # --- engine: shape rule, forward, backward, and the memory they take

    def __init__(self, kernel_shape, stride=1, padding=0, dilation=1,
                 mode="cross_correlation", untied_bias=False, groups=1):
        self.filters, self.group_channels, kh, kw = kernel_shape
        if self.filters % groups:
            raise ValueError(f"groups {groups} must divide the number of filters {self.filters}")
        self.groups = groups
        self.channels = groups * self.group_channels   # the input's channels
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
            per_group = f" per group × {self.groups} groups = {self.channels}" if self.groups > 1 else ""
            raise ShapeError(f"the kernel has {self.group_channels} channel(s){per_group} but its input has "
                             f"{channels}", "kernel")
        (top, bottom), (left, right) = self.padding
        padded = (height + top + bottom, width + left + right)
        if self.span[0] > padded[0] or self.span[1] > padded[1]:
            dilated = f" (dilated to {self.span[0]}×{self.span[1]})" if self.dilation != (1, 1) else ""
            raise ShapeError(f"the kernel {self.size[0]}×{self.size[1]}{dilated} is larger than its "
                             f"padded input {padded[0]}×{padded[1]}", "kernel")
        return (self.filters,
                window_output_size(padded[0], self.span[0], self.stride[0]),
                window_output_size(padded[1], self.span[1], self.stride[1]))

    def param_shapes(self, in_shape):
        out = self.output_shape(in_shape)
        bias = out if self.untied_bias else (self.filters,)
        return {"kernel": (self.filters, self.group_channels) + self.size, "bias": bias}

    def effective_kernel(self, kernel):
        """The kernel that is correlated with the input: rotated 180° in convolution mode."""
        return kernel[..., ::-1, ::-1] if self.mode == "convolution" else kernel

    def columns(self, padded):
        """im2col: every window of ``padded`` ``(B, C, Hp, Wp)`` as a column, shape ``(C·kh·kw, B·Ho·Wo)``.

        Row ``(c, m, n)`` holds x[b, c, s·i + r·m, s·j + r·n] for every output position ``(b, i, j)``,
        so the convolution is one matrix product with the kernel as a ``(D, C·kh·kw)`` matrix. The
        windows are ``base.windows``' view, its axes ``(B, C, Ho, Wo, kh, kw)`` moved to
        ``(C, kh, kw, B, Ho, Wo)`` (a view too; the reshape copies unless it is one already).
        """
        win = windows(padded, self.size, self.stride, self.dilation)
        batch, channels, out_h, out_w, kh, kw = win.shape
        view = win.transpose(1, 4, 5, 0, 2, 3)
        return view.reshape(channels * kh * kw, batch * out_h * out_w), (out_h, out_w)

    def grouped(self, matrix):
        """A (D, ·) or (C·kh·kw, ·) matrix as G stacked blocks (G, D/G, ·) or (G, C/G·kh·kw, ·): the
        rows of each group are consecutive, so block g of the kernel meets block g of the columns."""
        return matrix.reshape(self.groups, -1, matrix.shape[-1])

    def example_columns(self, win):
        """The windows ``win`` ``(b, C, Ho, Wo, kh, kw)`` as each example's columns, grouped:
        ``(b, G, C/G·kh·kw, Ho·Wo)``, rows ``(c, m, n)`` as in ``columns`` (a copy unless a view)."""
        batch, _, out_h, out_w = win.shape[:4]
        return win.transpose(0, 1, 4, 5, 2, 3).reshape(batch, self.groups, -1, out_h * out_w)

    def forward(self, x, params):
        """One matrix product per example, K (G, D/G, C/G·kh·kw) by its columns, written straight
        into y; the columns are built ``COLUMN_CHUNK`` floats at a time. Each example's product is
        the same call whatever the batch, so a copy gives the bits its example gives alone."""
        padded = pad_map(x, self.padding)
        win = windows(padded, self.size, self.stride, self.dilation)
        batch, _, out_h, out_w = win.shape[:4]
        kernel = self.effective_kernel(params["kernel"]).reshape(self.groups, self.filters // self.groups, -1)
        y = np.empty((batch, self.filters, out_h, out_w))
        out = y.reshape(batch, self.groups, -1, out_h * out_w)
        chunk = max(1, COLUMN_CHUNK // (self.channels * self.size[0] * self.size[1] * out_h * out_w))
        for lo in range(0, batch, chunk):
            np.matmul(kernel, self.example_columns(win[lo:lo + chunk]), out=out[lo:lo + chunk])
        bias = params["bias"]
        y += bias if self.untied_bias else bias[:, None, None]
        return y, padded

    def forward_each(self, x, params, pname, values):
        """The output for each of ``values`` of the kernel or the bias, (len(values), B, D, Ho, Wo):
        the columns built once for all kernels, each product the one ``forward`` makes (the same
        bits); for biases the product is made once and each bias added to it."""
        if pname == "bias":
            y, _ = self.forward(x, {**params, "bias": np.zeros_like(params["bias"])})
            return y[None] + (values if self.untied_bias else values[..., None, None])[:, None]
        padded = pad_map(x, self.padding)
        win = windows(padded, self.size, self.stride, self.dilation)
        batch, _, out_h, out_w = win.shape[:4]
        kernels = self.effective_kernel(values).reshape(len(values), 1, self.groups, self.filters // self.groups, -1)
        y = np.empty((len(values), batch, self.filters, out_h, out_w))
        out = y.reshape(len(values), batch, self.groups, -1, out_h * out_w)
        chunk = max(1, COLUMN_CHUNK // (self.channels * self.size[0] * self.size[1] * out_h * out_w))
        for lo in range(0, batch, chunk):
            np.matmul(kernels, self.example_columns(win[lo:lo + chunk]), out=out[:, lo:lo + chunk])
        bias = params["bias"]
        y += bias if self.untied_bias else bias[:, None, None]
        return y

    def backward(self, dy, cache, params):
        """The columns (rebuilt from the cached padded input) meet the deltas: ∂E/∂K in one product
        over every example and position, ∂E/∂x as the columns' gradient scattered back."""
        padded = cache
        cols, _ = self.columns(padded)
        batch, filters, out_h, out_w = dy.shape
        kh, kw = self.size
        delta = self.grouped(dy.transpose(1, 0, 2, 3).reshape(filters, -1))  # (G, D/G, B·Ho·Wo), as the columns
        dkernel = (delta @ self.grouped(cols).transpose(0, 2, 1)).reshape(params["kernel"].shape)
        dkernel = self.effective_kernel(dkernel)
        dbias = dy.sum(axis=0) if self.untied_bias else dy.sum(axis=(0, 2, 3))
        kernel = self.grouped(self.effective_kernel(params["kernel"]).reshape(filters, -1))
        dcols = (kernel.transpose(0, 2, 1) @ delta).reshape(self.channels, kh, kw, batch, out_h, out_w)
        dwin = dcols.transpose(3, 0, 4, 5, 1, 2)  # (B, C, Ho, Wo, kh, kw), a view
        dx = crop_map(scatter_windows(dwin, padded.shape, self.stride, self.dilation), self.padding)
        return dx, {"kernel": dkernel, "bias": dbias}

    def memory(self, in_shape):
        """Kept: the padded input (a copy where there is padding), the output and the padded
        input's gradient. Temporary: the im2col columns (C·kh·kw per output position; for a 1×1
        kernel at stride 1 a view of the padded map), built a chunk at a time forward and whole
        backward, the columns' gradient and what scattering it back takes."""
        padded, copy = padded_size(in_shape, self.padding)
        _, out_h, out_w = self.output_shape(in_shape)
        columns = self.channels * self.size[0] * self.size[1] * out_h * out_w
        view = self.size == (1, 1) and self.stride == (1, 1)
        kept = copy + self.filters * out_h * out_w + padded
        backward = (0 if view else columns) + columns + scatter_memory(padded, columns, self.stride, self.size,
                                                                       self.dilation)
        return kept, backward

    # --- explanation: the chain rule one step, for cnngrad explain

    def explain_param(self, pname, index, x, cache, dy, params) -> Explanation:
        """∂E/∂K[d,c,m,n] = Σ_{i,j} δ[d,i,j] · x[c, s·i + r·m, s·j + r·n] (the input correlated with
        the deltas; m, n rotated in convolution mode); ∂E/∂b[d] = Σ_{i,j} δ[d,i,j]."""
        _, out_h, out_w = dy.shape[1:]
        if pname == "bias":
            if self.untied_bias:
                return Explanation("∂E/∂b[d,i,j] = δ[d,i,j] (an untied bias: one per output entry)",
                                   [Term([self._delta(dy, tuple(index))])], symbols=SYMBOLS)
            terms = [Term([self._delta(dy, (index[0], i, j))]) for i in range(out_h) for j in range(out_w)]
            return Explanation("∂E/∂b[d] = Σ_{i,j} δ[d,i,j]", terms, symbols=SYMBOLS)
        d, c, m, n = index
        (sh, sw), (dh, dw) = self.stride, self.dilation
        em, en = self._rotated(m, n)
        c = self.input_channel(d, c)
        terms = [Term([self._delta(dy, (d, i, j)), self._input(x, c, sh * i + dh * em, sw * j + dw * en)])
                 for i in range(out_h) for j in range(out_w)]
        offsets = ("m", "n") if self.mode == "cross_correlation" else ("(kh−1−m)", "(kw−1−n)")
        channel = "c" if self.groups == 1 else "g·C/G + c"
        formula = (f"∂E/∂K[d,c,m,n] = Σ_{{i,j}} δ[d,i,j] · x[{channel}, s·i + r·{offsets[0]}, s·j + r·{offsets[1]}]"
                   " (the input correlated with the deltas)")
        return Explanation(formula, terms, self._notes(), SYMBOLS)

    def explain_input(self, index, x, cache, dy, params) -> Explanation:
        """∂E/∂x[c,p,q] = Σ K[d,c,m,n] · δ[d,i,j] over every output (d,i,j) whose window reads x[c,p,q]
        at offset (m,n), s·i + r·m = p (padded): the deltas scattered back through the kernel."""
        c, p, q = index
        _, out_h, out_w = dy.shape[1:]
        (top, _), (left, _) = self.padding
        group, local = divmod(c, self.group_channels)
        filters = range(group * self.filters // self.groups, (group + 1) * self.filters // self.groups)
        terms = []
        for m in range(self.size[0]):
            for n in range(self.size[1]):
                i, i_rest = divmod(p + top - self.dilation[0] * m, self.stride[0])
                j, j_rest = divmod(q + left - self.dilation[1] * n, self.stride[1])
                if i_rest or j_rest or not (0 <= i < out_h and 0 <= j < out_w):
                    continue
                km, kn = self._rotated(m, n)
                terms += [Term([Factor(float(params["kernel"][d, local, km, kn]), Ref("kernel", (d, local, km, kn))),
                                self._delta(dy, (d, i, j))]) for d in filters]
        return Explanation(self._input_formula(), terms, self._notes(), SYMBOLS)

    def _input_formula(self) -> str:
        """∂E/∂x's step in symbols: the kernel rotated in convolution mode, d within c's group."""
        channel = "c" if self.groups == 1 else "c mod C/G"
        kernel = f"K[d,{channel},m,n]" if self.mode == "cross_correlation" else f"K[d,{channel},kh−1−m,kw−1−n]"
        over = "d" if self.groups == 1 else "d of c's group"
        return (f"∂E/∂x[c,p,q] = Σ_{{{over},m,n}} {kernel} · δ[d,i,j] over the outputs (i,j) whose window "
                "reads x[c,p,q] at offset (m,n): s·i + r·m = p, s·j + r·n = q (padded)")

    def input_channel(self, d, c):
        """The input channel kernel channel c of filter d reads: g·C/G + c in filter d's group g
        (c itself without groups); works on index arrays too."""
        return d // (self.filters // self.groups) * self.group_channels + c

    def _rotated(self, m: int, n: int) -> tuple[int, int]:
        """The window offset a kernel entry (m, n) meets: itself, or (kh−1−m, kw−1−n) in convolution mode."""
        if self.mode == "convolution":
            return self.size[0] - 1 - m, self.size[1] - 1 - n
        return m, n

    def _notes(self) -> list[list]:
        notes = []
        if (self.stride, self.dilation, self.padding) != ((1, 1), (1, 1), ((0, 0), (0, 0))):
            notes.append([f"stride s = {self.stride}, dilation r = {self.dilation}, padding "
                          f"{self.padding} ((top, bottom), (left, right)); padding reads 0"])
        if self.mode == "convolution":
            notes.append(["mode convolution: the kernel is rotated 180° before it slides, so kernel entry "
                          "(m, n) meets window offset (kh−1−m, kw−1−n); this is where the rotation enters"])
        if self.groups > 1:
            notes.append([f"groups G = {self.groups}: filters {self.filters // self.groups} at a time read "
                          f"their own {self.group_channels} channel(s) of the input, filter d those of group "
                          f"g = d // {self.filters // self.groups}"])
        return notes

    @staticmethod
    def _delta(dy, index) -> Factor:
        return Factor(float(dy[(0,) + tuple(index)]), Ref("dy", tuple(index)))

    def _input(self, x, c: int, row: int, col: int) -> Factor:
        """The input at padded position (row, col) of channel c: 0 in the padding."""
        (top, _), (left, _) = self.padding
        p, q = row - top, col - left
        if 0 <= p < x.shape[2] and 0 <= q < x.shape[3]:
            return Factor(float(x[0, c, p, q]), Ref("x", (c, p, q)))
        return Factor(0.0, None, "0 (padding)")

    # --- checker hooks: rounding size, work, kinks, exact shortcuts

    def term_magnitude(self, x, y, params):
        """The window sums Σ |K| |x| + |b|: the same correlation over absolute values."""
        return self.forward(np.abs(x), {name: np.abs(value) for name, value in params.items()})[0]

    def operations(self, in_shape):
        """D·(C/G)·kh·kw multiply-adds for every output position."""
        _, out_h, out_w = self.output_shape(in_shape)
        return self.filters * self.group_channels * self.size[0] * self.size[1] * out_h * out_w

    def work_size(self, in_shape):
        """The input windows dominate: C·kh·kw values for every output position (and the padded copy)."""
        _, out_h, out_w = self.output_shape(in_shape)
        columns = self.channels * self.size[0] * self.size[1] * out_h * out_w
        return super().work_size(in_shape) + columns + padded_size(in_shape, self.padding)[1]

    def output_change(self, x, params, pname, entries):
        """∂y/∂θ for each flat entry of parameter ``pname``: shape ``(len(entries), D, Ho, Wo)``,
        zero outside the one channel each moves (``channel_change``)."""
        return spread_channels(*self.channel_change(x, params, pname, entries), self.filters)

    def channel_change(self, x, params, pname, entries):
        """Channel d, and ∂y/∂θ in it, of each flat entry of ``pname``: exact, since y is affine in
        each parameter. Kernel entry (d, c, m, n) moves channel d by the input window values
        x[c, s·i + r·m, s·j + r·n] (c of d's group: ``input_channel``); bias entry d adds 1 to
        channel d, and untied bias entry (d, i, j) to its one output. ``x`` has a batch axis of 1."""
        count = len(entries)
        d = np.unravel_index(entries, params[pname].shape)[0]
        if pname == "kernel":
            _, c, m, n = np.unravel_index(entries, params["kernel"].shape)
            if self.mode == "convolution":
                m, n = self.size[0] - 1 - m, self.size[1] - 1 - n
            win = windows(pad_map(x, self.padding), self.size, self.stride, self.dilation)[0]
            return d, win[self.input_channel(d, c), :, :, m, n]
        out_h, out_w = self.output_shape(x.shape[1:])[1:]
        if not self.untied_bias:
            return d, np.ones((count, out_h, out_w))
        change = np.zeros((count, out_h * out_w))
        change[np.arange(count), entries % (out_h * out_w)] = 1.0
        return d, change.reshape(count, out_h, out_w)

    def input_change(self, x, params, entries):
        """∂y/∂x for each flat entry of the input ``x`` (batch axis of 1): ``(len(entries), D, Ho, Wo)``.

        Exact, since y is linear in x: input pixel (c, p, q) moves every output (d, i, j) whose
        window covers it, s·i + r·m = p + top, by K[d, c, m, n]; one kernel offset at a time. With
        groups only the filters of c's group read it, through their kernel channel c mod C/G.
        """
        count = len(entries)
        change = np.zeros((count,) + self.output_shape(x.shape[1:]))
        _, out_h, out_w = change.shape[1:]
        c, p, q = np.unravel_index(entries, x.shape[1:])
        (top, _), (left, _) = self.padding
        kernel = self.effective_kernel(params["kernel"])
        group, local = np.divmod(c, self.group_channels)
        reads = np.arange(self.filters) // (self.filters // self.groups) == group[:, None]   # (count, D)
        rows = np.arange(count)
        for m in range(self.size[0]):
            for n in range(self.size[1]):
                i, i_rest = np.divmod(p + top - self.dilation[0] * m, self.stride[0])
                j, j_rest = np.divmod(q + left - self.dilation[1] * n, self.stride[1])
                hit = (i_rest == 0) & (j_rest == 0) & (i >= 0) & (i < out_h) & (j >= 0) & (j < out_w)
                change[rows[hit], :, i[hit], j[hit]] += kernel[:, local[hit], m, n].T * reads[hit]
        return change

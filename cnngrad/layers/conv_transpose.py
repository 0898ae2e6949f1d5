"""Transposed convolution (PyTorch's ``F.conv_transpose2d``): each input pixel stamps the kernel,
scaled by its value, onto the output at stride s; overlapping stamps add up.

    full[o, s·i + r·m, s·j + r·n] += Σ_c x[c, i, j] · K[c, o, m, n]        (s stride, r dilation)
    y[o, p, q] = full[o, p + ph, q + pw] + b[o]

K is (C_in, C_out, kh, kw). ``padding`` (ph, pw) crops that many rows/columns off each side of
the full map and ``output_padding`` keeps that many more at the bottom/right, so
Ho = (H − 1)·s − 2·ph + r·(kh − 1) + output_padding + 1. It is the adjoint (gradient) of the conv
with the same settings, so backward is that conv: ∂E/∂x[c,i,j] = Σ_{o,m,n} K[c,o,m,n] ·
δ[o, s·i + r·m − ph, s·j + r·n − pw], ∂E/∂K the input correlated with the deltas, ∂E/∂b Σ δ.
"""
from __future__ import annotations

import math

import numpy as np

from ..quantities import shape_text
from .base import (Layer, ParamError, Setting, ShapeError, crop_map, pad_map, pair, register, scatter_memory,
                   scatter_windows, spread_channels, windows)
from .explanation import Explanation, Factor, Ref, Term

SYMBOLS = {"dy": "δ", "x": "x", "kernel": "K", "bias": "b"}


@register
class ConvTranspose(Layer):
    kind = "conv_transpose"
    settings = (
        Setting("kernel", "array", required=True, description="4-D (C_in, C_out, kh, kw), as PyTorch's weight"),
        Setting("bias", "array", 0.0, description="a scalar, or one per output channel (C_out)"),
        Setting("stride", "pair", (1, 1), minimum=1, description="int or [sh, sw]"),
        Setting("padding", "pair", (0, 0), minimum=0,
                description="int or [ph, pw]: rows/columns cropped off each side of the output (as PyTorch)"),
        Setting("output_padding", "pair", (0, 0), minimum=0,
                description="int or [h, w]: extra rows/columns kept at the bottom/right, each < max(stride, dilation)"),
        Setting("dilation", "pair", (1, 1), minimum=1, description="int or [dh, dw]"),
    )
    param_names = ("kernel", "bias")
    linear_in_input = affine_in_input = affine_in_params = param_moves_one_channel = True

    # --- building from a spec entry: the kernel sizes the layer

    @classmethod
    def from_spec(cls, options, shapes):
        """A transposed conv sized by its 4-D kernel; output_padding must stay below the stride or
        the dilation on each axis (else the extra rows are not the adjoint of any conv's input)."""
        if len(shapes["kernel"]) != 4:
            raise ParamError(f"kernel must be 4-D (C_in, C_out, kh, kw), as PyTorch's conv_transpose2d "
                             f"weight, not {shape_text(shapes['kernel'], 'a scalar')}", "kernel")
        for axis in range(2):
            limit = max(options["stride"][axis], options["dilation"][axis])
            if options["output_padding"][axis] >= limit:
                raise ParamError(f"output_padding {options['output_padding'][axis]} must be less than the stride "
                                 f"or the dilation ({limit}) on its axis, as in PyTorch", "output_padding")
        return cls(shapes["kernel"], **options)

    def param_mismatch(self, pname, written, wanted, layer):
        """Only the bias can mismatch (the kernel sizes the layer): one value per output channel."""
        return (f"{layer}.bias has shape {shape_text(written, 'a scalar')} but {layer}.kernel has "
                f"{self.outputs} output channel(s) (its second axis): write {self.outputs} values, or one number")

    # --- engine: shape rule, forward, backward, and the memory they take

    def __init__(self, kernel_shape, stride=1, padding=0, output_padding=0, dilation=1):
        self.channels, self.outputs, kh, kw = kernel_shape
        self.size = (kh, kw)
        self.stride, self.padding = pair(stride), pair(padding)
        self.output_padding, self.dilation = pair(output_padding), pair(dilation)

    def full_size(self, height: int, width: int) -> tuple[int, int]:
        """Rows and columns of the stamped map before cropping: (H − 1)·s + r·(k − 1) + 1 + output_padding."""
        return tuple((size - 1) * self.stride[a] + self.dilation[a] * (self.size[a] - 1) + 1 + self.output_padding[a]
                     for a, size in enumerate((height, width)))

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise ShapeError(f"conv_transpose needs a map, but its input is a vector of {in_shape[0]} values")
        channels, height, width = in_shape
        if channels != self.channels:
            raise ShapeError(f"the kernel has {self.channels} input channel(s) (its first axis) but its input "
                             f"has {channels}", "kernel")
        full = self.full_size(height, width)
        out = tuple(full[a] - 2 * self.padding[a] for a in range(2))
        if min(out) < 1:
            raise ShapeError(f"padding {shape_text(self.padding)} crops the whole {full[0]}×{full[1]} output "
                             f"of its input", "padding", "write a smaller padding")
        return (self.outputs,) + out

    def param_shapes(self, in_shape):
        return {"kernel": (self.channels, self.outputs) + self.size, "bias": (self.outputs,)}

    def _crop(self):
        """The crop ``padding`` makes of the full map, as ((top, bottom), (left, right))."""
        (ph, pw) = self.padding
        return (ph, ph), (pw, pw)

    def forward(self, x, params):
        batch, _, height, width = x.shape
        kh, kw = self.size
        # each input pixel's stamp: (C_out·kh·kw, B·H·W) = Kᵀ x, one matrix product
        stamps = params["kernel"].reshape(self.channels, -1).T @ x.transpose(1, 0, 2, 3).reshape(self.channels, -1)
        stamps = stamps.reshape(self.outputs, kh, kw, batch, height, width).transpose(3, 0, 4, 5, 1, 2)
        full = scatter_windows(stamps, (batch, self.outputs) + self.full_size(height, width),
                               self.stride, self.dilation)
        y = np.ascontiguousarray(crop_map(full, self._crop())) + params["bias"][:, None, None]
        return y, x

    def backward(self, dy, cache, params):
        x = cache
        batch, _, height, width = x.shape
        # the deltas read back through every stamp: the windows of the uncropped delta map
        win = windows(pad_map(dy, self._crop()), self.size, self.stride, self.dilation)[:, :, :height, :width]
        cols = win.transpose(1, 4, 5, 0, 2, 3).reshape(self.outputs * self.size[0] * self.size[1], -1)
        inputs = x.transpose(1, 0, 2, 3).reshape(self.channels, -1)          # (C_in, B·H·W)
        kernel = params["kernel"].reshape(self.channels, -1)                 # (C_in, C_out·kh·kw)
        dx = (kernel @ cols).reshape(self.channels, batch, height, width).transpose(1, 0, 2, 3)
        dkernel = (inputs @ cols.T).reshape(params["kernel"].shape)
        return np.ascontiguousarray(dx), {"kernel": dkernel, "bias": dy.sum(axis=(0, 2, 3))}

    def memory(self, in_shape):
        """Kept: the output and the input's gradient. Temporary: the stamps (C_out·kh·kw per input
        pixel), the full map and what scattering takes; in backward the delta windows as columns."""
        channels, height, width = in_shape
        stamps = self.outputs * self.size[0] * self.size[1] * height * width
        full = self.outputs * math.prod(self.full_size(height, width))
        kept = math.prod(self.output_shape(in_shape)) + math.prod(in_shape)
        return kept, stamps + full + scatter_memory(full, stamps, self.stride, self.size, self.dilation)

    # --- explanation: the chain rule one step, for cnngrad explain

    def _delta(self, dy, o: int, row: int, col: int) -> Factor | None:
        """δ at the full map's (row, col) of channel o, or None where cropping removed it."""
        p, q = row - self.padding[0], col - self.padding[1]
        if 0 <= p < dy.shape[2] and 0 <= q < dy.shape[3]:
            return Factor(float(dy[0, o, p, q]), Ref("dy", (o, p, q)))
        return None

    def explain_input(self, index, x, cache, dy, params) -> Explanation:
        """∂E/∂x[c,i,j] = Σ_{o,m,n} K[c,o,m,n] · δ[o, s·i + r·m − ph, s·j + r·n − pw]: x[c,i,j]'s stamp
        read back (entries cropped off by padding left out)."""
        c, i, j = index
        (sh, sw), (dh, dw) = self.stride, self.dilation
        terms = []
        for o in range(self.outputs):
            for m in range(self.size[0]):
                for n in range(self.size[1]):
                    delta = self._delta(dy, o, sh * i + dh * m, sw * j + dw * n)
                    if delta is not None:
                        terms.append(Term([Factor(float(params["kernel"][c, o, m, n]), Ref("kernel", (c, o, m, n))),
                                           delta]))
        return Explanation("∂E/∂x[c,i,j] = Σ_{o,m,n} K[c,o,m,n] · δ[o, s·i + r·m − ph, s·j + r·n − pw] "
                           "(the stamp of x[c,i,j] read back)", terms, self._notes(), SYMBOLS)

    def explain_param(self, pname, index, x, cache, dy, params) -> Explanation:
        """∂E/∂K[c,o,m,n] = Σ_{i,j} x[c,i,j] · δ[o, s·i + r·m − ph, s·j + r·n − pw]; ∂E/∂b[o] = Σ δ[o,p,q]."""
        _, _, height, width = x.shape
        if pname == "bias":
            o = index[0]
            terms = [Term([Factor(float(dy[0, o, p, q]), Ref("dy", (o, p, q)))])
                     for p in range(dy.shape[2]) for q in range(dy.shape[3])]
            return Explanation("∂E/∂b[o] = Σ_{p,q} δ[o,p,q]", terms, symbols=SYMBOLS)
        c, o, m, n = index
        (sh, sw), (dh, dw) = self.stride, self.dilation
        terms = []
        for i in range(height):
            for j in range(width):
                delta = self._delta(dy, o, sh * i + dh * m, sw * j + dw * n)
                if delta is not None:
                    terms.append(Term([Factor(float(x[0, c, i, j]), Ref("x", (c, i, j))), delta]))
        return Explanation("∂E/∂K[c,o,m,n] = Σ_{i,j} x[c,i,j] · δ[o, s·i + r·m − ph, s·j + r·n − pw] "
                           "(the input correlated with the deltas)", terms, self._notes(), SYMBOLS)

    def _notes(self) -> list[list]:
        return [[f"stride s = {self.stride}, dilation r = {self.dilation}, padding (ph, pw) = {self.padding} "
                 f"cropped off each side, output_padding {self.output_padding} kept at the bottom/right"]]

    # --- checker hooks: rounding size, work, kinks, exact shortcuts

    def term_magnitude(self, x, y, params):
        """Σ |x| |K| + |b| over the stamps that land on each output entry: the same map over absolute values."""
        return self.forward(np.abs(x), {name: np.abs(value) for name, value in params.items()})[0]

    def operations(self, in_shape):
        """C_in·C_out·kh·kw multiply-adds for every input pixel."""
        return self.channels * self.outputs * self.size[0] * self.size[1] * in_shape[1] * in_shape[2]

    def work_size(self, in_shape):
        """The stamps and the full map dominate."""
        stamps = self.outputs * self.size[0] * self.size[1] * in_shape[1] * in_shape[2]
        return super().work_size(in_shape) + stamps + self.outputs * math.prod(self.full_size(*in_shape[1:]))

    def _landing(self, i, j, m, n):
        """The output row and column where input pixel (i, j)'s kernel entry (m, n) lands (outside
        0..Ho−1 or 0..Wo−1: cropped off); index arrays broadcast together."""
        row = self.stride[0] * i + self.dilation[0] * m - self.padding[0]
        col = self.stride[1] * j + self.dilation[1] * n - self.padding[1]
        return row, col

    def output_change(self, x, params, pname, entries):
        """∂y/∂θ for each flat entry of ``pname``, shape ``(len(entries), C_out, Ho, Wo)``, zero
        outside the one channel each moves (``channel_change``)."""
        return spread_channels(*self.channel_change(x, params, pname, entries), self.output_shape(x.shape[1:])[0])

    def channel_change(self, x, params, pname, entries):
        """Channel o, and ∂y/∂θ in it, of each flat entry of ``pname``: exact, as y is affine in each
        parameter. Kernel entry (c, o, m, n) adds x[c, i, j] at (s·i + r·m − ph, s·j + r·n − pw) of
        channel o; bias entry o adds 1 to channel o."""
        count = len(entries)
        out_h, out_w = self.output_shape(x.shape[1:])[1:]
        if pname == "bias":
            return entries, np.ones((count, out_h, out_w))
        c, o, m, n = np.unravel_index(entries, params["kernel"].shape)
        change = np.zeros((count, out_h, out_w))
        _, _, height, width = x.shape
        i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        row, col = self._landing(i[None], j[None], m[:, None, None], n[:, None, None])   # (count, H, W)
        inside = (row >= 0) & (row < out_h) & (col >= 0) & (col < out_w)
        k = np.broadcast_to(np.arange(count)[:, None, None], row.shape)
        values = x[0][c[:, None, None], i[None], j[None]]
        change[k[inside], row[inside], col[inside]] = values[inside]
        return o, change

    def input_change(self, x, params, entries):
        """∂y/∂x for each flat entry of the input (batch axis of 1): ``(len(entries), C_out, Ho, Wo)``.
        Exact, as y is linear in x: pixel (c, i, j) adds K[c, :, m, n] at its landing place for each
        kernel offset (m, n); one offset at a time."""
        count = len(entries)
        change = np.zeros((count,) + self.output_shape(x.shape[1:]))
        c, i, j = np.unravel_index(entries, x.shape[1:])
        rows = np.arange(count)
        for m in range(self.size[0]):
            for n in range(self.size[1]):
                row, col = self._landing(i, j, m, n)
                hit = (row >= 0) & (row < change.shape[2]) & (col >= 0) & (col < change.shape[3])
                change[rows[hit], :, row[hit], col[hit]] += params["kernel"][c[hit], :, m, n]
        return change


def reference_forward(layer: ConvTranspose, x: np.ndarray, params) -> np.ndarray:
    """The forward as its definition reads, one input pixel at a time (plain loops): the reference
    the vectorized scatter is tested against (tests/test_conv_transpose.py)."""
    batch, _, height, width = x.shape
    full = np.zeros((batch, layer.outputs) + layer.full_size(height, width))
    (sh, sw), (dh, dw), (kh, kw) = layer.stride, layer.dilation, layer.size
    for i in range(height):
        for j in range(width):
            for m in range(kh):
                for n in range(kw):
                    full[:, :, sh * i + dh * m, sw * j + dw * n] += x[:, :, i, j] @ params["kernel"][:, :, m, n]
    return crop_map(full, layer._crop()) + params["bias"][:, None, None]

"""Pooling over windows: max, average, or L2 (√ of the sum of squares), with stride and padding.

Backward routes each window's delta to its inputs:
  max: to the maximum only (ties: `first` in row-major order, as PyTorch; `split` equally);
  avg: δ / (kh·kw) to every entry of the window (padding counts in the divisor, as PyTorch);
  l2:  δ · x / y, and 0 where the window's norm y is 0.
A remainder that fills no window is dropped; max pads with −∞, the others with zeros.
"""
from __future__ import annotations

import numpy as np

from .base import (Layer, Setting, ShapeError, crop_map, pad_map, padded_size, pair, register, resolve_padding,
                   scatter_memory, scatter_windows, window_output_size, windows)
from .explanation import Explanation, Factor, Ref, Term

TYPES = ("max", "avg", "l2")
TIES = ("first", "split")


@register
class Pool(Layer):
    kind = "pool"
    settings = (
        Setting("type", "word", "max", choices=TYPES),
        Setting("size", "pair", required=True, minimum=1, description="the pooling window: int or [kh, kw]"),
        Setting("stride", "pair", "=size", minimum=1, description="int or [sh, sw]"),
        Setting("padding", "padding", ((0, 0), (0, 0))),
        Setting("ties", "word", "first", choices=TIES, only=("type", "max", "max pooling"),
                description="max pooling: first maximum (PyTorch) or split equally"),
    )
    channelwise = True

    # --- engine: shape rule, forward, backward, and the memory they take

    def __init__(self, type="max", size=2, stride=None, padding=0, ties="first"):
        if type not in TYPES:
            raise ValueError(f"type must be one of {TYPES}, not {type!r}")
        if ties not in TIES:
            raise ValueError(f"ties must be one of {TIES}, not {ties!r}")
        self.type = type
        self.size = pair(size)
        self.stride = pair(size if stride is None else stride)
        self.padding = resolve_padding(padding, self.size)
        self.ties = ties

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise ShapeError(f"pool needs a map, but its input is a vector of {in_shape[0]} values")
        channels, height, width = in_shape
        (top, bottom), (left, right) = self.padding
        padded = (height + top + bottom, width + left + right)
        if self.size[0] > padded[0] or self.size[1] > padded[1]:
            raise ShapeError(f"the pooling window {self.size[0]}×{self.size[1]} is larger than its "
                             f"{'padded ' if padded != (height, width) else ''}input {padded[0]}×{padded[1]}",
                             "size")
        return (channels,
                window_output_size(padded[0], self.size[0], self.stride[0]),
                window_output_size(padded[1], self.size[1], self.stride[1]))

    def forward(self, x, params):
        pad_value = -np.inf if self.type == "max" else 0.0
        padded = pad_map(x, self.padding, pad_value)
        win = windows(padded, self.size, self.stride)
        flat = win.reshape(win.shape[:4] + (-1,))
        first = None
        if self.type == "max":
            # the value at the first maximum *is* the maximum; numpy's max over a short last axis is
            # several times slower than argmax, so take it from there
            first = flat.argmax(axis=-1)
            y = np.take_along_axis(flat, first[..., None], axis=-1)[..., 0]
        elif self.type == "avg":
            y = self._mean(flat)
        else:
            # √Σx² as m·√Σ(x/m)² with m the window's largest |x| (as hypot does), so entries of
            # 1e-300 do not square to 0 (a norm of 0 and a zero gradient) nor 1e300 to inf
            m = np.abs(flat).max(axis=-1)
            scaled = flat / np.where(m > 0, m, 1.0)[..., None]
            y = m * np.sqrt((scaled * scaled).sum(axis=-1))
        return y, (flat, y, first, padded.shape)

    @staticmethod
    def _mean(flat: np.ndarray) -> np.ndarray:
        """Each window's mean; where the sum overflows (entries near 1.8e308) but the mean need
        not, it is Σ(x/n) instead, so an average of finite values is finite."""
        with np.errstate(over="ignore"):
            y = flat.mean(axis=-1)
        overflowed = np.isinf(y)     # (an infinite entry stays infinite either way)
        if overflowed.any():
            y[overflowed] = (flat[overflowed] / flat.shape[-1]).sum(axis=-1)
        return y

    def routing(self, cache) -> np.ndarray:
        """∂y/∂(each window entry), shape (B, C, Ho, Wo, kh·kw): where each window's delta goes."""
        flat, y, first, _ = cache
        if self.type == "max":
            if self.ties == "first":
                return (np.arange(flat.shape[-1]) == first[..., None]).astype(np.float64)
            tied = (flat == y[..., None]).astype(np.float64)
            return tied / tied.sum(axis=-1, keepdims=True)
        if self.type == "avg":
            return np.full(flat.shape, 1.0 / flat.shape[-1])
        safe = np.where(y > 0, y, 1.0)
        return np.where(y[..., None] > 0, flat / safe[..., None], 0.0)

    def backward(self, dy, cache, params):
        weights = self.routing(cache)
        dwin = (dy[..., None] * weights).reshape(weights.shape[:4] + self.size)
        return crop_map(scatter_windows(dwin, cache[3], self.stride), self.padding), {}

    def memory(self, in_shape):
        """Kept: every window's entries (a copy, unless the windows are rows or columns of the
        padded map), the output (and max's winners) and the padded input's gradient. Temporary:
        the padded copy (l2: and its scaled windows), or the routing weights, the windows'
        gradient and what scattering it back takes."""
        padded, copy = padded_size(in_shape, self.padding)
        channels, out_h, out_w = self.output_shape(in_shape)
        (kh, kw), out = self.size, channels * out_h * out_w
        entries = out * kh * kw
        view = kh == 1 or kw == 1 or in_shape[2] + sum(self.padding[1]) == kw
        kept = (copy if view else entries) + (2 if self.type == "max" else 1) * out + padded
        forward = (0 if view else copy) + (2 * entries if self.type == "l2" else 0)
        routing = 2 if self.type == "l2" or self.ties == "split" else 1
        backward = (routing + 1) * entries + scatter_memory(padded, entries, self.stride, self.size)
        return kept, max(forward, backward)

    # --- explanation: the chain rule one step, for cnngrad explain

    def explain_input(self, index, x, cache, dy, params) -> Explanation:
        """∂E/∂x[c,p,q] = Σ over the windows (i,j) holding x[c,p,q] of δ[c,i,j] · ∂y[c,i,j]/∂x[c,p,q],
        the latter the routing weight (max: 1 to the maximum; avg: 1/(kh·kw); l2: x/y)."""
        c, p, q = index
        flat, y, _, _ = cache
        weights = self.routing(cache)
        (top, _), (left, _) = self.padding
        (kh, kw), (sh, sw) = self.size, self.stride
        terms, notes = [], []
        for i in range(y.shape[2]):
            for j in range(y.shape[3]):
                a, b = p + top - sh * i, q + left - sw * j
                if not (0 <= a < kh and 0 <= b < kw):
                    continue
                delta = Factor(float(dy[0, c, i, j]), Ref("dy", (c, i, j)))
                weight = float(weights[0, c, i, j, a * kw + b])
                route = self._route(weight, float(x[0, c, p, q]), index, (c, i, j), float(y[0, c, i, j]))
                terms.append(Term([delta, *route]))
                notes.append(self._window_note(c, i, j, flat[0, c, i, j], float(y[0, c, i, j]), x.shape[2:]))
        how = {"max": "1 for the window's maximum, else 0", "avg": f"1/{kh * kw} (1/(kh·kw))",
               "l2": "x[c,p,q] / y[c,i,j]"}[self.type]
        formula = (f"∂E/∂x[c,p,q] = Σ_(i,j) δ[c,i,j] · ∂y[c,i,j]/∂x[c,p,q] over the windows (i,j) holding "
                   f"x[c,p,q]; ∂y/∂x = {how}")
        return Explanation(formula, terms, notes, {"dy": "δ", "x": "x", "y": "y"})

    def _route(self, weight: float, x_value: float, index, out, y_value: float) -> list[Factor]:
        """The factor ∂y[out]/∂x[index] of one window, described."""
        if self.type == "l2":
            if y_value == 0:
                return [Factor(0.0, None, "0 (a window of zeros)")]
            return [Factor(x_value, Ref("x", tuple(index))), Factor(1.0 / y_value, Ref("y", out), "1/{}")]
        if self.type == "avg":
            return [Factor(weight, None, f"1/{self.size[0] * self.size[1]}")]
        if weight == 1.0:
            return [Factor(weight, None, "1 (the maximum)")]
        if weight == 0.0:
            return [Factor(weight, None, "0 (not the maximum)")]
        return [Factor(weight, None, f"1/{round(1 / weight)} (a tied maximum, shared)")]

    def _window_note(self, c: int, i: int, j: int, entries, value: float, hw) -> list:
        """Which inputs window (i, j) reads and, for max pooling, which won (or how a tie was split)."""
        (top, _), (left, _) = self.padding
        (kh, kw), (sh, sw) = self.size, self.stride
        row, col = sh * i - top, sw * j - left
        first = (c, max(row, 0), max(col, 0))
        last = (c, min(row + kh, hw[0]) - 1, min(col + kw, hw[1]) - 1)
        note = ["window ", Ref("y", (c, i, j)), " reads ", Ref("x", first), " … ", Ref("x", last)]
        if self.type != "max":
            return note
        where = [(c, row + k // kw, col + k % kw) for k in np.flatnonzero(entries == value)]
        note += ["; its maximum ", value, " is at ", Ref("x", where[0])]
        if len(where) > 1:
            rule = "the first gets δ (ties: first)" if self.ties == "first" else \
                f"each gets δ/{len(where)} (ties: split)"
            for other in where[1:]:
                note += [", tied with ", Ref("x", other)]
            note.append(f": {rule}")
        return note

    # --- checker hooks: rounding size, work, kinks, exact shortcuts

    def term_magnitude(self, x, y, params):
        """avg: the window means of |x| (a sum whose terms may cancel); max selects without
        rounding (0); L2 adds squares, so |y| is their size."""
        if self.type == "avg":
            return self.forward(np.abs(x), params)[0]
        return np.zeros_like(y) if self.type == "max" else np.abs(y)

    def pattern(self, cache):
        """max: each window's winner. l2: the sign of each window's largest |x| — the norm is
        smooth unless an entry passes through 0 while it dominates its window (an all-zero window
        is the kink itself; a window of 3e-300 and 4e-300 is |x| in all but name)."""
        flat, _, first, _ = cache
        if self.type == "max":
            return first
        if self.type == "l2":
            dominant = np.abs(flat).argmax(axis=-1)[..., None]
            return np.take_along_axis(flat, dominant, axis=-1)[..., 0] > 0
        return None

    def operations(self, in_shape):
        """kh·kw for every output."""
        return int(np.prod(self.output_shape(in_shape))) * self.size[0] * self.size[1]

    def work_size(self, in_shape):
        """Besides input and output, the padded copy and every window's entries (l2 scales and
        squares them too)."""
        channels, out_h, out_w = self.output_shape(in_shape)
        entries = channels * out_h * out_w * self.size[0] * self.size[1]
        copies = 3 if self.type == "l2" else 1
        return super().work_size(in_shape) + padded_size(in_shape, self.padding)[1] + copies * entries

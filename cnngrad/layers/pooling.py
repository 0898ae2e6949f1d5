"""Pooling over windows: max, average, or L2 (√ of the sum of squares), with stride and padding.

Backward routes each window's delta to its inputs:
  max: to the maximum only (ties: `first` in row-major order, as PyTorch; `split` equally);
  avg: δ / n to every entry of the window, n its divisor (below);
  l2:  δ · x / y, and 0 where the window's norm y is 0.
A remainder that fills no window is dropped, unless ``ceil_mode`` adds one more window that
overhangs the padded map (PyTorch's rule: only if it starts inside the input or its left/top
padding). Max pads (and overhangs) with −∞, the others with zeros. The divisor n of average pooling
is the window's entries inside the padded map (``count_include_pad: true``, PyTorch's default) or
inside the input alone (``false``); the overhang of ``ceil_mode`` never counts, as in PyTorch.
Max pooling may read its window with ``dilation`` (taps r apart, F.max_pool2d's dilation).
"""
from __future__ import annotations

import numpy as np

from .base import (SLICED_TAPS, Layer, Setting, ShapeError, crop_map, pad_map, padded_size, pair, register,
                   resolve_padding, scatter_memory, scatter_windows, window_entries, window_max, windows)
from .explanation import Explanation, Factor, Ref, Term

TYPES = ("max", "avg", "l2")
TIES = ("first", "split")


def pooled_size(size: int, before: int, after: int, span: int, stride: int, ceil: bool) -> int:
    """Windows along one axis of ``size`` entries padded by ``before``/``after``: floor, or with
    ``ceil`` rounded up, less a last window that would start past the input and its front padding
    (PyTorch's pooling_output_shape)."""
    padded = size + before + after
    if not ceil:
        return (padded - span) // stride + 1
    count = -(-(padded - span) // stride) + 1
    return count - 1 if (count - 1) * stride >= size + before else count


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
        Setting("dilation", "pair", (1, 1), minimum=1, only=("type", "max", "max pooling"),
                description="max pooling: int or [dh, dw], the window's taps r apart (F.max_pool2d)"),
        Setting("ceil_mode", "flag", False,
                description="true: one more window where a remainder is left, if it starts inside the input "
                            "or its top/left padding (PyTorch's ceil_mode)"),
        Setting("count_include_pad", "flag", True, only=("type", "avg", "average pooling"),
                description="average pooling: divide by the window's entries including padding (true, "
                            "PyTorch's default) or by its input entries only (false)"),
    )
    channelwise = True

    # --- engine: shape rule, forward, backward, and the memory they take

    def __init__(self, type="max", size=2, stride=None, padding=0, ties="first", dilation=1,
                 ceil_mode=False, count_include_pad=True):
        if type not in TYPES:
            raise ValueError(f"type must be one of {TYPES}, not {type!r}")
        if ties not in TIES:
            raise ValueError(f"ties must be one of {TIES}, not {ties!r}")
        self.type = type
        self.size = pair(size)
        self.stride = pair(size if stride is None else stride)
        self.dilation = pair(dilation)
        self.padding = resolve_padding(padding, self.span)
        self.ties = ties
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)

    @property
    def affine_in_input(self) -> bool:
        """An average is linear in its window (``Layer.affine_in_input``)."""
        return self.type == "avg"

    @property
    def piecewise_linear(self) -> bool:
        """A maximum is its winner on each piece (``Layer.piecewise_linear``); an L2 norm bends."""
        return self.type == "max"

    @property
    def span(self) -> tuple[int, int]:
        """The rows and columns one window covers: r·(k − 1) + 1 per axis."""
        return tuple(r * (k - 1) + 1 for r, k in zip(self.dilation, self.size))

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise ShapeError(f"pool needs a map, but its input is a vector of {in_shape[0]} values")
        channels, height, width = in_shape
        (top, bottom), (left, right) = self.padding
        padded = (height + top + bottom, width + left + right)
        span = self.span
        if span[0] > padded[0] or span[1] > padded[1]:
            window = f"{span[0]}×{span[1]}" + (" (dilated)" if self.dilation != (1, 1) else "")
            raise ShapeError(f"the pooling window {window} is larger than its "
                             f"{'padded ' if padded != (height, width) else ''}input {padded[0]}×{padded[1]}",
                             "size")
        return (channels,) + tuple(pooled_size(n, before, after, k, s, self.ceil_mode) for n, (before, after), k, s
                                   in zip((height, width), self.padding, span, self.stride))

    def extended_padding(self, hw) -> tuple[tuple[int, int], tuple[int, int]]:
        """The padding with ``ceil_mode``'s overhang added at the bottom/right, so every window of the
        output lies inside the padded map (the overhang is never read as data)."""
        _, out_h, out_w = self.output_shape((1,) + tuple(hw))
        sides = []
        for (before, after), n, count, k, s in zip(self.padding, hw, (out_h, out_w), self.span, self.stride):
            sides.append((before, after + max(0, (count - 1) * s + k - (n + before + after))))
        return sides[0], sides[1]

    def divisor_counts(self, hw) -> tuple[np.ndarray, np.ndarray]:
        """(entries inside the padded map, entries inside the input) each window reads, shape (Ho, Wo):
        a window's taps are a grid, so each count is the product of one count per axis."""
        _, *out = self.output_shape((1,) + tuple(hw))
        inside, data = [], []
        for n, (before, after), count, k, r, s in zip(hw, self.padding, out, self.size, self.dilation, self.stride):
            taps = np.arange(count)[:, None] * s + np.arange(k)[None, :] * r - before   # input coordinates
            inside.append(((taps >= -before) & (taps < n + after)).sum(axis=1))
            data.append(((taps >= 0) & (taps < n)).sum(axis=1))
        return (np.outer(*inside).astype(np.float64), np.outer(*data).astype(np.float64))

    def empty_window(self, in_shape) -> tuple[int, int] | None:
        """The first window (row, column of the output) that reads no input entry, only padding or
        overhang (max would give −∞, an average excluding padding 0/0), or None."""
        reads = self.divisor_counts(in_shape[-2:])[1]
        empty = np.argwhere(reads == 0)
        return None if not len(empty) else tuple(int(i) for i in empty[0])

    def forward(self, x, params):
        pad_value = -np.inf if self.type == "max" else 0.0
        full = self.extended_padding(x.shape[-2:])
        padded = pad_map(x, full, pad_value)
        win = windows(padded, self.size, self.stride, self.dilation)
        first = divisor = None
        if self.type == "max":
            y, first = window_max(win)
        elif self.type == "avg":
            win = window_entries(win)       # copied once, for the sum and the cache
            divisor = self.divisor(x.shape[-2:])
            y = self._mean(win, divisor)
        else:
            # √Σx² as m·√Σ(x/m)² with m the window's largest |x| (as hypot does), so entries of
            # 1e-300 do not square to 0 (a norm of 0 and a zero gradient) nor 1e300 to inf
            win = window_entries(win)
            m = np.abs(win).max(axis=-1)
            scaled = win / np.where(m > 0, m, 1.0)[..., None]
            y = m * np.sqrt((scaled * scaled).sum(axis=-1))
        # the windows: max's strided view (B, C, Ho, Wo, kh, kw), avg's and l2's copied entries
        # (B, C, Ho, Wo, kh·kw); ``window_entries`` reads either as the latter
        return y, (win, y, first, padded.shape, divisor, full)

    def divisor(self, hw) -> np.ndarray | float:
        """Average pooling's n per window, (Ho, Wo), or kh·kw itself where every window has it."""
        if not self.ceil_mode and self.count_include_pad:
            return float(self.size[0] * self.size[1])
        inside, data = self.divisor_counts(hw)
        return inside if self.count_include_pad else data

    @staticmethod
    def _mean(flat: np.ndarray, divisor) -> np.ndarray:
        """Each window's sum over its divisor n; where the sum overflows (entries near 1.8e308) but
        the mean need not, it is Σ(x/n) instead, so an average of finite values is finite."""
        n = np.broadcast_to(divisor, flat.shape[:4])
        with np.errstate(over="ignore"):
            y = flat.sum(axis=-1) / n
        overflowed = np.isinf(y)     # (an infinite entry stays infinite either way)
        if overflowed.any():
            y[overflowed] = (flat[overflowed] / n[overflowed][..., None]).sum(axis=-1)
        return y

    def routing(self, cache) -> np.ndarray:
        """∂y/∂(each window entry), shape (B, C, Ho, Wo, kh·kw): where each window's delta goes."""
        win, y, first, _, divisor, _ = cache
        taps = self.size[0] * self.size[1]
        if self.type == "max":
            if self.ties == "first":
                return (np.arange(taps) == first[..., None]).astype(np.float64)
            tied = (window_entries(win) == y[..., None]).astype(np.float64)
            return tied / tied.sum(axis=-1, keepdims=True)
        if self.type == "avg":
            return np.broadcast_to((1.0 / np.asarray(divisor))[..., None], y.shape + (taps,))
        safe = np.where(y > 0, y, 1.0)
        return np.where(y[..., None] > 0, win / safe[..., None], 0.0)

    def backward(self, dy, cache, params):
        weights = self.routing(cache)
        dwin = (dy[..., None] * weights).reshape(weights.shape[:4] + self.size)
        padded = scatter_windows(dwin, cache[3], self.stride, self.dilation)
        return crop_map(padded, cache[5]), {}

    def memory(self, in_shape):
        """Kept: avg's and l2's window entries (a copy, unless the windows are rows or columns of
        the padded map), max's padded map (its windows are a strided view of it), the output (and
        max's winners) and the padded input's gradient. Temporary: the padded copy (l2: and its
        scaled windows; max: a few output-sized arrays, or the copied windows of a large one), or
        the routing weights, the windows' gradient and what scattering it back takes."""
        full = self.extended_padding(in_shape[-2:])
        padded, copy = padded_size(in_shape, full)
        channels, out_h, out_w = self.output_shape(in_shape)
        (kh, kw), out = self.size, channels * out_h * out_w
        entries = out * kh * kw
        view = kh == 1 or kw == 1 or in_shape[2] + sum(full[1]) == kw
        kept, forward = self._forward_memory(padded, copy, out, entries, view)
        routing = 2 if self.type == "l2" or self.ties == "split" else 1
        backward = (routing + 1) * entries + scatter_memory(padded, entries, self.stride, self.size, self.dilation)
        return kept, max(forward, backward)

    def _forward_memory(self, padded: int, copy: int, out: int, entries: int, view: bool) -> tuple[int, int]:
        """``memory``'s floats kept by the forward and its temporary ones, from the padded map's and
        its copy's, the output's and the windows' entries (``view``: the windows are rows or columns)."""
        if self.type == "max":
            large = self.size[0] * self.size[1] > SLICED_TAPS and not view
            return copy + 2 * out + padded, entries if large else 3 * out
        kept = (copy if view else entries) + out + padded
        return kept, (0 if view else copy) + (2 * entries if self.type == "l2" else 0)

    # --- explanation: the chain rule one step, for cnngrad explain

    def explain_input(self, index, x, cache, dy, params) -> Explanation:
        """∂E/∂x[c,p,q] = Σ over the windows (i,j) holding x[c,p,q] of δ[c,i,j] · ∂y[c,i,j]/∂x[c,p,q],
        the latter the routing weight (max: 1 to the maximum; avg: 1/n, n the window's divisor; l2: x/y)."""
        c, p, q = index
        flat, y = cache[0], cache[1]
        weights = self.routing(cache)
        (top, _), (left, _) = self.padding
        (kh, kw), (sh, sw), (dh, dw) = self.size, self.stride, self.dilation
        terms, notes = [], []
        for i in range(y.shape[2]):
            for j in range(y.shape[3]):
                a, b = p + top - sh * i, q + left - sw * j     # the offset inside window (i, j)
                if not (a % dh == 0 and b % dw == 0 and 0 <= a // dh < kh and 0 <= b // dw < kw):
                    continue
                delta = Factor(float(dy[0, c, i, j]), Ref("dy", (c, i, j)))
                weight = float(weights[0, c, i, j, (a // dh) * kw + b // dw])
                route = self._route(weight, float(x[0, c, p, q]), index, (c, i, j), float(y[0, c, i, j]))
                terms.append(Term([delta, *route]))
                notes.append(self._window_note(c, i, j, flat[0, c, i, j], float(y[0, c, i, j]), x.shape[2:],
                                               weight))
        how = {"max": "1 for the window's maximum, else 0", "avg": self._divisor_text(),
               "l2": "x[c,p,q] / y[c,i,j]"}[self.type]
        formula = (f"∂E/∂x[c,p,q] = Σ_(i,j) δ[c,i,j] · ∂y[c,i,j]/∂x[c,p,q] over the windows (i,j) holding "
                   f"x[c,p,q]; ∂y/∂x = {how}")
        return Explanation(formula, terms, notes, {"dy": "δ", "x": "x", "y": "y"})

    def _divisor_text(self) -> str:
        """What average pooling divides by, in words."""
        if not self.ceil_mode and self.count_include_pad:
            return f"1/{self.size[0] * self.size[1]} (1/(kh·kw))"
        counted = "inside the padded input" if self.count_include_pad else "of the input (padding not counted)"
        return f"1/n(i,j), n(i,j) the window's entries {counted}"

    def _route(self, weight: float, x_value: float, index, out, y_value: float) -> list[Factor]:
        """The factor ∂y[out]/∂x[index] of one window, described."""
        if self.type == "l2":
            if y_value == 0:
                return [Factor(0.0, None, "0 (a window of zeros)")]
            return [Factor(x_value, Ref("x", tuple(index))), Factor(1.0 / y_value, Ref("y", out), "1/{}")]
        if self.type == "avg":
            return [Factor(weight, None, f"1/{round(1 / weight)}")]
        if weight == 1.0:
            return [Factor(weight, None, "1 (the maximum)")]
        if weight == 0.0:
            return [Factor(weight, None, "0 (not the maximum)")]
        return [Factor(weight, None, f"1/{round(1 / weight)} (a tied maximum, shared)")]

    def _window_note(self, c: int, i: int, j: int, entries, value: float, hw, weight: float) -> list:
        """Which inputs window (i, j) reads (average: and its divisor) and, for max pooling, which
        won (or how a tie was split)."""
        (top, _), (left, _) = self.padding
        row, col = self.stride[0] * i - top, self.stride[1] * j - left
        note = self._reads_note(c, i, j, row, col, hw)
        if self.type == "avg" and (self.ceil_mode or not self.count_include_pad):
            note.append(f"; n = {round(1 / weight)}")
        if self.type != "max":
            return note
        return note + self._winner_note(c, row, col, entries, value)

    def _reads_note(self, c: int, i: int, j: int, row: int, col: int, hw) -> list:
        """The note "window y[c,i,j] reads x[first] … x[last]": the first and last tap inside the map
        (its top-left tap at ``row``, ``col``), and how far apart dilation puts its taps."""
        (kh, kw), (dh, dw) = self.size, self.dilation
        first = (c, row + dh * max(0, -(row // dh)), col + dw * max(0, -(col // dw)))
        last_row = row + dh * min(kh - 1, (hw[0] - 1 - row) // dh)
        last_col = col + dw * min(kw - 1, (hw[1] - 1 - col) // dw)
        note = ["window ", Ref("y", (c, i, j)), " reads ", Ref("x", first), " … ", Ref("x", (c, last_row, last_col))]
        if self.dilation != (1, 1):
            note.append(f" (taps {dh if dh == dw else f'{dh}×{dw}'} apart: dilation)")
        return note

    def _winner_note(self, c: int, row: int, col: int, entries, value: float) -> list:
        """Max pooling: where the window's maximum ``value`` is among its taps ``entries``, and with a
        tie, the others and how δ is shared (``ties``)."""
        kw, (dh, dw) = self.size[1], self.dilation
        where = [(c, row + dh * (k // kw), col + dw * (k % kw)) for k in np.flatnonzero(entries == value)]
        note = ["; its maximum ", value, " is at ", Ref("x", where[0])]
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
        flat, first = cache[0], cache[2]     # l2: the copied entries (B, C, Ho, Wo, kh·kw)
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
        return super().work_size(in_shape) + padded_size(in_shape, self.extended_padding(in_shape[-2:]))[1] \
            + copies * entries

"""Pooling over windows: max, average, or L2 (√ of the sum of squares), with stride and padding.

Backward routes each window's delta to its inputs:
  max: to the maximum only (ties: `first` in row-major order, as PyTorch; `split` equally);
  avg: δ / (kh·kw) to every entry of the window (padding counts in the divisor, as PyTorch);
  l2:  δ · x / y, and 0 where the window's norm y is 0.
A remainder that fills no window is dropped; max pads with −∞, the others with zeros.
"""
from __future__ import annotations

import numpy as np

from .base import (Layer, ShapeError, crop_map, pad_map, pair, register, resolve_padding,
                   scatter_windows, window_output_size, windows)

TYPES = ("max", "avg", "l2")
TIES = ("first", "split")


@register
class Pool(Layer):
    kind = "pool"

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
                             f"input {padded[0]}×{padded[1]}")
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
            y = flat.mean(axis=-1)
        else:
            y = np.sqrt((flat * flat).sum(axis=-1))
        return y, (flat, y, first, padded.shape)

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

    def pattern(self, cache):
        _, y, first, _ = cache
        if self.type == "max":
            return first
        if self.type == "l2":
            return y > 0
        return None

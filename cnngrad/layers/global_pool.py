"""Global average pooling: each channel's map averaged to one number, (C, H, W) → (C,).

    y[c] = (1 / (H·W)) Σ_p Σ_q x[c, p, q]        ∂E/∂x[c, p, q] = δ[c] / (H·W)

The output is a vector, as PyTorch's ``F.adaptive_avg_pool2d(x, 1).flatten(1)`` (or
``nn.AdaptiveAvgPool2d(1)`` then ``nn.Flatten()``) gives, so an ``fc`` can follow it directly.
"""
from __future__ import annotations

import math

import numpy as np

from .base import Layer, ShapeError, register
from .explanation import Explanation, Factor, Ref, Term


@register
class GlobalAvgPool(Layer):
    kind = "global_avg_pool"
    affine_in_input = True

    # --- engine: shape rule, forward, backward, and the memory they take

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise ShapeError(f"global_avg_pool needs a map, but its input is a vector of {in_shape[0]} values")
        return (in_shape[0],)

    def forward(self, x, params):
        return x.mean(axis=(2, 3)), x.shape

    def backward(self, dy, cache, params):
        batch, channels, height, width = cache
        dx = np.broadcast_to((dy / (height * width))[:, :, None, None], cache)
        return np.array(dx), {}

    # --- explanation: the chain rule one step, for cnngrad explain

    def explain_input(self, index, x, cache, dy, params) -> Explanation:
        """∂E/∂x[c,p,q] = δ[c] · 1/(H·W): every entry of a channel's map counts equally in its mean."""
        channel = index[0]
        entries = math.prod(cache[2:])
        term = Term([Factor(float(dy[0, channel]), Ref("dy", (channel,))), Factor(1.0 / entries, None, f"1/{entries}")])
        return Explanation(f"∂E/∂x[c,p,q] = δ[c] · 1/(H·W) = δ[c] / {entries}", [term], symbols={"dy": "δ", "x": "x"})

    # --- checker hooks: rounding size, work, kinks, exact shortcuts

    def term_magnitude(self, x, y, params):
        """The mean of |x| over each map: the size of the sum's terms, which may cancel."""
        return np.abs(x).mean(axis=(2, 3))

    def operations(self, in_shape):
        """One addition per input entry."""
        return math.prod(in_shape)

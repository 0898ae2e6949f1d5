"""Flatten a map to a vector, row-major (order C, the default) or column-major (order F).

Backward is the inverse reshape: each delta goes back to the entry it came from.
"""
from __future__ import annotations

import math

import numpy as np

from .base import Layer, Setting, register
from .explanation import Explanation, Factor, Ref, Term

ORDERS = ("C", "F")


@register
class Flatten(Layer):
    kind = "flatten"
    affine_in_input = True
    settings = (Setting("order", "word", "C", choices=ORDERS,
                        description="C row-major (default) or F column-major"),)

    # --- engine: shape rule, forward, backward, and the memory they take

    def __init__(self, order="C"):
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
        self.order = order

    def output_shape(self, in_shape):
        return (math.prod(in_shape),)

    def forward(self, x, params):
        if self.order == "F":
            x = x.transpose(0, *range(x.ndim - 1, 0, -1))
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, dy, cache, params):
        shape = cache
        dx = dy.reshape(shape)
        if self.order == "F":
            dx = dx.transpose(0, *range(dx.ndim - 1, 0, -1))
        return dx, {}

    def memory(self, in_shape):
        """Row-major order reshapes in place; column-major copies the transposed map once."""
        return (0 if self.order == "C" else math.prod(in_shape)), 0

    # --- explanation: the chain rule one step, for cnngrad explain

    def explain_input(self, index, x, cache, dy, params) -> Explanation:
        """∂E/∂x[c,i,j] = δ[k], k the place of x[c,i,j] in the flattened vector."""
        place = int(np.ravel_multi_index(tuple(index), x.shape[1:], order=self.order))
        return Explanation(f"∂E/∂x[c,i,j] = δ[k], k the place of x[c,i,j] in the vector (order {self.order})",
                           [Term([Factor(float(dy[0, place]), Ref("dy", (place,)))])],
                           symbols={"dy": "δ", "x": "x"})

    # --- checker hooks: rounding size, work, kinks, exact shortcuts

    def term_magnitude(self, x, y, params):
        """0: a reshape moves values without rounding them."""
        return np.zeros_like(y)

"""Layers that read several earlier values (``Layer.joins``): ``add``, a residual connection, and
``concat``, maps (or vectors) joined along channels, as an Inception block joins its branches.

    add:     y = x₁ + x₂ + …              ∂E/∂xᵢ = δ                       (each operand the whole delta)
    concat:  y = [x₁; x₂; …] along C      ∂E/∂xᵢ[c,i,j] = δ[oᵢ + c, i, j]   (oᵢ: the channels before xᵢ)

``inputs:`` names the values, in order (``input`` or earlier layers). ``forward`` takes a tuple of
arrays with one batch axis, ``backward`` gives a tuple of their gradients, and the shape methods
take a tuple of shapes.
"""
from __future__ import annotations

import math

import numpy as np

from .base import Layer, Setting, ShapeError, register
from .explanation import Explanation, Factor, Ref, Term

INPUTS = Setting("inputs", "names", required=True,
                 description="the values it reads, in order: input or earlier layers' names (at least 2)")


class Join(Layer):
    """What add and concat share: several inputs, no parameters, no kinks."""

    joins = True
    settings = (INPUTS,)

    def memory(self, in_shapes):
        """The output and each operand's gradient are kept; the operands' sizes come and go."""
        size = math.prod(self.output_shape(in_shapes))
        return size + sum(math.prod(shape) for shape in in_shapes), size

    def work_size(self, in_shapes):
        return 2 * (sum(math.prod(shape) for shape in in_shapes) + math.prod(self.output_shape(in_shapes)))

    def explain_operand(self, operand: int, index: tuple[int, ...], xs, cache, dy: np.ndarray,
                        params) -> Explanation:
        """∂E/∂xs[operand][index] (engine index, no batch axis): as ``explain_input``, for the
        operand the entry belongs to."""
        raise NotImplementedError


@register
class Add(Join):
    kind = "add"

    # --- engine: shape rule, forward, backward, and the memory they take

    def output_shape(self, in_shapes):
        for shape in in_shapes[1:]:
            if tuple(shape) != tuple(in_shapes[0]):
                raise ShapeError("add needs operands of one shape", "inputs")
        return tuple(in_shapes[0])

    def forward(self, xs, params):
        y = xs[0] + xs[1]
        for x in xs[2:]:
            y = y + x
        return y, len(xs)

    def backward(self, dy, cache, params):
        return tuple(dy for _ in range(cache)), {}

    # --- explanation: the chain rule one step, for cnngrad explain

    def explain_operand(self, operand, index, xs, cache, dy, params) -> Explanation:
        """∂E/∂xᵢ[j] = δ[j]: y[j] = Σᵢ xᵢ[j], so each operand moves y by as much as it moves."""
        at = tuple(index)
        return Explanation("∂E/∂x[i] = δ[i] (y = x₁ + x₂ + …: ∂y[i]/∂x[i] = 1)",
                           [Term([Factor(float(dy[(0,) + at]), Ref("dy", at))])],
                           symbols={"dy": "δ", "x": "x"})

    # --- checker hooks: rounding size, work, kinks, exact shortcuts

    def term_magnitude(self, x, y, params):
        """Σ |xᵢ|: the sum's terms, which may cancel."""
        return sum(np.abs(operand) for operand in x)

    def operations(self, in_shapes):
        return math.prod(in_shapes[0]) * (len(in_shapes) - 1)


@register
class Concat(Join):
    kind = "concat"

    # --- engine: shape rule, forward, backward, and the memory they take

    def output_shape(self, in_shapes):
        first = in_shapes[0]
        if any(len(shape) != len(first) for shape in in_shapes):
            raise ShapeError("concat joins maps with maps or vectors with vectors", "inputs")
        if any(tuple(shape[1:]) != tuple(first[1:]) for shape in in_shapes):
            raise ShapeError("concat joins maps of one height and width", "inputs")
        return (sum(shape[0] for shape in in_shapes),) + tuple(first[1:])

    def forward(self, xs, params):
        return np.concatenate(xs, axis=1), tuple(x.shape[1] for x in xs)

    def backward(self, dy, cache, params):
        return tuple(np.split(dy, np.cumsum(cache)[:-1], axis=1)), {}

    # --- explanation: the chain rule one step, for cnngrad explain

    def explain_operand(self, operand, index, xs, cache, dy, params) -> Explanation:
        """∂E/∂xᵢ[c,…] = δ[oᵢ + c,…]: the entry is copied to channel oᵢ + c of the output."""
        offset = sum(cache[:operand])
        at = (index[0] + offset,) + tuple(index[1:])
        return Explanation(f"∂E/∂x[c,…] = δ[{offset} + c,…] (x is channels {offset}…{offset + cache[operand] - 1} "
                           f"of y)", [Term([Factor(float(dy[(0,) + at]), Ref("dy", at))])],
                           symbols={"dy": "δ", "x": "x"})

    # --- checker hooks: rounding size, work, kinks, exact shortcuts

    def term_magnitude(self, x, y, params):
        """A copy rounds nothing."""
        return np.zeros(y.shape)

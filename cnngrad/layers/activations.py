"""Element-wise activations and softmax, each forward beside its derivative.

relu:       y = max(0, x),            y' = 1 if x > 0 else 0 (0 at x = 0, as PyTorch)
leaky_relu: y = x if x > 0 else a·x,  y' = 1 if x > 0 else a  (a at x = 0, as PyTorch)
sigmoid:    y = 1 / (1 + e^-x),       y' = y (1 − y)
tanh:       y = tanh x,               y' = 1 − y²
softmax:    y_k = e^{x_k} / Σ_j e^{x_j} over all entries of an example (axis: all), or over the
            channels of each pixel of a map (axis: channels, F.softmax(x, dim=1)),
            ∂E/∂x = y ⊙ (∂E/∂y − Σ_j y_j ∂E/∂y_j), j over the same entries
"""
from __future__ import annotations

import numpy as np

from .base import Layer, Setting, ShapeError, register
from .explanation import Explanation, Factor, Ref, Term


def stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) without overflow: e^-|x| is never larger than 1."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class Elementwise(Layer):
    """An activation applied entry by entry: ∂E/∂x = ∂E/∂y ⊙ f′, with f′ from ``derivative``."""

    derivative_text = ""          # f′ in words, e.g. "y (1 − y)"
    channelwise = True

    # --- engine: shape rule, forward, backward, and the memory they take

    def derivative(self, cache) -> np.ndarray:
        """f′ at every entry, from what ``forward`` cached."""
        raise NotImplementedError

    def backward(self, dy, cache, params):
        return dy * self.derivative(cache), {}

    # --- explanation: the chain rule one step, for cnngrad explain

    def explain_input(self, index, x, cache, dy, params) -> Explanation:
        """∂E/∂x[i] = δ[i] · f′(x[i]): one term."""
        at = (0,) + tuple(index)
        slope = float(self.derivative(cache)[at])
        term = Term([Factor(float(dy[at]), Ref("dy", index)), Factor(slope, Ref("x", index), f"{self.kind}′({{}})")])
        note = [f"{self.kind}′(x) = {self.derivative_text}; at x = ", float(x[at]), ": ", slope]
        return Explanation(f"∂E/∂x[i] = δ[i] · {self.kind}′(x[i])", [term], [note], {"dy": "δ", "x": "x"})


def log_softmax(x: np.ndarray, channels: bool = False) -> np.ndarray:
    """log softmax over all entries of each example (or, with ``channels``, over axis 1 of each
    pixel of a map), shifted by the maximum so e^x cannot overflow (an entry more than 1.8e308
    below the maximum gives −inf: its true value is beyond float64)."""
    flat = x if channels else x.reshape(x.shape[0], -1)
    with np.errstate(over="ignore"):
        shifted = flat - flat.max(axis=1, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return out.reshape(x.shape)


@register
class ReLU(Elementwise):
    kind = "relu"
    derivative_text = "1 if x > 0, else 0 (0 at x = 0, as PyTorch)"
    piecewise_linear = True

    # --- engine: shape rule, forward, backward, and the memory they take

    def forward(self, x, params):
        return np.maximum(x, 0.0), x

    def derivative(self, cache):
        return cache > 0

    # --- checker hooks: rounding size, work, kinks, exact shortcuts

    def term_magnitude(self, x, y, params):
        """0: max(x, 0) is exact, no rounding to count."""
        return np.zeros_like(y)

    def pattern(self, cache):
        """The sign of each input (x > 0): the kink is at 0."""
        return cache > 0


@register
class LeakyReLU(Elementwise):
    kind = "leaky_relu"
    settings = (Setting("slope", "number", 0.01),)
    derivative_text = "1 if x > 0, else the slope (the slope at x = 0, as PyTorch)"
    piecewise_linear = True

    # --- engine: shape rule, forward, backward, and the memory they take

    def __init__(self, slope=0.01):
        self.slope = float(slope)

    def forward(self, x, params):
        return np.where(x > 0, x, self.slope * x), x

    def derivative(self, cache):
        return np.where(cache > 0, 1.0, self.slope)

    # --- checker hooks: rounding size, work, kinks, exact shortcuts

    def pattern(self, cache):
        """The sign of each input (x > 0): the kink is at 0."""
        return cache > 0


@register
class Sigmoid(Elementwise):
    kind = "sigmoid"
    derivative_text = "y (1 − y)"

    def forward(self, x, params):
        y = stable_sigmoid(x)
        return y, y

    def derivative(self, cache):
        y = cache
        return y * (1.0 - y)


@register
class Tanh(Elementwise):
    kind = "tanh"
    derivative_text = "1 − y²"

    def forward(self, x, params):
        y = np.tanh(x)
        return y, y

    def derivative(self, cache):
        y = cache
        return 1.0 - y * y


AXES = ("all", "channels")


@register
class Softmax(Layer):
    kind = "softmax"
    settings = (Setting("axis", "word", "all", choices=AXES,
                        description="all: one distribution over the example (default); channels: one per "
                                    "pixel of a map, over its channels (F.softmax(x, dim=1))"),)

    # --- engine: shape rule, forward, backward, and the memory they take

    def __init__(self, axis="all"):
        if axis not in AXES:
            raise ValueError(f"axis must be one of {AXES}, not {axis!r}")
        self.axis = axis

    @property
    def fusable_as(self) -> str | None:
        """Only a softmax over the whole example is the one a fused cross-entropy assumes."""
        return self.kind if self.axis == "all" else None

    def output_shape(self, in_shape):
        if self.axis == "channels" and len(in_shape) != 3:
            raise ShapeError(f"softmax over channels needs a map (C, H, W), but its input is a vector of "
                             f"{in_shape[0]} values", fix="write axis: all for a vector")
        if self.axis == "channels" and in_shape[0] == 1:
            raise ShapeError("softmax over channels of a map with one channel is 1 everywhere",
                             "axis", "give it a map of several channels, or write axis: all")
        return tuple(in_shape)

    def forward(self, x, params):
        y = np.exp(log_softmax(x, self.axis == "channels"))
        return y, y

    def backward(self, dy, cache, params):
        y = cache
        axes = 1 if self.axis == "channels" else tuple(range(1, y.ndim))
        return y * (dy - (dy * y).sum(axis=axes, keepdims=True)), {}

    # --- explanation: the chain rule one step, for cnngrad explain

    def explain_input(self, index, x, cache, dy, params) -> Explanation:
        """∂E/∂x[i] = Σ_k δ[k] · y[k] (1[k = i] − y[i]), k over the entries of i's distribution:
        every entry of the example, or the channels of i's pixel."""
        y = cache[0]
        index = tuple(index)
        y_i = float(y[index])
        if self.axis == "channels":
            entries = [(k,) + index[1:] for k in range(y.shape[0])]
            formula = ("∂E/∂x[c,p,q] = Σ_k δ[k,p,q] · y[k,p,q] · (1[k = c] − y[c,p,q]), k over the channels "
                       "of pixel (p,q)")
        else:
            entries = list(np.ndindex(y.shape))
            formula = "∂E/∂x[i] = Σ_k δ[k] · ∂y[k]/∂x[i] = Σ_k δ[k] · y[k] · (1[k = i] − y[i])"
        terms = []
        for k in entries:
            own = k == index
            terms.append(Term([Factor(float(dy[(0,) + k]), Ref("dy", k)), Factor(float(y[k]), Ref("y", k)),
                               Factor((1.0 if own else 0.0) - y_i, Ref("y", index),
                                      "(1 − {})" if own else "(−{})")]))
        return Explanation(formula, terms, [], {"dy": "δ", "y": "y", "x": "x"})

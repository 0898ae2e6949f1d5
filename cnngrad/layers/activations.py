"""Element-wise activations and softmax, each forward beside its derivative.

relu:       y = max(0, x),            y' = 1 if x > 0 else 0 (0 at x = 0, as PyTorch)
leaky_relu: y = x if x > 0 else a·x,  y' = 1 if x > 0 else a  (a at x = 0, as PyTorch)
sigmoid:    y = 1 / (1 + e^-x),       y' = y (1 − y)
tanh:       y = tanh x,               y' = 1 − y²
softmax:    y_k = e^{x_k} / Σ_j e^{x_j} over all entries of an example,
            ∂E/∂x = y ⊙ (∂E/∂y − Σ_j y_j ∂E/∂y_j)
"""
from __future__ import annotations

import numpy as np

from .base import Layer, register


def stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) without overflow: e^-|x| is never larger than 1."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def log_softmax(x: np.ndarray) -> np.ndarray:
    """log softmax over all entries of each example, shifted by the maximum so e^x cannot overflow."""
    flat = x.reshape(x.shape[0], -1)
    shifted = flat - flat.max(axis=1, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return out.reshape(x.shape)


@register
class ReLU(Layer):
    kind = "relu"

    def forward(self, x, params):
        return np.maximum(x, 0.0), x

    def backward(self, dy, cache, params):
        return dy * (cache > 0), {}

    def pattern(self, cache):
        return cache > 0


@register
class LeakyReLU(Layer):
    kind = "leaky_relu"

    def __init__(self, slope=0.01):
        self.slope = float(slope)

    def forward(self, x, params):
        return np.where(x > 0, x, self.slope * x), x

    def backward(self, dy, cache, params):
        return dy * np.where(cache > 0, 1.0, self.slope), {}

    def pattern(self, cache):
        return cache > 0


@register
class Sigmoid(Layer):
    kind = "sigmoid"

    def forward(self, x, params):
        y = stable_sigmoid(x)
        return y, y

    def backward(self, dy, cache, params):
        y = cache
        return dy * y * (1.0 - y), {}


@register
class Tanh(Layer):
    kind = "tanh"

    def forward(self, x, params):
        y = np.tanh(x)
        return y, y

    def backward(self, dy, cache, params):
        y = cache
        return dy * (1.0 - y * y), {}


@register
class Softmax(Layer):
    kind = "softmax"

    def forward(self, x, params):
        y = np.exp(log_softmax(x))
        return y, y

    def backward(self, dy, cache, params):
        y = cache
        axes = tuple(range(1, y.ndim))
        return y * (dy - (dy * y).sum(axis=axes, keepdims=True)), {}

"""Batch normalization in training mode: each feature (a vector's entry, or a map's channel over
the examples and all its positions, "spatial") normalized by the batch's statistics.

    μ = mean x,  var = mean (x − μ)² (biased, as F.batch_norm(training=True) normalizes),
    σ = √(var + eps),  x̂ = (x − μ) / σ,  y = γ x̂ + β
    ∂E/∂x = (γ/σ) (δ − mean δ − x̂ · mean(δ x̂)),  ∂E/∂γ = Σ δ x̂,  ∂E/∂β = Σ δ

the means and sums over the N examples of a feature (and the H·W positions of a channel). The
layer mixes the examples (``mixes_examples``): it sees a run's rows in groups of N, one group per
perturbed copy of the batch.
"""
from __future__ import annotations

import math

import numpy as np

from .base import Layer, Setting, ShapeError, register
from .explanation import Explanation, Factor, Ref, Term
from .layer_norm import standardize, standardize_backward

OVER_BATCH = (1, 3)   # the N examples and the positions of a feature, in ``BatchNorm._grouped``'s layout
SYMBOLS = {"dy": "δ", "x": "x", "gamma": "γ", "beta": "β"}


class Statistics:
    """What the forward pass keeps: x̂, 1/σ, the batch mean and (biased) variance of each group."""

    __slots__ = ("xhat", "inv_std", "mean", "var")

    def __init__(self, xhat, inv_std, mean, var):
        self.xhat, self.inv_std, self.mean, self.var = xhat, inv_std, mean, var


@register
class BatchNorm(Layer):
    kind = "batch_norm"
    settings = (
        Setting("gamma", "array", description="the scale γ, one per feature (vector) or channel (map); default 1"),
        Setting("beta", "array", description="the shift β, one per feature or channel; default 0"),
        Setting("eps", "number", default=1e-5, description="added to the variance (PyTorch's 1e-5)"),
    )
    param_names = ("gamma", "beta")
    mixes_examples = True

    # --- engine: shape rule, forward, backward, and the memory they take

    def __init__(self, features: int, eps: float = 1e-5, batch: int = 1):
        self.features, self.eps, self.batch = features, eps, batch

    def output_shape(self, in_shape):
        if in_shape[0] != self.features:
            raise ShapeError(f"gamma and beta have {self.features} values but its input has "
                             f"{in_shape[0]} {'channels' if len(in_shape) == 3 else 'features'}", "gamma")
        return tuple(in_shape)

    def param_shapes(self, in_shape):
        return {"gamma": (self.features,), "beta": (self.features,)}

    def _grouped(self, x: np.ndarray) -> np.ndarray:
        """(B, F) or (B, C, H, W) as (G, N, F, 1) or (G, N, C, H·W): G groups of N examples."""
        return x.reshape(len(x) // self.batch, self.batch, self.features, -1)

    def forward(self, x, params):
        xhat, inv_std, mean, var = standardize(self._grouped(x), self.eps, axis=OVER_BATCH)
        gamma, beta = params["gamma"][:, None], params["beta"][:, None]
        y = (gamma * xhat + beta).reshape(x.shape)
        return y, Statistics(xhat, inv_std, mean, var)

    def backward(self, dy, cache, params):
        d = self._grouped(dy)
        xhat = cache.xhat
        gamma = params["gamma"][:, None]
        dx = standardize_backward(d, xhat, gamma * cache.inv_std, axis=OVER_BATCH)
        return dx.reshape(dy.shape), {"gamma": (d * xhat).sum(axis=(0, 1, 3)), "beta": d.sum(axis=(0, 1, 3))}

    def statistics(self, cache) -> dict[str, np.ndarray]:
        """The batch mean and variance of each feature (of the unperturbed run: one group)."""
        return {"mean": cache.mean[0].reshape(-1), "var": cache.var[0].reshape(-1)}

    # --- explanation: the chain rule one step, for cnngrad explain (index with the example first)

    def _means(self, cache, dy, feature):
        d = self._grouped(dy)[0, :, feature]
        xhat = cache.xhat[0, :, feature]
        return float(d.mean()), float((d * xhat).mean())

    def explain_input(self, index, x, cache, dy, params) -> Explanation:
        """∂E/∂x[n,c,…] = (γ/σ) δ[n,c,…] − (γ/σ) mean δ − (γ/σ) x̂[n,c,…] mean(δ x̂): the closed
        form's three terms (the mean and variance depend on every example's x)."""
        feature = index[1]
        scale = float(params["gamma"][feature] * cache.inv_std[0, 0, feature, 0])
        mean_dy, mean_dyx = self._means(cache, dy, feature)
        position = int(np.ravel_multi_index(index[2:], x.shape[2:])) if x.ndim > 2 else 0
        xhat = float(cache.xhat[0, index[0], feature, position])
        over = "the N examples" if x.ndim == 2 else "the N examples and H·W positions"
        gamma_sigma = Factor(scale, None, f"γ/σ = {scale:.6g}")
        terms = [Term([gamma_sigma, Factor(float(dy[tuple(index)]), Ref("dy", tuple(index)))]),
                 Term([gamma_sigma, Factor(-mean_dy, None, f"−mean(δ) = {-mean_dy:.6g}")]),
                 Term([gamma_sigma, Factor(-xhat, Ref("x", tuple(index)), "−x̂({})"),
                       Factor(mean_dyx, None, f"mean(δ·x̂) = {mean_dyx:.6g}")])]
        notes = [[f"feature {feature}: batch mean ", float(cache.mean[0, 0, feature, 0]), ", variance ",
                  float(cache.var[0, 0, feature, 0]), f" (biased), σ = √(var + {self.eps:g}) = ",
                  float(1.0 / cache.inv_std[0, 0, feature, 0]), f"; means over {over}"]]
        return Explanation("∂E/∂x[n,c] = (γ[c]/σ[c]) (δ[n,c] − mean(δ) − x̂[n,c] · mean(δ·x̂)), "
                           "x̂[n,c] = (x[n,c] − μ[c])/σ[c]", terms, notes, SYMBOLS)

    def explain_param(self, pname, index, x, cache, dy, params) -> Explanation:
        """∂E/∂γ[c] = Σ δ x̂ and ∂E/∂β[c] = Σ δ, over every example (and position) of feature c."""
        feature = index[0]
        positions = [(n,) + tuple(int(i) for i in rest) for n in range(self.batch)
                     for rest in np.ndindex(*x.shape[2:])] if x.ndim > 2 else [(n,) for n in range(self.batch)]
        terms = []
        for where in positions:
            at = (where[0], feature) + where[1:]
            delta = Factor(float(dy[at]), Ref("dy", at))
            if pname == "beta":
                terms.append(Term([delta]))
            else:
                flat = np.ravel_multi_index(where[1:], x.shape[2:]) if x.ndim > 2 else 0
                terms.append(Term([delta, Factor(float(cache.xhat[0, where[0], feature, flat]), Ref("x", at), "x̂({})")]))
        formula = "∂E/∂β[c] = Σ δ[n,c,…]" if pname == "beta" else \
            "∂E/∂γ[c] = Σ δ[n,c,…] · x̂[n,c,…], x̂[n,c,…] = (x[n,c,…] − μ[c])/σ[c]"
        return Explanation(formula + " over the examples (and positions) of feature c", terms, symbols=SYMBOLS)

    # --- checker hooks: rounding size, work, kinks, exact shortcuts

    def term_magnitude(self, x, y, params):
        """|γ x̂| + |β|, and the mean's terms |x| scaled by γ/σ: the sizes the rounding scales with."""
        g = self._grouped(x)
        mean = g.mean(axis=(1, 3), keepdims=True)
        inv_std = 1.0 / np.sqrt(((g - mean) ** 2).mean(axis=(1, 3), keepdims=True) + self.eps)
        gamma = np.abs(params["gamma"][:, None])
        size = gamma * inv_std * (np.abs(g) + np.abs(mean)) + np.abs(params["beta"][:, None])
        return size.reshape(x.shape)

    def operations(self, in_shape):
        """A handful of passes over the input (mean, variance, normalize, scale)."""
        return 6 * math.prod(in_shape)

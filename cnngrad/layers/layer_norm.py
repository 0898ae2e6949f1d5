"""Layer normalisation (PyTorch's ``F.layer_norm(x, x.shape[1:], γ, β, eps)``): each example
standardised over all its entries (C, H, W) or a vector's features, then scaled and shifted
per entry.

    μ = (1/N) Σ_k x[k]    σ = √((1/N) Σ_k (x[k] − μ)² + eps)    x̂ = (x − μ)/σ    y = γ ⊙ x̂ + β
    ∂E/∂x[k] = (1/σ) (g[k] − mean(g) − x̂[k] · mean(g ⊙ x̂))   with g = γ ⊙ δ
    ∂E/∂γ = δ ⊙ x̂,  ∂E/∂β = δ   (summed over the batch)

``standardize`` and ``standardize_backward`` are the normalisation over an axis, shared with group
normalisation (group_norm.py), which standardises each group of channels the same way, and batch
normalisation (batchnorm.py), which standardises each feature over the examples.
"""
from __future__ import annotations

import math

import numpy as np

from .base import Layer, ParamError, Setting, register
from .explanation import Explanation, Factor, Ref, Term

SYMBOLS = {"dy": "δ", "x": "x", "gamma": "γ", "beta": "β"}
EPS = 1e-5   # PyTorch's default


def standardize(x: np.ndarray, eps: float, axis=-1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x̂, 1/σ, μ, variance) over ``axis`` (an axis or a tuple of them; kept as size 1): x̂ = (x − μ)/σ
    with σ = √(variance + eps), the variance biased (divided by N) and computed from the centred
    values (two passes, no cancellation)."""
    mean = x.mean(axis=axis, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=axis, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    return centred * inv_std, inv_std, mean, var


def standardize_backward(g: np.ndarray, xhat: np.ndarray, scale: np.ndarray, axis=-1) -> np.ndarray:
    """∂E/∂x from g = ∂E/∂x̂ over ``axis``: (1/σ) (g − mean(g) − x̂ · mean(g ⊙ x̂)); ``scale`` is 1/σ,
    or γ/σ where g is δ and γ is one number per standardised set (batch norm)."""
    return scale * (g - g.mean(axis=axis, keepdims=True) - xhat * (g * xhat).mean(axis=axis, keepdims=True))


def standardize_derivative(xhat: np.ndarray, inv_std: float, j: np.ndarray, k: int) -> np.ndarray:
    """∂x̂[j]/∂x[k] within one standardised set of N = len(xhat) entries (flat indices):
    (1[j = k] − 1/N − x̂[j] x̂[k]/N) / σ."""
    count = xhat.size
    return inv_std * ((j == k) - 1.0 / count - xhat[j] * xhat[k] / count)


def entry_index(flat: int, shape) -> tuple[int, ...]:
    """The index (plain ints) of flat entry ``flat`` of an array of ``shape``."""
    return tuple(int(i) for i in np.unravel_index(flat, shape))


def derivative_text(at: tuple[int, ...]) -> str:
    """How a term names the factor ∂x̂[j]/∂x[k] (its value comes from ``standardize_derivative``)."""
    return f"∂x̂[{','.join(map(str, at))}]/∂x"


def check_eps(options) -> None:
    """eps must be positive: with 0 a constant input divides by zero."""
    if not options["eps"] > 0:
        raise ParamError(f"eps must be positive (PyTorch's default is {EPS:g}), not {options['eps']:g}", "eps")


@register
class LayerNorm(Layer):
    kind = "layer_norm"
    settings = (
        Setting("gamma", "array", 1.0, description="the scale γ: one per entry of the input (its shape), or a scalar"),
        Setting("beta", "array", 0.0, description="the shift β: one per entry of the input (its shape), or a scalar"),
        Setting("eps", "number", EPS, description="added to the variance (PyTorch's default 1e-5)"),
    )
    param_names = ("gamma", "beta")

    # --- building from a spec entry

    @classmethod
    def from_spec(cls, options, shapes):
        check_eps(options)
        return cls(**options)

    # --- engine: shape rule, forward, backward, and the memory they take

    def __init__(self, eps: float = EPS):
        self.eps = float(eps)

    def param_shapes(self, in_shape):
        return {"gamma": tuple(in_shape), "beta": tuple(in_shape)}

    def forward(self, x, params):
        batch = x.shape[0]
        xhat, inv_std = standardize(x.reshape(batch, -1), self.eps)[:2]
        xhat = xhat.reshape(x.shape)
        return params["gamma"] * xhat + params["beta"], (xhat, inv_std)

    def backward(self, dy, cache, params):
        xhat, inv_std = cache
        batch = dy.shape[0]
        g = (params["gamma"] * dy).reshape(batch, -1)
        dx = standardize_backward(g, xhat.reshape(batch, -1), inv_std).reshape(dy.shape)
        return dx, {"gamma": (dy * xhat).sum(axis=0), "beta": dy.sum(axis=0)}

    def memory(self, in_shape):
        """Kept: the output, x̂ (for backward) and the input's gradient; temporary: two arrays as large."""
        size = math.prod(in_shape)
        return 3 * size, 2 * size

    # --- explanation: the chain rule one step, for cnngrad explain

    def explain_input(self, index, x, cache, dy, params) -> Explanation:
        """∂E/∂x[k] = Σ_j δ[j] · γ[j] · ∂x̂[j]/∂x[k], every entry j of the example (all share μ and σ)."""
        xhat, inv_std = cache[0][0].ravel(), float(cache[1][0, 0])
        k = int(np.ravel_multi_index(index, cache[0].shape[1:]))
        entries = np.arange(xhat.size)
        local = standardize_derivative(xhat, inv_std, entries, k)
        gamma, delta = params["gamma"].ravel(), dy[0].ravel()
        shape = cache[0].shape[1:]
        terms = []
        for j in entries:
            at = entry_index(j, shape)
            terms.append(Term([Factor(float(delta[j]), Ref("dy", at)), Factor(float(gamma[j]), Ref("gamma", at)),
                               Factor(float(local[j]), None, derivative_text(at))]))
        return Explanation("∂E/∂x[k] = Σ_j δ[j] · γ[j] · (1[j=k] − 1/N − x̂[j]·x̂[k]/N)/σ over every entry j "
                           "(x̂ = (x − μ)/σ)", terms, _notes(xhat.size, inv_std, self.eps), SYMBOLS)

    def explain_param(self, pname, index, x, cache, dy, params) -> Explanation:
        """∂E/∂γ[k] = δ[k] · x̂[k]; ∂E/∂β[k] = δ[k]."""
        delta = Factor(float(dy[(0,) + tuple(index)]), Ref("dy", tuple(index)))
        if pname == "beta":
            return Explanation("∂E/∂β[k] = δ[k]", [Term([delta])], symbols=SYMBOLS)
        xhat = float(cache[0][(0,) + tuple(index)])
        return Explanation("∂E/∂γ[k] = δ[k] · x̂[k] (x̂ = (x − μ)/σ)",
                           [Term([delta, Factor(xhat, None, f"x̂[{','.join(map(str, index))}]")])],
                           _notes(cache[0][0].size, float(cache[1][0, 0]), self.eps), SYMBOLS)

    # --- checker hooks: rounding size, work, kinks, exact shortcuts

    def term_magnitude(self, x, y, params):
        """|γ| (|x| + mean |x|)/σ + |β|: x − μ rounds relative to |x| and |μ|, not to their difference."""
        batch = x.shape[0]
        flat = np.abs(x.reshape(batch, -1))
        inv_std = standardize(x.reshape(batch, -1), self.eps)[1]
        scale = ((flat + flat.mean(axis=-1, keepdims=True)) * inv_std).reshape(x.shape)
        return np.abs(params["gamma"]) * scale + np.abs(params["beta"])

    def operations(self, in_shape):
        """About eight operations per entry (mean, variance, standardise, scale and shift)."""
        return 8 * math.prod(in_shape)


def _notes(count: int, inv_std: float, eps: float) -> list[list]:
    return [[f"N = {count} entries share μ and σ = {1.0 / inv_std:.6g} (eps {eps:g})"]]

"""Group normalisation (PyTorch's ``F.group_norm(x, G, γ, β, eps)``): the C channels of each
example split into G groups of C/G consecutive channels, each group standardised over its
channels and positions together, then scaled and shifted per channel.

    x̂[c, p, q] = (x[c, p, q] − μ_g)/σ_g  over the group g of c    y[c, p, q] = γ[c] · x̂[c, p, q] + β[c]
    ∂E/∂x = (1/σ_g) (g − mean_g(g) − x̂ · mean_g(g ⊙ x̂))   with g = γ[c] · δ   (as layer_norm, per group)
    ∂E/∂γ[c] = Σ_{p,q} δ[c,p,q] · x̂[c,p,q],  ∂E/∂β[c] = Σ_{p,q} δ[c,p,q]

A vector input is C channels of one entry each (PyTorch's (B, C) form).
"""
from __future__ import annotations

import math

import numpy as np

from .base import Layer, Setting, ShapeError, register
from .explanation import Explanation, Factor, Ref, Term
from .layer_norm import (EPS, check_eps, derivative_text, entry_index, standardize, standardize_backward,
                         standardize_derivative)

SYMBOLS = {"dy": "δ", "x": "x", "gamma": "γ", "beta": "β"}


@register
class GroupNorm(Layer):
    kind = "group_norm"
    settings = (
        Setting("groups", "integer", required=True, minimum=1,
                description="G: the channels split into G groups of C/G, each standardised on its own"),
        Setting("gamma", "array", 1.0, description="the scale γ: one per channel (C), or a scalar"),
        Setting("beta", "array", 0.0, description="the shift β: one per channel (C), or a scalar"),
        Setting("eps", "number", EPS, description="added to the variance (PyTorch's default 1e-5)"),
    )
    param_names = ("gamma", "beta")

    # --- building from a spec entry

    @classmethod
    def from_spec(cls, options, shapes):
        check_eps(options)
        return cls(**options)

    # --- engine: shape rule, forward, backward, and the memory they take

    def __init__(self, groups: int, eps: float = EPS):
        self.groups, self.eps = int(groups), float(eps)

    def output_shape(self, in_shape):
        if in_shape[0] % self.groups:
            raise ShapeError(f"groups {self.groups} must divide the {in_shape[0]} channel(s) of its input",
                             "groups", f"write a divisor of {in_shape[0]}")
        return tuple(in_shape)

    def param_shapes(self, in_shape):
        return {"gamma": (in_shape[0],), "beta": (in_shape[0],)}

    def _per_channel(self, value, ndim: int):
        """A per-channel array (C,) broadcast against (B, C, ...) of ``ndim`` axes."""
        return value.reshape((-1,) + (1,) * (ndim - 2))

    def forward(self, x, params):
        xhat, inv_std = standardize(x.reshape(x.shape[0], self.groups, -1), self.eps)[:2]
        xhat = xhat.reshape(x.shape)
        y = self._per_channel(params["gamma"], x.ndim) * xhat + self._per_channel(params["beta"], x.ndim)
        return y, (xhat, inv_std)

    def backward(self, dy, cache, params):
        xhat, inv_std = cache
        grouped = (dy.shape[0], self.groups, -1)
        g = (self._per_channel(params["gamma"], dy.ndim) * dy).reshape(grouped)
        dx = standardize_backward(g, xhat.reshape(grouped), inv_std).reshape(dy.shape)
        spatial = tuple(range(2, dy.ndim))
        return dx, {"gamma": (dy * xhat).sum(axis=(0,) + spatial), "beta": dy.sum(axis=(0,) + spatial)}

    def memory(self, in_shape):
        """Kept: the output, x̂ (for backward) and the input's gradient; temporary: two arrays as large."""
        size = math.prod(in_shape)
        return 3 * size, 2 * size

    # --- explanation: the chain rule one step, for cnngrad explain

    def _group(self, shape, channel: int) -> tuple[np.ndarray, int]:
        """Flat indices (into one example) of the entries of ``channel``'s group, and the group."""
        per_group = shape[0] // self.groups
        group = channel // per_group
        size = math.prod(shape[1:])
        return np.arange(group * per_group * size, (group + 1) * per_group * size), group

    def explain_input(self, index, x, cache, dy, params) -> Explanation:
        """∂E/∂x[k] = Σ_j δ[j] · γ[c_j] · ∂x̂[j]/∂x[k] over the entries j of k's group."""
        shape = cache[0].shape[1:]
        entries, group = self._group(shape, index[0])
        xhat = cache[0][0].ravel()[entries]
        inv_std = float(cache[1][0, group, 0])
        k = int(np.ravel_multi_index(index, shape)) - int(entries[0])
        local = standardize_derivative(xhat, inv_std, np.arange(entries.size), k)
        delta = dy[0].ravel()[entries]
        terms = []
        for j, flat in enumerate(entries):
            at = entry_index(flat, shape)
            terms.append(Term([Factor(float(delta[j]), Ref("dy", at)),
                               Factor(float(params["gamma"][at[0]]), Ref("gamma", (at[0],))),
                               Factor(float(local[j]), None, derivative_text(at))]))
        return Explanation("∂E/∂x[k] = Σ_j δ[j] · γ[c_j] · (1[j=k] − 1/N − x̂[j]·x̂[k]/N)/σ over the N entries j "
                           "of k's group", terms, self._notes(group, entries.size, inv_std), SYMBOLS)

    def explain_param(self, pname, index, x, cache, dy, params) -> Explanation:
        """∂E/∂γ[c] = Σ_{p,q} δ[c,p,q] · x̂[c,p,q]; ∂E/∂β[c] = Σ_{p,q} δ[c,p,q]."""
        channel = index[0]
        shape = cache[0].shape[1:]
        terms = []
        for rest in np.ndindex(*shape[1:]):
            at = (channel,) + tuple(int(i) for i in rest)
            factors = [Factor(float(dy[(0,) + at]), Ref("dy", at))]
            if pname == "gamma":
                xhat = float(cache[0][(0,) + at])
                factors.append(Factor(xhat, None, f"x̂[{','.join(map(str, at))}]"))
            terms.append(Term(factors))
        formula = "∂E/∂γ[c] = Σ_{p,q} δ[c,p,q] · x̂[c,p,q]" if pname == "gamma" else "∂E/∂β[c] = Σ_{p,q} δ[c,p,q]"
        return Explanation(formula, terms, symbols=SYMBOLS)

    def _notes(self, group: int, count: int, inv_std: float) -> list[list]:
        return [[f"group {group} of {self.groups}: N = {count} entries share μ and σ = {1.0 / inv_std:.6g} "
                 f"(eps {self.eps:g})"]]

    # --- checker hooks: rounding size, work, kinks, exact shortcuts

    def term_magnitude(self, x, y, params):
        """|γ| (|x| + mean_g |x|)/σ_g + |β|: x − μ rounds relative to |x| and |μ|, not to their difference."""
        grouped = x.reshape(x.shape[0], self.groups, -1)
        flat = np.abs(grouped)
        inv_std = standardize(grouped, self.eps)[1]
        scale = ((flat + flat.mean(axis=-1, keepdims=True)) * inv_std).reshape(x.shape)
        return (np.abs(self._per_channel(params["gamma"], x.ndim)) * scale
                + np.abs(self._per_channel(params["beta"], x.ndim)))

    def operations(self, in_shape):
        """About eight operations per entry (mean, variance, standardise, scale and shift)."""
        return 8 * math.prod(in_shape)

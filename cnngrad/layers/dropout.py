"""Inverted dropout with a fixed mask: y = x ⊙ m / (1 − p), ∂E/∂x = ∂E/∂y ⊙ m / (1 − p).

m is a 0/1 array of the input's shape, written in the spec or drawn from a seed (NumPy's
``default_rng(seed).random(shape) >= p``, the input's user shape in row-major order: an entry is
kept where its draw is at least p), so a run is reproducible and agrees with PyTorch given the
same mask (``x * mask / (1 - p)``). The mask is not a parameter: it has no gradient and is not
checked.
"""
from __future__ import annotations

import numpy as np

from .base import Layer, Setting, register
from .explanation import Explanation, Factor, Ref, Term


@register
class Dropout(Layer):
    kind = "dropout"
    affine_in_input = True     # a fixed mask
    settings = (
        Setting("p", "number", 0.5, description="the probability of dropping an entry, 0 ≤ p < 1; kept "
                                                "entries are scaled by 1/(1 − p)"),
        Setting("mask", "array", description="0/1 of the input's shape: 1 keeps an entry (give mask or seed)"),
        Setting("seed", "integer", description="draw the mask: default_rng(seed).random(shape) ≥ p keeps"),
    )

    # --- engine: shape rule, forward, backward, and the memory they take

    def __init__(self, p: float, mask: np.ndarray):
        """``mask`` in the engine's shape of one example (no batch axis)."""
        self.p = float(p)
        self.mask = np.asarray(mask, dtype=np.float64)
        self.scale = 1.0 / (1.0 - self.p)

    def forward(self, x, params):
        return x * (self.mask * self.scale), None

    def backward(self, dy, cache, params):
        return dy * (self.mask * self.scale), {}

    # --- explanation: the chain rule one step, for cnngrad explain

    def explain_input(self, index, x, cache, dy, params) -> Explanation:
        """∂E/∂x[i] = δ[i] · m[i] / (1 − p): one term, 0 where the entry was dropped."""
        at = (0,) + tuple(index)
        kept = self.mask[tuple(index)] == 1
        factor = Factor(self.scale if kept else 0.0, None,
                        f"m/(1 − p) = 1/(1 − {self.p:g})" if kept else "0 (dropped: m = 0)")
        return Explanation(f"∂E/∂x[i] = δ[i] · m[i] / (1 − p), m the dropout mask, p = {self.p:g}",
                           [Term([Factor(float(dy[at]), Ref("dy", tuple(index))), factor])],
                           [["mask at this entry: ", "1 (kept)" if kept else "0 (dropped)"]],
                           {"dy": "δ", "x": "x"})

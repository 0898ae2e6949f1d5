"""Losses: each gives the loss of every example in a batch and ∂E/∂(final output).

squared_error         E = ½ Σ (t − y)²                 ∂E/∂y = y − t
mse                   E = mean (t − y)²                 ∂E/∂y = 2 (y − t) / n
cross_entropy         E = −Σ t log y                    ∂E/∂y = −t / y
binary_cross_entropy  E = −Σ [t log y + (1−t) log(1−y)]  ∂E/∂y = −t / y + (1 − t) / (1 − y)
none                  ∂E/∂y is the given upstream gradient t (so E = Σ t·y, reported as no loss)

Right after the activation they are built for, the entropy losses are computed from that
layer's input z (the logits) in a fused form that stays finite for logits of ±1000:
softmax + cross_entropy: E = −Σ t log_softmax(z),  ∂E/∂z = y Σt − t
sigmoid + binary_cross_entropy: E = Σ [max(z, 0) − t z + log(1 + e^−|z|)],  ∂E/∂z = y − t
"""
from __future__ import annotations

import numpy as np

from .layers.activations import log_softmax
from .layers.explanation import Explanation, Factor, Ref, Term

SYMBOLS = {"y": "y", "t": "t", "z": "z"}


def _sum_per_example(values: np.ndarray) -> np.ndarray:
    return values.reshape(values.shape[0], -1).sum(axis=1)


def _relative_scale(distance: np.ndarray) -> np.ndarray:
    """Step scales for probabilities: their distance from the edge, or 1 where that is 0."""
    return np.where(distance > 0, distance, 1.0)


def _entry(role: str, array: np.ndarray, index, form: str = "{}", scale: float = 1.0) -> Factor:
    """``scale`` times the entry ``index`` of ``array`` (batch axis first), as a factor."""
    return Factor(scale * float(array[(0,) + tuple(index)]), Ref(role, tuple(index)), form)


def _reciprocal(value) -> float:
    """1 / value as a float; inf at 0 (a probability that rounded to 0 or 1), without a warning."""
    with np.errstate(divide="ignore"):
        return float(1.0 / np.float64(value))


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, with 0 wherever the numerator is 0 (so 0/0 gives 0, not nan)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(numerator == 0, 0.0, numerator / denominator)


class Loss:
    """A loss; ``fuses_with`` names the activation whose input it can take directly."""

    name = ""
    fuses_with: str | None = None

    def value(self, y, t):
        raise NotImplementedError

    def grad(self, y, t):
        raise NotImplementedError

    def step_scale(self, y):
        """How far each entry of y may move in a finite difference (the step is eps times this)."""
        return np.maximum(1.0, np.abs(y))

    def fused_value(self, z, t):
        raise NotImplementedError

    def fused_grads(self, z, y, t):
        """(∂E/∂y, ∂E/∂z) from the logits z: accurate where y has rounded to 0 or 1."""
        raise NotImplementedError

    def explain(self, index, y, t) -> Explanation:
        """∂E/∂y[index] written out, from the output y and target t (batch axis first)."""
        raise NotImplementedError

    def explain_fused(self, index, z, y, t) -> Explanation:
        """∂E/∂z[index] of the fused form, z the logits."""
        raise NotImplementedError


class SquaredError(Loss):
    name = "squared_error"

    def value(self, y, t):
        return 0.5 * _sum_per_example((t - y) ** 2)

    def grad(self, y, t):
        return y - t

    def explain(self, index, y, t):
        return Explanation("∂E/∂y[k] = y[k] − t[k]", [Term([_entry("y", y, index)]),
                                                      Term([_entry("t", t, index, "−{}", -1.0)])],
                           symbols=SYMBOLS)


class MSE(Loss):
    name = "mse"

    def value(self, y, t):
        return _sum_per_example((t - y) ** 2) / y[0].size

    def grad(self, y, t):
        return 2.0 * (y - t) / y[0].size

    def explain(self, index, y, t):
        n = y[0].size
        scale = Factor(2.0 / n, None, f"2/{n}")
        return Explanation("∂E/∂y[k] = 2 (y[k] − t[k]) / n", [Term([scale, _entry("y", y, index)]),
                                                               Term([scale, _entry("t", t, index, "−{}", -1.0)])],
                           symbols=SYMBOLS)


class CrossEntropy(Loss):
    name = "cross_entropy"
    fuses_with = "softmax"

    def value(self, y, t):
        with np.errstate(divide="ignore", invalid="ignore"):
            return -_sum_per_example(np.where(t == 0, 0.0, t * np.log(y)))

    def grad(self, y, t):
        return -_safe_ratio(t, y)

    def explain(self, index, y, t):
        ratio = _reciprocal(y[(0,) + tuple(index)])
        return Explanation("∂E/∂y[k] = −t[k] / y[k]", [Term([_entry("t", t, index, "−{}", -1.0),
                                                             Factor(ratio, Ref("y", tuple(index)), "1/{}")])],
                           symbols=SYMBOLS)

    def explain_fused(self, index, z, y, t):
        total = float(t[0].sum())
        return Explanation("∂E/∂z[k] = y[k] · Σ_j t[j] − t[k] (softmax and cross-entropy together)",
                           [Term([_entry("y", y, index), Factor(total, None, f"Σt = {total:g}")]),
                            Term([_entry("t", t, index, "−{}", -1.0)])], symbols=SYMBOLS)

    def step_scale(self, y):
        """A probability moves relative to itself: log y is curved on the scale of y."""
        return _relative_scale(np.abs(y))

    def fused_value(self, z, t):
        return -_sum_per_example(np.where(t == 0, 0.0, t * log_softmax(z)))

    def fused_grads(self, z, y, t):
        total = t.reshape(t.shape[0], -1).sum(axis=1).reshape((-1,) + (1,) * (t.ndim - 1))
        with np.errstate(over="ignore", invalid="ignore"):
            output_grad = np.where(t == 0, 0.0, -t * np.exp(-log_softmax(z)))
        return output_grad, y * total - t


class BinaryCrossEntropy(Loss):
    name = "binary_cross_entropy"
    fuses_with = "sigmoid"

    def value(self, y, t):
        with np.errstate(divide="ignore", invalid="ignore"):
            positive = np.where(t == 0, 0.0, t * np.log(y))
            negative = np.where(t == 1, 0.0, (1.0 - t) * np.log1p(-y))
        return -_sum_per_example(positive + negative)

    def grad(self, y, t):
        return -_safe_ratio(t, y) + _safe_ratio(1.0 - t, 1.0 - y)

    def explain(self, index, y, t):
        at = (0,) + tuple(index)
        return Explanation("∂E/∂y[k] = −t[k] / y[k] + (1 − t[k]) / (1 − y[k])",
                           [Term([_entry("t", t, index, "−{}", -1.0),
                                  Factor(_reciprocal(y[at]), Ref("y", tuple(index)), "1/{}")]),
                            Term([_entry("t", 1.0 - t, index, "(1 − {})"),
                                  Factor(_reciprocal(1.0 - y[at]), Ref("y", tuple(index)),
                                         "1/(1 − {})")])], symbols=SYMBOLS)

    def explain_fused(self, index, z, y, t):
        return Explanation("∂E/∂z[k] = y[k] − t[k] (sigmoid and binary cross-entropy together)",
                           [Term([_entry("y", y, index)]), Term([_entry("t", t, index, "−{}", -1.0)])],
                           symbols=SYMBOLS)

    def step_scale(self, y):
        """A probability moves relative to its distance from 0 or 1, where log is curved."""
        return _relative_scale(np.minimum(np.abs(y), np.abs(1.0 - y)))

    def fused_value(self, z, t):
        return _sum_per_example(np.maximum(z, 0.0) - t * z + np.log1p(np.exp(-np.abs(z))))

    def fused_grads(self, z, y, t):
        with np.errstate(over="ignore", invalid="ignore"):   # 1/y = 1 + e^−z and 1/(1−y) = 1 + e^z, exactly
            output_grad = (np.where(t == 0, 0.0, -t * (1.0 + np.exp(-z)))
                           + np.where(t == 1, 0.0, (1.0 - t) * (1.0 + np.exp(z))))
        return output_grad, y - t


class Upstream(Loss):
    """`loss: none`: the target is ∂E/∂y itself, so E = Σ t·y is the loss it is the gradient of."""

    name = "none"

    def value(self, y, t):
        return _sum_per_example(t * y)

    def grad(self, y, t):
        return np.broadcast_to(t, y.shape).astype(np.float64)

    def explain(self, index, y, t):
        return Explanation("∂E/∂y[k] = t[k] (loss none: the target is the given upstream_grad)",
                           [Term([_entry("t", t, index)])], symbols=SYMBOLS)


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (SquaredError, MSE, CrossEntropy, BinaryCrossEntropy, Upstream)
}

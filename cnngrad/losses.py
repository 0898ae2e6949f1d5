"""Losses: each gives the loss of every example in a batch and ∂E/∂(final output).

squared_error         E = ½ Σ (t − y)²                 ∂E/∂y = y − t
mse                   E = mean (t − y)²                 ∂E/∂y = 2 (y − t) / n
cross_entropy         E = −Σ t log y                    ∂E/∂y = −t / y
binary_cross_entropy  E = −Σ [t log y + (1−t) log(1−y)]  ∂E/∂y = −t / y + (1 − t) / (1 − y)
none                  ∂E/∂y is the given upstream gradient t (so E = Σ t·y, reported as no loss)
multiclass_svm        E = Σ_{j≠c} max(0, y_j − y_c + Δ)    ∂E/∂y_j = 1[y_j − y_c + Δ > 0] (j ≠ c),
                                                         ∂E/∂y_c = −Σ_{j≠c} 1[y_j − y_c + Δ > 0]

The logits forms (``{cross_entropy: {from: logits}}``) read the final output as logits z, as
PyTorch's F.cross_entropy and F.binary_cross_entropy_with_logits (reduction 'sum') do, and stay
finite for logits of ±1000:
cross_entropy from logits         E = −Σ t log_softmax(z),                    ∂E/∂z = softmax(z) Σt − t
binary_cross_entropy from logits  E = Σ [max(z, 0) − t z + log(1 + e^−|z|)],  ∂E/∂z = σ(z) − t
The probability forms, right after the activation they are built for (softmax, sigmoid), are
computed by these from that layer's input (fused).
"""
from __future__ import annotations

import numpy as np

from .layers.activations import log_softmax, stable_sigmoid
from .layers.explanation import Explanation, Factor, Ref, Term

SYMBOLS = {"y": "y", "t": "t", "z": "z"}
LOGIT_SYMBOLS = {"y": "z", "t": "t"}   # a logits form's output y is the logits z


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


def _first(mask: np.ndarray) -> tuple[int, ...] | None:
    """The engine index (no batch axis) of the first True entry of example 0, or None."""
    found = np.argwhere(mask[0])
    return tuple(int(i) for i in found[0]) if len(found) else None


def _at(name: str, index: tuple[int, ...]) -> str:
    """``conv1[0, 2]``: a quantity entry as messages name it."""
    return f"{name}[{', '.join(map(str, index))}]" if index else name


def _per_example_total(t: np.ndarray) -> np.ndarray:
    """Σ t over each example, shaped to broadcast against t."""
    return _sum_per_example(t).reshape((-1,) + (1,) * (t.ndim - 1))


OVERFLOW = "the sum overflowed float64"


class Loss:
    """A loss; ``fuses_with`` names the activation whose input it can take directly, and
    ``logits_form`` is the loss it then computes from that input."""

    name = ""
    fuses_with: str | None = None
    logits_form: type[Loss] | None = None
    options: tuple[str, ...] = ()     # numeric settings of `loss: {name: {option: value}}`

    @property
    def label(self) -> str:
        """How output names the loss (``cross_entropy``, ``cross_entropy from logits``)."""
        return self.name

    def overflow_cause(self, y, t, name: str) -> str:
        """Why the loss of ``y`` (what it read, the quantity ``name``) and target ``t`` is not
        finite, in words; both in the user's rank with a batch axis of 1."""
        return OVERFLOW

    def value(self, y, t):
        raise NotImplementedError

    def grad(self, y, t):
        raise NotImplementedError

    def step_scale(self, y):
        """How far each entry of y may move in a finite difference (the step is eps times this)."""
        return np.maximum(1.0, np.abs(y))

    def pattern(self, y, t) -> np.ndarray | None:
        """Which smooth piece the loss of (y, t) sits on, batch axis first, as a layer's ``pattern``
        (two runs whose patterns differ straddle a kink); None for a smooth loss."""
        return None

    def fused_grads(self, z, y, t):
        """(∂E/∂y, ∂E/∂z) from the logits z: accurate where y has rounded to 0 or 1."""
        raise NotImplementedError

    def explain(self, index, y, t) -> Explanation:
        """∂E/∂y[index] written out, from the output y and target t (batch axis first)."""
        raise NotImplementedError

    def explain_fused(self, index, z, y, t) -> Explanation:
        """∂E/∂z[index] of the fused form, z the logits."""
        raise NotImplementedError


def _square_overflow(y, t, name: str) -> str:
    """Why (t − y)² is not finite: some |t − y| is beyond √(float64's largest), about 1.3e154."""
    with np.errstate(over="ignore", invalid="ignore"):
        gap = np.abs(t - y)
    worst = _first(gap == gap.max())
    return (f"(t − y)² overflowed float64: {_at(name, worst)} is {float(y[(0,) + worst]):.6g} and "
            f"{_at('target', worst)} {float(t[(0,) + worst]):.6g} (a square beyond 1.8e308 is infinite)")


class SquaredError(Loss):
    name = "squared_error"

    def overflow_cause(self, y, t, name):
        return _square_overflow(y, t, name)

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

    def overflow_cause(self, y, t, name):
        return _square_overflow(y, t, name)

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


class CrossEntropyLogits(Loss):
    """``{cross_entropy: {from: logits}}``: E = −Σ t log_softmax(z), PyTorch's F.cross_entropy
    (softmax over all entries of the example, as the softmax layer)."""

    name = "cross_entropy"
    label = "cross_entropy from logits"

    def value(self, z, t):
        """0 · log 0 is taken as 0 (also where log_softmax is −inf, beyond float64)."""
        with np.errstate(invalid="ignore"):
            return -_sum_per_example(np.where(t == 0, 0.0, t * log_softmax(z)))

    def grad(self, z, t):
        return np.exp(log_softmax(z)) * _per_example_total(t) - t

    def explain(self, index, z, t):
        total = float(t[0].sum())
        p = float(np.exp(log_softmax(z))[(0,) + tuple(index)])
        return Explanation("∂E/∂z[k] = softmax(z)[k] · Σ_j t[j] − t[k], softmax(z)[k] = e^z[k] / Σ_j e^z[j]",
                           [Term([Factor(p, Ref("y", tuple(index)), "e^{}/Σe^z"),
                                  Factor(total, None, f"Σt = {total:g}")]),
                            Term([_entry("t", t, index, "−{}", -1.0)])], symbols=LOGIT_SYMBOLS)

    def overflow_cause(self, z, t, name):
        with np.errstate(over="ignore", invalid="ignore"):
            where = _first(np.isinf(log_softmax(z)) & (t > 0))
        if where is None:
            return OVERFLOW
        return (f"the logits {name} range from {float(z.min()):.6g} to {float(z.max()):.6g}, too far apart "
                f"for float64, so log_softmax at {_at(name, where)} is −inf")


class BinaryCrossEntropyLogits(Loss):
    """``{binary_cross_entropy: {from: logits}}``: E = Σ [max(z, 0) − t z + log(1 + e^−|z|)],
    PyTorch's F.binary_cross_entropy_with_logits with reduction 'sum'."""

    name = "binary_cross_entropy"
    label = "binary_cross_entropy from logits"

    def value(self, z, t):
        """−[t log σ(z) + (1 − t) log(1 − σ(z))] written so that nothing overflows."""
        return _sum_per_example(np.maximum(z, 0.0) - t * z + np.log1p(np.exp(-np.abs(z))))

    def grad(self, z, t):
        return stable_sigmoid(z) - t

    def explain(self, index, z, t):
        at = (0,) + tuple(index)
        return Explanation("∂E/∂z[k] = σ(z[k]) − t[k]",
                           [Term([Factor(float(stable_sigmoid(z[at])), Ref("y", tuple(index)), "σ({})")]),
                            Term([_entry("t", t, index, "−{}", -1.0)])], symbols=LOGIT_SYMBOLS)


class CrossEntropy(Loss):
    name = "cross_entropy"
    fuses_with = "softmax"
    logits_form = CrossEntropyLogits

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

    def overflow_cause(self, y, t, name):
        where = _first((y == 0) & (t > 0))
        if where is None:
            return OVERFLOW
        return (f"{_at(name, where)} is exactly 0 where {_at('target', where)} is "
                f"{float(t[(0,) + where]):g}, and −log 0 is infinite")

    def fused_grads(self, z, y, t):
        with np.errstate(over="ignore", invalid="ignore"):
            output_grad = np.where(t == 0, 0.0, -t * np.exp(-log_softmax(z)))
        return output_grad, y * _per_example_total(t) - t


class BinaryCrossEntropy(Loss):
    name = "binary_cross_entropy"
    fuses_with = "sigmoid"
    logits_form = BinaryCrossEntropyLogits

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

    def overflow_cause(self, y, t, name):
        for edge, needs, log in ((0.0, t > 0, "−t log y"), (1.0, t < 1, "−(1 − t) log(1 − y)")):
            where = _first((y == edge) & needs)
            if where is not None:
                return (f"{_at(name, where)} is exactly {edge:g} where {_at('target', where)} is "
                        f"{float(t[(0,) + where]):g}, so {log} is infinite")
        return OVERFLOW

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


class MulticlassSVM(Loss):
    """``multiclass_svm`` (CS231n's hinge loss): E = Σ_{j≠c} max(0, s_j − s_c + Δ) over the class
    scores s, c the target class (t one-hot), Δ the margin; ∂E/∂s_j = 1[s_j − s_c + Δ > 0] for
    j ≠ c and ∂E/∂s_c = −Σ_{j≠c} 1[…] (0 at a margin of exactly 0, as PyTorch). PyTorch's
    F.multi_margin_loss(p=1, reduction='sum') is E / C."""

    name = "multiclass_svm"
    options = ("margin",)

    def __init__(self, margin: float = 1.0):
        self.margin = float(margin)

    def margins(self, s, t) -> np.ndarray:
        """s_j − s_c + Δ for every class j, and 0 (not counted) at the target class c itself."""
        true = _per_example_total(s * t)
        return np.where(t == 0, s - true + self.margin, 0.0)

    def value(self, s, t):
        return _sum_per_example(np.maximum(self.margins(s, t), 0.0))

    def grad(self, s, t):
        active = (self.margins(s, t) > 0).astype(np.float64)
        return active - t * _per_example_total(active)

    def pattern(self, s, t):
        """Which margins are open (> 0): the hinge's kink is at a margin of 0."""
        return self.margins(s, t) > 0

    def explain(self, index, s, t):
        c = int(np.argmax(t[0]))
        k = int(index[0])
        m = self.margins(s, t)[0]
        formula = (f"E = Σ_(j≠c) max(0, y[j] − y[c] + Δ), c = {c} the target class, Δ = {self.margin:g}; "
                   f"∂E/∂y[k] = 1[y[k] − y[c] + Δ > 0] for k ≠ c, "
                   f"∂E/∂y[c] = −Σ_(j≠c) 1[y[j] − y[c] + Δ > 0]")
        others = [j for j in range(s.shape[1]) if j != c] if k == c else [k]
        sign, form = (-1.0, "−1[{} − y[c] + Δ > 0]") if k == c else (1.0, "1[{} − y[c] + Δ > 0]")
        terms = [Term([Factor(sign * float(m[j] > 0), Ref("y", (j,)), form)]) for j in others]
        notes = [[f"margin of class {j}: ", Ref("y", (j,)), " − ", Ref("y", (c,)), f" + {self.margin:g} = ",
                  float(m[j]), " > 0: counts" if m[j] > 0 else " ≤ 0: does not count (0 at exactly 0, as PyTorch)"]
                 for j in others]
        return Explanation(formula, terms, notes, symbols=SYMBOLS)


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (SquaredError, MSE, CrossEntropy, BinaryCrossEntropy, Upstream, MulticlassSVM)
}
FORMS = ("probabilities", "logits")   # what an entropy loss reads: `{cross_entropy: {from: logits}}`


def make_loss(name: str, from_logits: bool = False, settings: dict | None = None) -> Loss:
    """The loss ``name`` (a key of LOSSES); ``from_logits`` gives an entropy loss's logits form,
    ``settings`` the values of its ``options`` (multiclass_svm's margin)."""
    cls = LOSSES[name]
    return cls.logits_form() if from_logits else cls(**(settings or {}))

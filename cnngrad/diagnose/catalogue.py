"""The classic backprop mistakes: each recomputes one step of the chain the mistaken way.

A ``Mistake`` has an id (part of the JSON contract), the steps it applies to (a step kind and the
layer kinds), and ``variants(site)``: the values that step gives when the mistake is made, each
with a sentence for a student. Generic mistakes (``at_quantity``) change the quantity the user
gave itself; the others are made at any step between the user's nearest earlier value and it,
and the rest of the way is then computed right.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..layers.base import crop_map, scatter_windows
from ..quantities import value_of
from ..record import Record

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")
LARGEST_FACTOR = 100_000     # a scale factor n or 1/n beyond this is no count of anything


class Site(Record):
    """One step of the chain, about to be done: the ``chain``, the ``step``, its ``upstream`` value
    (the parent's, engine layout), the ``right`` result of the step from it, and the user's
    ``target`` value of the step's quantity when the user gave it whole (else None)."""

    __slots__ = ("chain", "step", "upstream", "right", "target")

    def __init__(self, chain, step, upstream, right, target):
        self.chain, self.step, self.upstream, self.right, self.target = chain, step, upstream, right, target

    @property
    def layer(self):
        return None if self.step.index is None else self.chain.network.layers[self.step.index]

    @property
    def kind(self) -> str | None:
        return None if self.layer is None else self.layer.kind


class Mistake(Record):
    """``steps`` are the step kinds it applies to, ``kinds`` the layer kinds (None: any)."""

    __slots__ = ("id", "steps", "kinds", "variants", "at_quantity")

    def __init__(self, id: str, steps: tuple[str, ...], kinds: tuple[str, ...] | None, variants,
                 at_quantity: bool = False):
        self.id, self.steps, self.kinds, self.variants, self.at_quantity = id, steps, kinds, variants, at_quantity

    def applies(self, site: Site, last: bool) -> bool:
        if self.at_quantity and not last:
            return False
        return site.step.kind in self.steps and (self.kinds is None or site.kind in self.kinds)


ANY = ("forward", "statistics", "losses", "data_loss", "penalty", "loss", "loss-grad", "input-grad", "param-grad")


def _sign(site):
    yield -site.right, ("every entry has the wrong sign (e.g. a loss gradient written t − y "
                        "instead of y − t)")


def _scale_words(factor: Fraction) -> str:
    if factor == 2:
        return "twice the right value: the ½ of ½Σ(y − t)² lost (Σ differentiated where ½Σ is meant)"
    if factor == Fraction(1, 2):
        return "half the right value: a ½ too many (½ written in front of a derivative of ½Σ)"
    if factor.denominator == 1:
        return (f"{factor.numerator} times the right value: a sum where a mean belongs "
                f"(a 1/{factor.numerator} left out)")
    if factor.numerator == 1:
        return f"1/{factor.denominator} of the right value: a mean over {factor.denominator} where a sum belongs"
    return f"{factor} times the right value (e.g. a mean's 1/n and a factor 2 mixed up)"


def _scaled(site):
    """The factor is fitted to the user's numbers and kept only if it is a simple one
    (n, 1/n, n/2 or 2/n): it must then bring every entry within tolerance on its own."""
    fitted = _fitted_factor(site.right, site.target)
    if fitted is None:
        return
    for factor in _simple_factors(fitted):
        yield float(factor) * site.right, _scale_words(factor)


def _fitted_factor(right: np.ndarray, target: np.ndarray | None) -> float | None:
    """The least-squares factor c of target ≈ c·right, Σ right·target / Σ right²; None
    when there is no target or no positive finite one."""
    if target is None:
        return None
    norm = float(np.sum(right * right))
    if not np.isfinite(norm) or norm == 0:
        return None
    fitted = float(np.sum(right * target)) / norm
    return fitted if np.isfinite(fitted) and fitted > 0 else None


def _simple_factors(fitted: float) -> list[Fraction]:
    """The simple factors near ``fitted`` (n, n/2, 1/n, 2/n, but not 1), in increasing order,
    with numerator and denominator at most LARGEST_FACTOR."""
    candidates = {Fraction(round(fitted * d), d) for d in (1, 2) if round(fitted * d) > 0}
    candidates |= {Fraction(n, round(n / fitted)) for n in (1, 2) if round(n / fitted) > 0}
    return [factor for factor in sorted(candidates) if factor != 1
            and factor.numerator <= LARGEST_FACTOR and factor.denominator <= LARGEST_FACTOR]


def _square_map(site) -> bool:
    shape = site.chain.user(site.step.node, site.right).shape
    return len(shape) >= 2 and shape[-1] == shape[-2] > 1


def _transposed(site):
    if _square_map(site):
        yield np.swapaxes(site.right, -1, -2), "rows and columns swapped: the transpose of the right value"


def _rotated(site):
    shape = site.chain.user(site.step.node, site.right).shape
    if len(shape) >= 2 and max(shape[-2:]) > 1:
        yield site.right[..., ::-1, ::-1], "the right value rotated by 180° (flipped up-down and left-right)"


def _rounded(site):
    """The step redone from its upstream value rounded, or cut, to k = 1…6 decimals."""
    if site.upstream is None:
        return
    parent = site.step.parent
    for k in range(1, 7):
        scale = 10.0 ** k
        for how, cut in (("truncated", np.trunc), ("rounded", np.round)):
            upstream = cut(site.upstream * scale) / scale
            if np.array_equal(upstream, site.upstream):
                continue
            value = site.chain.apply(site.step, upstream)
            yield value, f"computed from {parent} {how} to {k} decimals"


def _penalized(site, value: np.ndarray) -> np.ndarray:
    """A parameter gradient's data part made the mistaken way, with the L2 penalty's 2 λ θ added as
    the chain adds it (``regularization``), so it compares with the user's whole gradient."""
    network, step = site.chain.network, site.step
    name = f"{network.names[step.index]}.{step.param}"
    penalty = network.penalty_grad(name, site.chain.model.params[name])
    return value if penalty is None else value + penalty


def _flipped_kernel(site) -> dict:
    params = dict(site.chain.params(site.step.index))
    params["kernel"] = params["kernel"][..., ::-1, ::-1]
    return params


def _kernel_not_rotated(site):
    layer = site.layer
    dx, _ = layer.backward(site.upstream, site.chain.cache(site.step.index), _flipped_kernel(site))
    if layer.mode == "cross_correlation":
        yield dx, ("∂E/∂input correlates the deltas with the kernel as stored; it is their full "
                   "convolution with it (the deltas correlated with the kernel rotated 180°)")
    else:
        yield dx, ("∂E/∂input rotates the kernel once more, though mode: convolution has already "
                   "rotated it in the forward pass")


def _mode_swapped(site):
    layer = site.layer
    other = "convolution" if layer.mode == "cross_correlation" else "cross-correlation"
    if site.step.kind == "forward":
        yield layer.forward(site.upstream, _flipped_kernel(site))[0], \
            f"the forward pass computed {other} (the kernel rotated 180°) instead of {layer.mode.replace('_', '-')}"
    elif site.step.param == "kernel":
        data = site.right - _penalized(site, np.zeros_like(site.right))   # the penalty is not rotated
        yield _penalized(site, data[..., ::-1, ::-1]), f"the kernel gradient of {other} (rotated 180°), not of {layer.mode.replace('_', '-')}"


def _bias_not_summed(site):
    if site.step.param != "bias" or site.layer.untied_bias:
        return
    delta = site.upstream
    positions = delta.shape[2] * delta.shape[3]
    yield _penalized(site, delta.mean(axis=(0, 2, 3))), (f"the bias gradient is the mean of the {positions} "
                                                         "deltas of each filter; it is their sum")
    yield _penalized(site, delta[0, :, 0, 0]), "the bias gradient is one delta (the first); it is the sum of all the filter's deltas"


def _derivative_missing(site):
    yield site.upstream.copy(), f"the delta passed through {site.kind} without multiplying by its derivative f′"


def _derivative_of_output(site):
    y = site.chain.cache(site.step.index)       # sigmoid and tanh cache their output
    if site.kind == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-y))
        yield site.upstream * s * (1 - s), ("σ′ evaluated at the output: σ(a)(1 − σ(a)) with a already "
                                            "σ(z); it is a(1 − a)")
    else:
        yield site.upstream * (1 - np.tanh(y) ** 2), ("tanh′ evaluated at the output: 1 − tanh²(a) with a "
                                                      "already tanh(z); it is 1 − a²")


def _routed(site, weight: float) -> np.ndarray:
    """The pool's backward with every window entry given ``weight`` of its window's delta."""
    layer, cache = site.layer, site.chain.cache(site.step.index)
    flat = cache[0].reshape(cache[0].shape[:4] + (-1,))     # the windows, one row of kh·kw entries each
    dwin = (site.upstream[..., None] * np.full(flat.shape, weight)).reshape(flat.shape[:4] + layer.size)
    return crop_map(scatter_windows(dwin, cache[3], layer.stride, layer.dilation), cache[5])


def _maxpool_to_all(site):
    if site.layer.type == "max":
        yield _routed(site, 1.0), "each window's delta was sent to every entry of the window, not to its maximum only"


def _maxpool_evenly(site):
    if site.layer.type == "max":
        size = site.layer.size[0] * site.layer.size[1]
        yield _routed(site, 1.0 / size), (f"each window's delta was spread evenly over its {size} entries "
                                          "(the average pooling rule), not sent to its maximum")


def _avgpool_not_divided(site):
    if site.layer.type == "avg":
        divisor = site.chain.cache(site.step.index)[4]    # one for all windows, or each window's n
        if np.ndim(divisor) == 0:
            size = int(divisor)
            yield _routed(site, 1.0), (f"each window's delta was given whole to its {size} entries, "
                                       f"not divided by {size}")
        else:
            yield _routed(site, 1.0), "each window's delta was given whole to its entries, not divided by its n"


def _fc_not_transposed(site):
    weights = site.chain.params(site.step.index)["weights"]
    if weights.shape[0] == weights.shape[1]:
        yield site.upstream @ weights.T, "∂E/∂a computed as W δ; it is Wᵀ δ"


def _fc_preactivation(site):
    """δ zᵀ with z the value before the previous layer's activation (through a flatten too)."""
    if site.step.param != "weights":
        return
    chain, k = site.chain, site.step.index
    layers, trace, reads = chain.network.layers, chain.trace, chain.network.reads
    j = reads[k][0] - 1                 # the layer whose output the fc reads (through flattens)
    while j >= 0 and layers[j].kind == "flatten":
        j = reads[j][0] - 1
    if j < 0 or layers[j].kind not in ACTIVATIONS + ("softmax",):
        return
    z, between = trace.inputs[j], k
    flattens = []
    while reads[between][0] - 1 != j:
        between = reads[between][0] - 1
        flattens.append(layers[between])
    for flatten in reversed(flattens):
        z = flatten.forward(z, {})[0]
    yield _penalized(site, site.upstream.T @ z), (f"the weight gradient is δ·z with z the value before "
                                f"{chain.network.names[j]}'s activation; it is δ·a, after it")


def _branch_not_summed(site):
    """A value read by several layers given the part of one reader only (a residual
    connection's skip path forgotten in backprop, or only the skip path kept)."""
    others = site.chain.others(site.step.node) if site.step.kind == "input-grad" else None
    if others is None:
        return
    chain, net = site.chain, site.chain.network
    value = chain.values.index(value_of(site.step.node))
    readers = sorted(set(net.consumers[value]))
    names = [net.names[k] for k in readers]
    name = chain.values[value]
    yield site.right - others, (f"∂E/∂{name} is only what {names[0]} passes back; {name} is also read by "
                                f"{', '.join(names[1:])}, whose parts add to it (a value used twice gets the sum)")
    yield others.copy(), (f"∂E/∂{name} is only what {', '.join(names[1:])} passes back; {name} is also read "
                          f"by {names[0]}, whose part adds to it (a value used twice gets the sum)")


def _softmax_missing(site):
    yield site.upstream.copy(), "∂E/∂p (of the softmax outputs) handed to the logits as if it were ∂E/∂z"


def _flatten_swapped(site):
    from ..layers.flatten import Flatten
    layer = site.layer
    other = Flatten("F" if layer.order == "C" else "C")
    shape = other.forward(site.chain.trace.inputs[site.step.index], {})[1]
    yield other.backward(site.upstream, shape, {})[0], (
        f"the flatten's delta reshaped in {other.order} order ({'row' if other.order == 'C' else 'column'}-major); "
        f"the forward pass flattened in {layer.order} order")


def _reduction_swapped(site):
    """With ``batch: N``: the loss (or its gradient) reduced the other way, a sum of the N
    examples where ``reduction: mean`` averages them, or a mean where ``sum`` adds them. An L2
    penalty is added after the reduction, so the loss keeps it as it is."""
    network = site.chain.network
    if not site.chain.model.batched or network.batch == 1:
        return
    batch = network.batch
    penalty = float(site.chain.right["penalty"][0]) if site.step.kind == "loss" and "penalty" in site.chain.right \
        else 0.0
    data = site.right - penalty
    if network.loss.reduction == "mean":
        yield data * batch + penalty, (f"the batch's losses summed where reduction: mean averages them "
                                       f"(the 1/N = 1/{batch} left out)")
    else:
        yield data / batch + penalty, (f"the batch's losses averaged where reduction: sum adds them "
                                       f"(1/{batch} of their sum)")


CATALOGUE = (
    Mistake("conv-kernel-not-rotated", ("input-grad",), ("conv",), _kernel_not_rotated),
    Mistake("conv-mode-swapped", ("forward", "param-grad"), ("conv",), _mode_swapped),
    Mistake("bias-not-summed", ("param-grad",), ("conv",), _bias_not_summed),
    Mistake("activation-derivative-missing", ("input-grad",), ACTIVATIONS, _derivative_missing),
    Mistake("activation-derivative-of-output", ("input-grad",), ("sigmoid", "tanh"), _derivative_of_output),
    Mistake("maxpool-to-all", ("input-grad",), ("pool",), _maxpool_to_all),
    Mistake("maxpool-spread-evenly", ("input-grad",), ("pool",), _maxpool_evenly),
    Mistake("avgpool-not-divided", ("input-grad",), ("pool",), _avgpool_not_divided),
    Mistake("fc-weights-not-transposed", ("input-grad",), ("fc",), _fc_not_transposed),
    Mistake("fc-grad-uses-preactivation", ("param-grad",), ("fc",), _fc_preactivation),
    Mistake("softmax-jacobian-missing", ("input-grad",), ("softmax",), _softmax_missing),
    Mistake("flatten-order-swapped", ("input-grad",), ("flatten",), _flatten_swapped),
    Mistake("branch-delta-not-summed", ("input-grad",), None, _branch_not_summed),
    Mistake("batch-reduction-swapped", ("loss", "data_loss", "loss-grad"), None, _reduction_swapped),
    Mistake("rounded-upstream", ANY, None, _rounded, at_quantity=True),
    Mistake("sign-flipped", ANY, None, _sign, at_quantity=True),
    Mistake("scaled", ANY, None, _scaled, at_quantity=True),
    Mistake("transposed", ANY, None, _transposed, at_quantity=True),
    Mistake("rotated-180", ANY, None, _rotated, at_quantity=True),
)

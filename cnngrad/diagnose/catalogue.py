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
from ..layers.activations import log_softmax, stable_sigmoid
from ..layers.batchnorm import OVER_BATCH
from ..layers.layer_norm import standardize
from ..losses import BinaryCrossEntropy, BinaryCrossEntropyLogits, CrossEntropy, CrossEntropyLogits, MulticlassSVM
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


def _penalty_part(site) -> np.ndarray | None:
    """What the L2 penalty adds to the value of ``site``'s step: 2 λ θ to a regularized parameter's
    gradient, λ Σ θ² to the loss (and the whole ``penalty``); None where it adds nothing."""
    network, step = site.chain.network, site.step
    if network.regularization is None:
        return None
    if step.kind == "param-grad":
        name = f"{network.names[step.index]}.{step.param}"
        return network.penalty_grad(name, site.chain.model.params[name])
    if step.kind in ("loss", "penalty"):
        return site.chain.right["penalty"]
    return None


def _penalized(site, value: np.ndarray) -> np.ndarray:
    """A value's data part made the mistaken way (a parameter's gradient, the loss), with the L2
    penalty's part (2 λ θ, λ Σ θ²) added as the chain adds it, so it compares with the user's whole value."""
    penalty = _penalty_part(site)
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
        data = site.right - _penalized(site, 0.0)   # the penalty is not rotated
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
    penalty = _penalty_part(site)                 # the loss's λΣθ² (not data_loss's, not a gradient's)
    data = site.right if penalty is None else site.right - penalty
    if network.loss.reduction == "mean":
        yield _penalized(site, data * batch), (f"the batch's losses summed where reduction: mean averages them "
                                               f"(the 1/N = 1/{batch} left out)")
    else:
        yield _penalized(site, data / batch), (f"the batch's losses averaged where reduction: sum adds them "
                                               f"(1/{batch} of their sum)")


def _l2_missing(site):
    """The L2 penalty left out: a regularized parameter's gradient without 2 λ θ, the loss
    without λ Σ θ², or (of several parameters) without one parameter's part of it."""
    penalty = _penalty_part(site)
    if penalty is None or not np.any(penalty):
        return
    lam, names = site.chain.network.regularization
    if site.step.kind == "param-grad":
        yield site.right - penalty, (f"the gradient without the L2 penalty's 2λθ (λ = {lam:g}): "
                                     f"regularization adds λΣθ² to the loss, so 2λθ to this gradient")
        return
    if site.step.kind == "loss":
        yield site.right - penalty, f"the data loss alone: the L2 penalty λΣθ² (λ = {lam:g}) not added"
    for name in names if len(names) > 1 else ():
        part = lam * float(np.sum(site.chain.model.params[name] ** 2))
        if part:
            yield site.right - part, (f"the L2 penalty λΣθ² (λ = {lam:g}) without {name}'s part: it sums "
                                      f"over every parameter regularization lists ({', '.join(names)})")


def _l2_factor(site):
    """The L2 penalty's factor off by 2: its gradient λθ (the ½λΣθ² convention's) or 4λθ where
    ``l2: λ`` means λ Σ θ², the penalty ½λΣθ² or 2λΣθ² likewise."""
    penalty = _penalty_part(site)
    if penalty is None or not np.any(penalty):
        return
    lam = site.chain.network.regularization[0]
    if site.step.kind == "param-grad":
        yield site.right - penalty / 2, (f"the penalty's gradient written λθ, the gradient of ½λΣθ²; l2: {lam:g} "
                                         f"adds λΣθ², whose gradient is 2λθ")
        yield site.right + penalty, (f"the penalty's gradient written 4λθ, twice 2λθ; l2: {lam:g} is the whole "
                                     f"factor of λΣθ² (½λΣθ² is written l2: λ/2), whose gradient is 2λθ")
    else:
        yield site.right - penalty / 2, (f"the penalty written ½λΣθ²; l2: {lam:g} adds λΣθ² "
                                         f"(½λΣθ² is written l2: λ/2)")
        yield site.right + penalty, f"the penalty written 2λΣθ²; l2: {lam:g} adds λΣθ²"


def _l2_averaged(site):
    """With ``reduction: mean``, the L2 penalty averaged with the examples' losses: (Σ losses +
    λΣθ²)/N, and 2λθ/N in the gradient (the division by N placed after the penalty was added)."""
    network = site.chain.network
    penalty = _penalty_part(site)
    if penalty is None or not np.any(penalty) or network.batch < 2 or network.loss.reduction != "mean":
        return
    n = network.batch
    what = "penalty's gradient 2λθ" if site.step.kind == "param-grad" else "penalty λΣθ²"
    yield site.right - penalty + penalty / n, (f"the {what} divided by N = {n} with the examples' losses "
                                               f"(1/{n} of it): reduction: mean averages the data loss alone, "
                                               f"the penalty is added after")


def _bn_constant_statistics(site):
    """Batch norm's input gradient with its batch statistics taken as constants: dx = γ δ / σ (μ
    and σ² both), or the closed form (γ/σ)(δ − mean δ − x̂ mean(δ x̂)) without the term of σ²
    or of μ."""
    cache = site.chain.cache(site.step.index)
    d = site.upstream.reshape(cache.xhat.shape)
    scale = site.chain.params(site.step.index)["gamma"][:, None] * cache.inv_std
    mean = d.mean(axis=OVER_BATCH, keepdims=True)
    through_var = cache.xhat * (d * cache.xhat).mean(axis=OVER_BATCH, keepdims=True)
    for value, words in ((d, "the batch mean μ and variance σ² both treated as constants: dx = γ·δ/σ; they "
                             "depend on every example's x, which adds −mean(δ) − x̂·mean(δ·x̂) inside (γ/σ)(…)"),
                         (d - mean, "the variance σ² treated as a constant: the closed form "
                                    "(γ/σ)(δ − mean(δ) − x̂·mean(δ·x̂)) without its term −x̂·mean(δ·x̂)"),
                         (d - through_var, "the mean μ treated as a constant: the closed form "
                                           "(γ/σ)(δ − mean(δ) − x̂·mean(δ·x̂)) without its term −mean(δ)")):
        yield (scale * value).reshape(site.upstream.shape), words


def _bn_unbiased(site):
    """Batch norm with the unbiased variance Σ(x − μ)²/(M − 1), M the values of a feature (N, or
    N·H·W of a channel): its output, its var, its x̂ in ∂E/∂γ, and in ∂E/∂x either the gradient
    of that forward pass or the usual closed form evaluated with its σ."""
    layer, step, cache = site.layer, site.step, site.chain.cache(site.step.index)
    x = site.chain.layer_input(step.index) if step.kind in ("input-grad", "param-grad") else site.upstream
    xhat, inv_std, _, var = standardize(x.reshape(cache.xhat.shape), layer.eps, axis=OVER_BATCH)
    count = xhat.shape[1] * xhat.shape[3]
    if count < 2 or step.param in ("mean", "beta"):
        return
    unbiased = var * count / (count - 1)
    inv_std_u = 1.0 / np.sqrt(unbiased + layer.eps)
    xhat_u = xhat * (inv_std_u / inv_std)
    words = (f"the variance divided by {count - 1}, one less than its {count} values (unbiased, as torch's "
             f"x.var() by default); batch norm's variance is biased, divided by {count}")
    gamma = site.chain.params(step.index)["gamma"][:, None]
    if step.kind == "forward":
        beta = site.chain.params(step.index)["beta"][:, None]
        yield (gamma * xhat_u + beta).reshape(site.right.shape), words
    elif step.kind == "statistics":
        yield unbiased.reshape(site.right.shape), words
    elif step.kind == "param-grad":
        d = site.upstream.reshape(xhat.shape)
        yield _penalized(site, (d * xhat_u).sum(axis=(0, 1, 3))), f"∂E/∂γ = Σ δ·x̂ with x̂ normalized by {words}"
    else:
        d = site.upstream.reshape(xhat.shape)
        mean = d.mean(axis=OVER_BATCH, keepdims=True)
        sum_dx = (d * xhat_u).sum(axis=OVER_BATCH, keepdims=True)
        exact = gamma * inv_std_u * (d - mean - xhat_u * sum_dx / (count - 1))
        yield exact.reshape(site.upstream.shape), f"the gradient of batch norm with {words}"
        closed = gamma * inv_std_u * (d - mean - xhat_u * sum_dx / count)
        yield closed.reshape(site.upstream.shape), f"the closed form (γ/σ)(δ − mean(δ) − x̂·mean(δ·x̂)) with σ from {words}"


def _svm_correct_class_grad(site):
    """The hinge's gradient with the correct class's entry left 0: only the 1s of the violating
    classes, without −(their number) at the correct class."""
    network, chain = site.chain.network, site.chain
    if not isinstance(network.loss, MulticlassSVM):
        return
    active = network.loss.margins(site.upstream, chain.model.target) > 0
    yield active * network.reduction_scale(), ("the correct class's entry of ∂E/∂s left 0; it is −(the number of "
                                               "classes whose margin is violated), each one's 1 taken from it")


def _svm_correct_class_in_loss(site):
    """The hinge loss summed over every class j, the correct one too: its margin s_y − s_y + Δ
    adds Δ to each example's loss."""
    network = site.chain.network
    if not isinstance(network.loss, MulticlassSVM) or network.loss.margin == 0:
        return
    margin = network.loss.margin
    added = margin if site.step.kind == "losses" else margin * network.batch * network.reduction_scale()
    yield site.right + added, (f"the sum over the classes included the correct class j = y, whose margin "
                               f"s_y − s_y + Δ = {margin:g} adds Δ to each example's loss")


def _target_not_subtracted(site, loss, logits, probabilities, words: str):
    """A loss whose ∂E/∂z is p − t (p Σt − t for a softmax's t of another sum) written p, times the
    reduction's 1/N: of its logits form (p = ``probabilities(z)``, z the output), or through the
    activation its probability form is fused with (p that layer's output)."""
    network, step = site.chain.network, site.step
    if step.kind == "loss-grad" and isinstance(network.loss, logits):
        p = probabilities(site.upstream)
    elif (step.kind == "input-grad" and network.fused and isinstance(network.loss, loss)
          and step.index == len(network.layers) - 1):
        p = site.chain.cache(step.index)     # the activation's output, as its backward reads it
    else:
        return
    yield site.chain.completed(step, p * network.reduction_scale()), words


def _ce_target_not_subtracted(site):
    """Softmax cross-entropy's ∂E/∂z = p − y written p, the softmax's outputs."""
    return _target_not_subtracted(site, CrossEntropy, CrossEntropyLogits, lambda z: np.exp(log_softmax(z)),
                                  "∂E/∂z written as p, the softmax's outputs: the target y not subtracted "
                                  "(∂E/∂z = p − y)")


def _bce_target_not_subtracted(site):
    """Sigmoid binary cross-entropy's ∂E/∂z = σ(z) − t written σ(z)."""
    return _target_not_subtracted(site, BinaryCrossEntropy, BinaryCrossEntropyLogits, stable_sigmoid,
                                  "∂E/∂z written as σ(z), the sigmoid's outputs: the target t not subtracted "
                                  "(∂E/∂z = σ(z) − t)")


def _dropout_not_masked(site):
    """Dropout's delta passed back to every entry: not multiplied by the mask m (with its
    1/(1 − p), or without)."""
    layer = site.layer
    if not np.any(site.upstream * (1 - layer.mask)):
        return          # nothing dropped where a delta arrives: masking changes nothing, so shows nothing
    yield site.upstream.copy(), "the delta passed back through dropout unchanged: not masked by m, nor scaled by 1/(1 − p)"
    if layer.p > 0:
        yield site.upstream * layer.scale, (f"the delta scaled by 1/(1 − p) = 1/(1 − {layer.p:g}) but not masked by m: "
                                            "the dropped entries get a delta too")


def _dropout_scale_missing(site):
    """Dropout without its inverted scale: x ⊙ m forward, δ ⊙ m back, where the layer is
    x ⊙ m / (1 − p)."""
    layer = site.layer
    if layer.p == 0:
        return
    fed = site.upstream * layer.mask
    where = "the output" if site.step.kind == "forward" else "the delta"
    yield fed, (f"{where} masked by m without the inverted dropout's scale 1/(1 − p) = 1/(1 − {layer.p:g}): "
                "y = x ⊙ m / (1 − p)")


def _kernel_channels_swapped(site):
    """A conv kernel gradient indexed (input channel, filter), dK[c, d] = Σ δ_d ⋆ x_c, where the
    kernel is (filter, input channel): its first two axes swapped (square in them)."""
    if site.step.param != "kernel":
        return
    data = site.right - _penalized(site, 0.0)   # the penalty is not swapped
    if data.ndim != 4 or data.shape[0] != data.shape[1] or data.shape[0] < 2:
        return
    yield _penalized(site, np.swapaxes(data, 0, 1)), ("the kernel gradient indexed [input channel, filter]: "
                                                      "dK[c, d] = Σ δ_d ⋆ x_c stored where the kernel holds "
                                                      "K[d, c] (filter d, input channel c)")


CATALOGUE = (
    Mistake("conv-kernel-not-rotated", ("input-grad",), ("conv",), _kernel_not_rotated),
    Mistake("conv-mode-swapped", ("forward", "param-grad"), ("conv",), _mode_swapped),
    Mistake("conv-kernel-grad-channels-swapped", ("param-grad",), ("conv",), _kernel_channels_swapped),
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
    Mistake("dropout-delta-not-masked", ("input-grad",), ("dropout",), _dropout_not_masked),
    Mistake("dropout-scale-missing", ("forward", "input-grad"), ("dropout",), _dropout_scale_missing),
    Mistake("batchnorm-mean-var-constant", ("input-grad",), ("batch_norm",), _bn_constant_statistics),
    Mistake("batchnorm-variance-unbiased", ("forward", "statistics", "input-grad", "param-grad"), ("batch_norm",),
            _bn_unbiased),
    Mistake("svm-correct-class-grad-missing", ("loss-grad",), None, _svm_correct_class_grad),
    Mistake("svm-correct-class-in-loss", ("losses", "data_loss", "loss"), None, _svm_correct_class_in_loss),
    Mistake("softmax-ce-target-not-subtracted", ("loss-grad", "input-grad"), None, _ce_target_not_subtracted),
    Mistake("sigmoid-bce-target-not-subtracted", ("loss-grad", "input-grad"), None, _bce_target_not_subtracted),
    Mistake("l2-penalty-missing", ("loss", "penalty", "param-grad"), None, _l2_missing),
    Mistake("l2-penalty-factor-off-by-2", ("loss", "penalty", "param-grad"), None, _l2_factor),
    Mistake("l2-penalty-averaged", ("loss", "param-grad"), None, _l2_averaged),
    Mistake("rounded-upstream", ANY, None, _rounded, at_quantity=True),
    Mistake("sign-flipped", ANY, None, _sign, at_quantity=True),
    Mistake("scaled", ANY, None, _scaled, at_quantity=True),
    Mistake("transposed", ANY, None, _transposed, at_quantity=True),
    Mistake("rotated-180", ANY, None, _rotated, at_quantity=True),
)

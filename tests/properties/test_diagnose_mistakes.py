"""Every mistake of the catalogue, made independently of the diagnoser, is named where it happened.

Each test takes random networks (tests/helpers/randomnets.py) where the mistake applies, runs them in
PyTorch with one layer's backward replaced by a custom ``autograd.Function`` that makes the
mistake (written here from its description: numpy loops, or torch's own gradient of a changed
computation), and hands every gradient torch then gives to ``cnngrad.diagnose.diagnose``. The
quantity the mistaken step makes must be ``introduced`` with the mistake among the best-ranked
diagnoses and be ``first_wrong``; every other wrong quantity must be ``propagated``. A mistake
of the loss's gradient hands torch the mistaken ∂E/∂output instead (``output_grad``).
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cnngrad.diagnose import diagnose  # noqa: E402
from helpers.randomnets import random_models, random_spec, to_model  # noqa: E402
from helpers.torchnet import _loss, penalty, torch_join, torch_layer  # noqa: E402

NETWORKS = 3          # random networks per mistake
TRIES = 400           # random networks looked at to find them


def t64(array, grad=True):
    return torch.tensor(np.asarray(array, dtype=np.float64), dtype=torch.float64, requires_grad=grad)


def mistaken(fn, pnames, rule, seen):
    """``fn`` (a layer on tensors) whose backward is ``rule(x, params, g, right, seen)`` → the
    gradients {"x": ..., pname: ...} (numpy), ``right`` being torch's own gradients and ``seen``
    the mistaken ``layer`` (its settings), its index ``k`` and every layer's ``inputs``."""
    class Mistaken(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, *ps):
            ctx.save_for_backward(x, *ps)
            return fn(x, dict(zip(pnames, ps)))

        @staticmethod
        def backward(ctx, g):
            x, *ps = ctx.saved_tensors
            with torch.enable_grad():
                xx = x.detach().requires_grad_(True)
                pp = [p.detach().requires_grad_(True) for p in ps]
                right = torch.autograd.grad(fn(xx, dict(zip(pnames, pp))), [xx, *pp], g)
            right = {name: r.numpy() for name, r in zip(("x",) + tuple(pnames), right)}
            params = {name: p.detach().numpy() for name, p in zip(pnames, ps)}
            wrong = rule(x.detach().numpy(), params, g.numpy(), right, seen)
            return tuple(torch.from_numpy(np.ascontiguousarray(wrong[name], dtype=np.float64))
                         for name in ("x",) + tuple(pnames))

    return lambda x, local: Mistaken.apply(x, *[local[p] for p in pnames])


def torch_values(model, at=None, rule=None, loss_factor=1.0, forward=None, output_grad=None):
    """Every gradient (and forward value) as torch computes it, in the user's rank, with layer
    ``at``'s backward made by ``rule`` (or its forward by ``forward``) and the loss times
    ``loss_factor``, or ∂E/∂output given as ``output_grad`` (engine layout) in place of the
    loss's. The loss is taken from the last layer's output, so every layer is backpropagated
    through."""
    net = model.network
    x = t64(model.input)
    params = {name: t64(value) for name, value in model.params.items()}
    h, outputs, seen = x, {}, {"inputs": []}
    made = [x]                               # value k + 1 is layer k's output (Network.reads)
    for k, (name, layer, reads) in enumerate(zip(net.names, net.layers, net.reads)):
        operands = [made[v] for v in reads]
        seen["inputs"].append(operands[0].detach().numpy())
        if layer.joins:
            h = torch_join(layer.kind, operands)
        else:
            fn = forward if (k == at and forward is not None) else torch_layer(layer)
            if k == at and rule is not None:
                seen.update(layer=layer, k=k)
                fn = mistaken(fn, layer.param_names, rule, seen)
            h = fn(operands[0], {p: params[f"{name}.{p}"] for p in layer.param_names})
        h.retain_grad()
        outputs[name] = h
        made.append(h)
    torch_objective(model, h, params, loss_factor, output_grad).backward()
    values = {f"grad.{name}": model.user(name, out.grad.numpy()) for name, out in outputs.items()}
    values.update({f"grad.{name}": model.user(name, p.grad.numpy()) for name, p in params.items()})
    values["grad.input"] = model.user("input", x.grad.numpy())
    forward_values = {name: model.user(name, out.detach().numpy()) for name, out in outputs.items()}
    return values, forward_values


def torch_objective(model, h, params, loss_factor=1.0, output_grad=None):
    """E from the final output ``h``: the loss times ``loss_factor``, or Σ g·h, whose gradient at the
    output is a given ``output_grad`` g; the L2 penalty added."""
    net = model.network
    if output_grad is not None:
        data = (torch.tensor(output_grad, dtype=torch.float64) * h).sum()
    else:
        data = loss_factor * _loss(net.loss.label, False, None, h, torch.tensor(model.target, dtype=torch.float64),
                                   net.loss.reduction, getattr(net.loss, "margin", 1.0))
    return data + penalty(net, params)


def best_ids(entry) -> set[str]:
    """The mistakes ranked best: those reproducing the numbers as closely as the first does."""
    if not entry.diagnosis:
        return set()
    best = entry.diagnosis[0].max_abs_error
    return {d.mistake for d in entry.diagnosis if d.max_abs_error <= max(1e3 * best, 1e-13)}


def one_example(model) -> bool:
    """A network of one example without a penalty: what most mistaken references below are written for."""
    net = model.network
    return not (model.batched or any(layer.mixes_examples for layer in net.layers) or net.regularization)


def any_network(model) -> bool:
    """Every network: batches, batch norm and penalties too (references written for them)."""
    return True


def networks(select, seed: int, models=None, keep=one_example):
    """(model, layer index) of random networks that ``keep(model)`` takes and where
    ``select(model, k)`` holds for some layer k."""
    found = 0
    for model in models or (model for _, model in random_models(seed, TRIES)):
        net = model.network
        if not keep(model):
            continue
        ks = [k for k in range(len(net.layers)) if select(model, k)]
        if ks:
            yield model, ks[0]
            found += 1
    assert found >= NETWORKS, f"only {found} random networks where the mistake applies"


def below(model, k: int) -> str:
    """The quantity layer k's backward makes from its delta: the delta of the layer before."""
    return f"grad.{model.network.names[k - 1]}" if k else "grad.input"


def assert_diagnosed(model, values, quantity: str, mistake: str, layer: str | None, also=()):
    """``mistake`` at ``layer`` (and the ids in ``also``, which give the same numbers) among the
    best-ranked diagnoses of ``quantity``, where the error entered."""
    result = diagnose(model, values)
    entries = {e.quantity: e for e in result.expect}
    wrong = entries[quantity]
    assert not wrong.passed, f"{quantity} should be wrong"
    assert wrong.origin == "introduced"
    for expected in (mistake, *also):
        assert expected in best_ids(wrong), [(d.mistake, d.max_abs_error) for d in wrong.diagnosis]
    assert any(d.mistake == mistake and d.layer == layer for d in wrong.diagnosis)
    assert result.first_wrong == quantity
    for other in result.expect:
        if other.quantity != quantity and not other.passed:
            assert other.origin == "propagated", (other.quantity, other.origin)
    return result


def run_layer_mistake(select, rule, mistake: str, quantity_of, seed: int, models=None, also=(), keep=one_example):
    """For each network: the mistake at layer k, every gradient handed over; ``quantity_of(model, k)``
    is the quantity it makes. Networks where the mistake changes nothing are passed over."""
    done = 0
    for model, k in networks(select, seed, models, keep):
        values, _ = torch_values(model, at=k, rule=rule)
        quantity = quantity_of(model, k)
        right = model.values()[quantity]
        if np.allclose(values[quantity], right, rtol=1e-5, atol=1e-8 * max(1, np.abs(right).max())):
            continue                      # e.g. a ReLU whose inputs are all positive
        assert_diagnosed(model, values, quantity, mistake, model.network.names[k], also)
        done += 1
        if done == NETWORKS:
            return
    pytest.fail(f"{mistake}: only {done} random networks where it changes the numbers")


def inner(kinds, *, last_ok=False):
    """Select layer k of a kind in ``kinds`` (not the last layer unless ``last_ok``)."""
    def select(model, k):
        layers = model.network.layers
        return layers[k].kind in kinds and (last_ok or k < len(layers) - 1)
    return select


def window_routing(x, layer, g, weight):
    """Plain loops: each window's delta g[b, c, i, j] times ``weight`` to every entry of its window
    (each example b of a batch on its own)."""
    (top, _), (left, _) = layer.padding
    (kh, kw), (sh, sw), (dh, dw) = layer.size, layer.stride, layer.dilation
    dx = np.zeros_like(x)
    examples, channels, out_h, out_w = g.shape
    for b, c, i, j in np.ndindex(examples, channels, out_h, out_w):
        for m in range(kh):
            for n in range(kw):
                p, q = i * sh + m * dh - top, j * sw + n * dw - left
                if 0 <= p < x.shape[2] and 0 <= q < x.shape[3]:
                    dx[b, c, p, q] += weight * g[b, c, i, j]
    return dx


# activations

def test_activation_derivative_missing():
    run_layer_mistake(inner(("relu", "leaky_relu", "sigmoid", "tanh")),
                      lambda x, p, g, right, seen: {"x": g}, "activation-derivative-missing", below, seed=11)


def test_activation_derivative_of_output():
    def rule(x, p, g, right, seen):
        if seen["layer"].kind == "sigmoid":
            y = 1 / (1 + np.exp(-x))
            s = 1 / (1 + np.exp(-y))           # σ′ taken at the output y, not at x
            return {"x": g * s * (1 - s)}
        return {"x": g * (1 - np.tanh(np.tanh(x)) ** 2)}
    run_layer_mistake(inner(("sigmoid", "tanh")), rule, "activation-derivative-of-output", below, seed=12)


def test_softmax_jacobian_missing():
    run_layer_mistake(inner(("softmax",), last_ok=True), lambda x, p, g, right, seen: {"x": g},
                      "softmax-jacobian-missing", below, seed=13)


# pooling

def max_pool(model, k):
    layer = model.network.layers[k]
    return layer.kind == "pool" and layer.type == "max"


def avg_pool(model, k):
    """An average pool with one divisor kh·kw for every window (so not dividing is a scale)."""
    layer = model.network.layers[k]
    return layer.kind == "pool" and layer.type == "avg" and layer.count_include_pad and not layer.ceil_mode


def test_maxpool_to_all():
    run_layer_mistake(max_pool, lambda x, p, g, right, seen: {"x": window_routing(x, seen["layer"], g, 1.0)},
                      "maxpool-to-all", below, seed=21)


def test_maxpool_spread_evenly():
    def rule(x, p, g, right, seen):
        kh, kw = seen["layer"].size
        return {"x": window_routing(x, seen["layer"], g, 1.0 / (kh * kw))}
    run_layer_mistake(max_pool, rule, "maxpool-spread-evenly", below, seed=22)


def test_avgpool_not_divided_is_also_scaled_by_the_window_size():
    run_layer_mistake(avg_pool, lambda x, p, g, right, seen: {"x": window_routing(x, seen["layer"], g, 1.0)},
                      "avgpool-not-divided", below, seed=23, also=("scaled",))


# flatten

def test_flatten_order_swapped():
    def rule(x, p, g, right, seen):
        other = "F" if seen["layer"].order == "C" else "C"
        dx = np.zeros_like(x)
        for b in range(len(x)):
            for index in np.ndindex(*x.shape[1:]):
                dx[(b,) + index] = g[b, np.ravel_multi_index(index, x.shape[1:], order=other)]
        return {"x": dx}
    run_layer_mistake(inner(("flatten",)), rule, "flatten-order-swapped", below, seed=31)


# fc

def test_fc_grad_uses_preactivation():
    def rule(x, p, g, right, seen):
        z = seen["inputs"][seen["k"] - 1]        # the activation's input: the value before it
        weights = np.zeros_like(p["weights"])
        for o in range(weights.shape[0]):
            for i in range(weights.shape[1]):
                weights[o, i] = sum(g[b, o] * z[b, i] for b in range(len(g)))   # summed over a batch
        return {"x": right["x"], "weights": weights, "bias": right["bias"]}

    def select(model, k):
        layers = model.network.layers
        # the activation right before the fc (no flatten between), so z is its input as it is
        return layers[k].kind == "fc" and k >= 1 and layers[k - 1].kind in ("relu", "leaky_relu", "sigmoid", "tanh")
    run_layer_mistake(select, rule, "fc-grad-uses-preactivation",
                      lambda model, k: f"grad.{model.network.names[k]}.weights", seed=41)


def square_fc_models(seed: int):
    """Random networks with a square fc layer added after their first fc (the output shape stays)."""
    rng = np.random.default_rng(seed)
    for _ in range(TRIES):
        spec = random_spec(rng)
        layers = spec["layers"]
        first = next((i for i, entry in enumerate(layers) if isinstance(entry, dict) and "fc" in entry), None)
        if first is None:
            continue
        n = len(layers[first]["fc"]["weights"])
        if n < 2:
            continue
        square = np.round(rng.standard_normal((n, n)) / np.sqrt(n), 6).tolist()
        layers.insert(first + 1, {"fc": {"weights": square, "bias": 0.1}})
        yield to_model(spec)


def test_fc_weights_not_transposed():
    def rule(x, p, g, right, seen):
        weights = p["weights"]
        dx = np.zeros_like(x)
        for b in range(len(g)):
            for i in range(weights.shape[1]):
                for o in range(weights.shape[0]):
                    dx[b, i] += weights[i, o] * g[b, o]      # W δ: the row index where the column belongs
        return {"x": dx, "weights": right["weights"], "bias": right["bias"]}

    def select(model, k):
        layer = model.network.layers[k]
        return layer.kind == "fc" and layer.outputs == layer.inputs
    run_layer_mistake(select, rule, "fc-weights-not-transposed", below, seed=42, models=square_fc_models(42))


# conv

def conv(model, k):
    return model.network.layers[k].kind == "conv"


def flipped(kernel):
    return torch.flip(kernel, dims=(-2, -1))


def test_conv_kernel_not_rotated():
    """∂E/∂x of a conv whose kernel is rotated 180°: the deltas scattered through the kernel the
    other way round (torch's own gradient of that conv)."""
    def rule(x, p, g, right, seen):
        fn = torch_layer(seen["layer"])
        with torch.enable_grad():             # a custom backward runs without it
            xx = torch.tensor(x, requires_grad=True)
            y = fn(xx, {"kernel": flipped(torch.tensor(p["kernel"])), "bias": torch.tensor(p["bias"])})
            (dx,) = torch.autograd.grad(y, [xx], torch.tensor(g))
        return {"x": dx.numpy(), "kernel": right["kernel"], "bias": right["bias"]}
    run_layer_mistake(conv, rule, "conv-kernel-not-rotated", below, seed=51)


def test_conv_kernel_grad_channels_swapped():
    """A student's loops over the windows (stride, dilation, padding, a batch's examples):
    dK[c, d] = Σ δ[b, d, i, j] · x[b, c, window], stored [input channel, filter] where the kernel
    is [filter, input channel]."""
    def rule(x, p, g, right, seen):
        layer = seen["layer"]
        (top, bottom), (left, far) = layer.padding
        padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, far)))
        (kh, kw), (sh, sw), (dh, dw) = layer.size, layer.stride, layer.dilation
        swapped = np.zeros_like(p["kernel"])
        for b, d, i, j in np.ndindex(g.shape):
            for m in range(kh):
                for n in range(kw):
                    swapped[:, d, m, n] += g[b, d, i, j] * padded[b, :, i * sh + m * dh, j * sw + n * dw]
        return {"x": right["x"], "kernel": swapped, "bias": right["bias"]}

    def select(model, k):
        layer = model.network.layers[k]
        return (layer.kind == "conv" and layer.mode == "cross_correlation" and layer.groups == 1
                and layer.filters == layer.channels >= 2)
    run_layer_mistake(select, rule, "conv-kernel-grad-channels-swapped",
                      lambda model, k: f"grad.{model.network.names[k]}.kernel", seed=52, keep=any_network)


def test_bias_not_summed():
    def rule(x, p, g, right, seen):
        mean = np.array([np.mean(g[:, d]) for d in range(g.shape[1])])   # over a batch's examples too
        return {"x": right["x"], "kernel": right["kernel"], "bias": mean}

    def select(model, k):
        layer = model.network.layers[k]
        return layer.kind == "conv" and not layer.untied_bias and layer.filters >= 1
    run_layer_mistake(select, rule, "bias-not-summed", lambda model, k: f"grad.{model.network.names[k]}.bias",
                      seed=52, also=("scaled",))


def test_conv_mode_swapped_in_the_forward_pass():
    done = 0
    for model, k in networks(conv, 53):
        layer = model.network.layers[k]
        right_fn = torch_layer(layer)

        def other_mode(x, p):
            return right_fn(x, {"kernel": flipped(p["kernel"]), "bias": p["bias"]})
        _, forward_values = torch_values(model, at=k, forward=other_mode)
        name = model.network.names[k]
        if np.allclose(forward_values[name], model.values()[name], rtol=1e-5):
            continue                          # a kernel symmetric under rotation
        result = assert_diagnosed(model, forward_values, name, "conv-mode-swapped", name)
        assert result.first_wrong == name
        done += 1
        if done == NETWORKS:
            return
    pytest.fail(f"only {done} networks")


# generic

def last_delta(model):
    return f"grad.{model.network.names[-1]}"


@pytest.mark.parametrize("factor, mistake, words", [(-1.0, "sign-flipped", "wrong sign"),
                                                    (2.0, "scaled", "½"), (0.25, "scaled", "1/4")])
def test_a_loss_gradient_with_the_wrong_sign_or_scale(factor, mistake, words):
    done = 0
    for _, model in random_models(61, 40):
        values, _ = torch_values(model, loss_factor=factor)
        quantity = last_delta(model)
        if np.allclose(values[quantity], 0):
            continue
        result = assert_diagnosed(model, values, quantity, mistake, None)
        entry = next(e for e in result.expect if e.quantity == quantity)
        assert words in next(d.message for d in entry.diagnosis if d.mistake == mistake)
        done += 1
        if done == NETWORKS:
            return
    pytest.fail(f"only {done} networks")


def square_kernel(model, k):
    layer = model.network.layers[k]
    return layer.kind == "conv" and layer.size[0] == layer.size[1] > 1


def kernel_gradient(model, k):
    return f"grad.{model.network.names[k]}.kernel"


def test_a_transposed_kernel_gradient():
    def rule(x, p, g, right, seen):
        return {"x": right["x"], "kernel": np.swapaxes(right["kernel"], -1, -2), "bias": right["bias"]}
    run_layer_mistake(square_kernel, rule, "transposed", kernel_gradient, seed=62)


def test_a_rotated_kernel_gradient():
    def rule(x, p, g, right, seen):
        return {"x": right["x"], "kernel": right["kernel"][..., ::-1, ::-1], "bias": right["bias"]}

    def select(model, k):
        return conv(model, k) and max(model.network.layers[k].size) > 1
    run_layer_mistake(select, rule, "rotated-180", kernel_gradient, seed=63)


@pytest.mark.parametrize("decimals", [2, 4])
def test_a_kernel_gradient_from_rounded_deltas(decimals):
    """torch's kernel gradient of the same conv, from the deltas rounded to ``decimals``."""
    def rule(x, p, g, right, seen, cut=lambda g: np.round(g, decimals)):
        fn = torch_layer(seen["layer"])
        with torch.enable_grad():
            kernel = torch.tensor(p["kernel"], requires_grad=True)
            y = fn(torch.tensor(x), {"kernel": kernel, "bias": torch.tensor(p["bias"])})
            (dk,) = torch.autograd.grad(y, [kernel], torch.tensor(cut(g)))
        return {"x": right["x"], "kernel": dk.numpy(), "bias": right["bias"]}

    def truncated(x, p, g, right, seen):
        return rule(x, p, g, right, seen, cut=lambda g: np.trunc(g * 10.0 ** decimals) / 10.0 ** decimals)
    done = 0
    for model, k in networks(conv, 64):
        values, _ = torch_values(model, at=k, rule=rule)
        quantity = kernel_gradient(model, k)
        if np.allclose(values[quantity], model.values()[quantity], rtol=1e-6, atol=1e-9):
            continue
        delta = model.values()[f"grad.{model.network.names[k]}"]
        rounded = np.round(delta, decimals)
        if any(np.array_equal(rounded, cut(delta * 10.0 ** j) / 10.0 ** j) for j in range(1, 7)
               for cut in (np.trunc, np.round) if (j, cut) != (decimals, np.round)):
            continue                      # deltas of few decimals: another cut gives the same numbers
        other, _ = torch_values(model, at=k, rule=truncated)
        if np.allclose(other[quantity], values[quantity], rtol=1e-6, atol=1e-9):
            continue                      # truncating gives the same kernel gradient: either is right
        result = assert_diagnosed(model, values, quantity, "rounded-upstream", model.network.names[k])
        entry = next(e for e in result.expect if e.quantity == quantity)
        message = next(d.message for d in entry.diagnosis if d.mistake == "rounded-upstream")
        assert message == f"computed from grad.{model.network.names[k]} rounded to {decimals} decimals"
        done += 1
        if done == NETWORKS:
            return
    pytest.fail(f"only {done} networks")


# a gap: only a quantity far from the mistake is given

def test_first_wrong_names_the_unwritten_quantity_where_the_error_entered():
    """The activation's derivative forgotten, and only grad.input (or the first layer's kernel
    gradient) given: the error entered at the activation's input delta, which nobody wrote."""
    done = 0
    for model, k in networks(inner(("sigmoid", "tanh")), 71):
        # a branch below the mistake: its other readers' parts are taken right, not replayed
        # with the mistake, so from grad.input alone the diagnosis finds nothing (it claims nothing)
        if k == 0 or model.network.branched:
            continue
        values, _ = torch_values(model, at=k, rule=lambda x, p, g, right, seen: {"x": g})
        first = model.network.names[0]
        given = next((name for name in (f"grad.{first}.kernel", "grad.input") if name in values), None)
        right = model.values()[given]
        if np.allclose(values[given], right, rtol=1e-5, atol=1e-8 * max(1, np.abs(right).max())):
            continue
        result = diagnose(model, {given: values[given]})
        (entry,) = result.expect
        assert entry.origin == "introduced"
        assert "activation-derivative-missing" in best_ids(entry), entry.diagnosis
        assert result.first_wrong == below(model, k)
        done += 1
        if done == NETWORKS:
            return
    pytest.fail(f"only {done} networks")


# the course layers (issue 16): dropout, batch norm, the hinge, softmax cross-entropy, L2

def dropping(model, k):
    """A dropout that drops something (so its mask and its scale both show)."""
    layer = model.network.layers[k]
    return layer.kind == "dropout" and layer.p > 0 and not np.all(layer.mask == 1)


def test_dropout_delta_not_masked():
    run_layer_mistake(dropping, lambda x, p, g, right, seen: {"x": g}, "dropout-delta-not-masked", below, seed=81)


def test_dropout_scale_missing_in_the_backward_pass():
    run_layer_mistake(dropping, lambda x, p, g, right, seen: {"x": g * seen["layer"].mask},
                      "dropout-scale-missing", below, seed=82)


def batch_norm(model, k):
    return model.network.layers[k].kind == "batch_norm"


def feature_axes(x):
    """A batch norm's axes of one feature: the examples (and a map's positions), and γ's shape."""
    return (0,) + tuple(range(2, x.ndim)), (1, -1) + (1,) * (x.ndim - 2)


def test_batchnorm_mean_var_constant():
    """dx = γ δ / σ, the batch's variance computed here over N (and H, W)."""
    def rule(x, p, g, right, seen):
        over, shape = feature_axes(x)
        sigma = np.sqrt(x.var(axis=over, keepdims=True) + seen["layer"].eps)
        return {"x": p["gamma"].reshape(shape) * g / sigma, "gamma": right["gamma"], "beta": right["beta"]}
    run_layer_mistake(batch_norm, rule, "batchnorm-mean-var-constant", below, seed=83, keep=any_network)


def unbiased_batch_norm(layer):
    """torch's batch norm written with the unbiased variance (torch's own ``var`` default)."""
    def run(x, p):
        over, shape = feature_axes(x)
        mean, var = x.mean(over, keepdim=True), x.var(over, unbiased=True, keepdim=True)
        return (x - mean) / torch.sqrt(var + layer.eps) * p["gamma"].view(shape) + p["beta"].view(shape)
    return run


def test_batchnorm_variance_unbiased_in_the_backward_pass():
    """torch's gradient of the unbiased batch norm, from the right deltas."""
    def rule(x, p, g, right, seen):
        fn = unbiased_batch_norm(seen["layer"])
        with torch.enable_grad():
            xx = torch.tensor(x, requires_grad=True)
            (dx,) = torch.autograd.grad(fn(xx, {n: torch.tensor(v) for n, v in p.items()}), [xx], torch.tensor(g))
        return {"x": dx.numpy(), "gamma": right["gamma"], "beta": right["beta"]}
    run_layer_mistake(batch_norm, rule, "batchnorm-variance-unbiased", below, seed=84, keep=any_network)


def test_batchnorm_variance_unbiased_in_the_forward_pass():
    done = 0
    for model, k in networks(batch_norm, 85, keep=any_network):
        _, forward_values = torch_values(model, at=k, forward=unbiased_batch_norm(model.network.layers[k]))
        name = model.network.names[k]
        if np.allclose(forward_values[name], model.values()[name], rtol=1e-5, atol=1e-8):
            continue                          # a constant feature: x̂ = 0 either way
        assert_diagnosed(model, forward_values, name, "batchnorm-variance-unbiased", name)
        done += 1
        if done == NETWORKS:
            return
    pytest.fail(f"only {done} networks")


def run_forward_mistake(select, forward_of, mistake: str, own, seed: int):
    """torch through layer k's mistaken forward ``forward_of(layer)`` (autograd's backward of it):
    its forward values and every gradient handed over. The error enters at the layer's output and
    again in its own backward (the quantities ``own(model, k)``); everything else, the gradients of
    the layers after it included (their backward reads the user's wrong forward values), came
    along: propagated."""
    done = 0
    for model, k in networks(select, seed, keep=any_network):
        values, forward_values = torch_values(model, at=k, forward=forward_of(model.network.layers[k]))
        name, right = model.network.names[k], model.values()
        if np.allclose(forward_values[name], right[name], rtol=1e-5, atol=1e-8):
            continue                          # e.g. a constant feature: x̂ = 0 either way
        if np.allclose(values[below(model, k)], right[below(model, k)], rtol=1e-5,
                       atol=1e-8 * max(1, np.abs(right[below(model, k)]).max())):
            continue                          # a backward that gives ~0 either way: what follows is rounding
        result = diagnose(model, {**forward_values, **values})
        assert result.first_wrong == name
        for entry in result.expect:
            if entry.passed or entry.origin == "propagated":
                continue
            assert entry.quantity in (name, *own(model, k)), (entry.quantity, entry.origin)
            assert mistake in best_ids(entry), (entry.quantity, entry.diagnosis)
        done += 1
        if done == NETWORKS:
            return
    pytest.fail(f"only {done} networks")


def test_batchnorm_variance_unbiased_forward_and_every_gradient_after_it():
    """The unbiased batch norm's own backward: ∂E/∂x and ∂E/∂γ."""
    run_forward_mistake(batch_norm, unbiased_batch_norm, "batchnorm-variance-unbiased",
                        lambda model, k: (below(model, k), f"grad.{model.network.names[k]}.gamma"), seed=92)


def test_dropout_scale_missing_forward_and_every_gradient_after_it():
    """x ⊙ m forward, so δ ⊙ m back."""
    run_forward_mistake(dropping, lambda layer: lambda x, p: x * torch.tensor(layer.mask), "dropout-scale-missing",
                        lambda model, k: (below(model, k),), seed=93)


def loss_models(seed: int, select):
    """Random networks (batches and penalties too) whose loss ``select(network, model)`` takes."""
    for _, model in random_models(seed, TRIES):
        if model.has_loss and select(model.network, model):
            yield model


def run_output_grad_mistake(seed: int, select, wrong_grad, quantity_of, mistake: str, layer=None):
    """∂E/∂output (or, by ``quantity_of``, the logits' delta) written ``wrong_grad(model, scores)``
    from torch's output, every gradient after it taken by torch from that one."""
    done = 0
    for model in loss_models(seed, select):
        _, forward_values = torch_values(model)
        output = model.network.names[-1] if model.network.names else None
        if output is None:
            continue                          # layers: [] — nothing to backpropagate through
        wrong = wrong_grad(model, forward_values)
        if wrong is None:
            continue
        values, _ = torch_values(model, output_grad=wrong)
        quantity = quantity_of(model)
        if np.allclose(values[quantity], model.values()[quantity], rtol=1e-6, atol=1e-9):
            continue                          # e.g. no margin violated
        assert_diagnosed(model, values, quantity, mistake, layer(model) if layer else None)
        done += 1
        if done == NETWORKS:
            return
    pytest.fail(f"{mistake}: only {done} networks")


def reduction(model) -> float:
    return 1.0 / model.network.batch if model.network.loss.reduction == "mean" else 1.0


def test_svm_correct_class_grad_missing():
    """A student's hinge gradient: 1 at each class j ≠ y with s_j − s_y + Δ > 0, and 0 at y."""
    def wrong(model, forward):
        scores = forward[model.network.names[-1]].reshape(model.network.batch, -1)
        target = np.asarray(model.target).reshape(len(scores), -1)
        grad = np.zeros_like(scores)
        for i, y in enumerate(target.argmax(axis=1)):
            for j in range(scores.shape[1]):
                if j != y and scores[i, j] - scores[i, y] + model.network.loss.margin > 0:
                    grad[i, j] = reduction(model)
        return grad
    run_output_grad_mistake(86, lambda net, model: net.loss.name == "multiclass_svm", wrong,
                            lambda model: f"grad.{model.network.names[-1]}", "svm-correct-class-grad-missing")


def one_hot_targets(model) -> bool:
    target = np.asarray(model.target).reshape(model.network.batch, -1)
    return bool(np.all(np.isclose(target.sum(axis=1), 1.0)))


def test_softmax_ce_target_not_subtracted_from_logits():
    """∂E/∂z written p = softmax(z) (over each example's entries), z the final output."""
    def wrong(model, forward):
        z = forward[model.network.names[-1]].reshape(model.network.batch, -1)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        return (p / p.sum(axis=1, keepdims=True) * reduction(model)).reshape((-1,) + model.network.output_shape)
    run_output_grad_mistake(87, lambda net, model: net.loss.label == "cross_entropy from logits" and one_hot_targets(model),
                            wrong, lambda model: f"grad.{model.network.names[-1]}", "softmax-ce-target-not-subtracted")


def run_fused_target_mistake(seed: int, loss: str, mistake: str):
    """The activation fused with ``loss`` (softmax, sigmoid) whose backward writes the logits'
    delta as its own output p (times 1/N), the target not subtracted."""
    models = loss_models(seed, lambda net, model: net.fused and net.loss.name == loss and
                         (loss != "cross_entropy" or one_hot_targets(model)))
    done = 0
    for model, k in networks(lambda model, k: k == len(model.network.layers) - 1, 0, models, keep=any_network):
        def rule(x, p, g, right, seen, scale=reduction(model)):
            return {"x": torch_layer(seen["layer"])(torch.tensor(x), {}).numpy() * scale}
        values, _ = torch_values(model, at=k, rule=rule)
        quantity, output = below(model, k), f"grad.{model.network.names[k]}"
        if np.allclose(values[quantity], model.values()[quantity], rtol=1e-6, atol=1e-9):
            continue                          # a target of zeros: p − t is p
        if not np.allclose(values[output], model.values()[output], rtol=1e-6, atol=1e-9):
            continue                          # p near 0 or 1: torch's 1/p or 1/(1 − p) loses its digits
        assert_diagnosed(model, values, quantity, mistake, model.network.names[k])
        done += 1
        if done == NETWORKS:
            return
    pytest.fail(f"only {done} networks")


def test_softmax_ce_target_not_subtracted_through_the_softmax():
    """softmax + cross_entropy: the logits' delta written p, the softmax's output (times 1/N)."""
    run_fused_target_mistake(88, "cross_entropy", "softmax-ce-target-not-subtracted")


def test_sigmoid_bce_target_not_subtracted_from_logits():
    """∂E/∂z written σ(z) (entry by entry, times 1/N), z the final output."""
    def wrong(model, forward):
        z = forward[model.network.names[-1]].reshape((-1,) + model.network.output_shape)
        return 1 / (1 + np.exp(-z)) * reduction(model)
    run_output_grad_mistake(90, lambda net, model: net.loss.label == "binary_cross_entropy from logits", wrong,
                            lambda model: f"grad.{model.network.names[-1]}", "sigmoid-bce-target-not-subtracted")


def test_sigmoid_bce_target_not_subtracted_through_the_sigmoid():
    """sigmoid + binary_cross_entropy: the logits' delta written σ, the sigmoid's output (times 1/N)."""
    run_fused_target_mistake(91, "binary_cross_entropy", "sigmoid-bce-target-not-subtracted")


def test_l2_penalty_missing_from_a_parameter_gradient():
    """torch's gradient of a regularized parameter less the 2λθ the test adds by hand."""
    done = 0
    for model in loss_models(89, lambda net, model: net.regularization is not None):
        values, _ = torch_values(model)
        factor, names = model.network.regularization
        name = names[0]
        wrong = dict(values)
        wrong[f"grad.{name}"] = values[f"grad.{name}"] - 2 * factor * model.user(name, model.params[name])
        right = model.values()[f"grad.{name}"]
        if np.allclose(wrong[f"grad.{name}"], right, rtol=1e-6, atol=1e-9 * max(1, np.abs(right).max())):
            continue
        assert_diagnosed(model, wrong, f"grad.{name}", "l2-penalty-missing", name.split(".")[0])
        done += 1
        if done == NETWORKS:
            return
    pytest.fail(f"only {done} networks")


def typo_below(model, k: int) -> int | None:
    """A layer j < k whose backward reads its one input, a layer's output (so the user may print it
    wrong): the nearest to k; None when there is none."""
    net = model.network
    for j in range(k - 1, 0, -1):
        if not net.layers[j].joins and net.reads[j][0] > 0 and net.layers[j].kind != "flatten":
            return j
    return None


def test_a_typo_in_a_printed_forward_value_hides_no_mistake():
    """The activation's derivative forgotten at layer k, every gradient handed over, and the input
    of a layer j below it printed with one entry wrong (−v − 1), the gradients computed from the
    right one: the mistake is still named where made, every other wrong gradient (those below, through
    j's backward) propagated, none introduced with no mistake."""
    done = 0
    for model, k in networks(inner(("relu", "leaky_relu", "sigmoid", "tanh")), seed=31):
        j = typo_below(model, k)
        if j is None:
            continue
        values, forward_values = torch_values(model, at=k, rule=lambda x, p, g, right, seen: {"x": g})
        quantity, right = below(model, k), model.values()
        if np.allclose(values[quantity], right[quantity], rtol=1e-5, atol=1e-8 * max(1, np.abs(right[quantity]).max())):
            continue
        typo = model.network.value_name(model.network.reads[j][0])
        printed = forward_values[typo].copy()
        entry = np.unravel_index(np.argmax(np.abs(printed)), printed.shape)
        printed[entry] = -printed[entry] - 1.0
        result = diagnose(model, {typo: printed, **values})
        entries = {e.quantity: e for e in result.expect}
        assert entries[quantity].origin == "introduced"
        assert "activation-derivative-missing" in best_ids(entries[quantity]), entries[quantity].diagnosis
        for other in result.expect:
            if other.quantity not in (typo, quantity) and not other.passed:
                assert other.origin == "propagated", (other.quantity, other.origin, other.diagnosis)
        assert result.first_wrong == typo
        done += 1
        if done == NETWORKS:
            return
    pytest.fail(f"only {done} networks")

"""Property tests: random valid networks (tests/helpers/randomnets.py), driven by hypothesis.

Hypothesis draws a seed; ``randomnets.random_spec`` turns it into a spec covering every layer kind
and setting of docs/reference.md §1 (conv stride/padding forms/dilation/modes/bias forms, every activation,
max/avg/l2 pooling with both ``ties``, flatten C/F, fc), 2-D and 3-D inputs and every loss, and
the spec goes through the real loader. On every such network:

(a) ``check_model`` passes: the analytic gradient agrees with central finite differences, and
    entries whose difference straddles a kink are recognised as such;
(b) with torch installed, the loss, ∂E/∂input and every ∂E/∂parameter agree with PyTorch
    autograd on the same network rebuilt from torch's own functions (tests/helpers/torchnet.py) to
    1e-10 relative;
(c) a batch of different examples gives, example by example, what separate runs give.

Profiles (tests/conftest.py): ``ci`` by default; ``--hypothesis-profile=long`` for 2,000 networks
per property. A failure prints the seed; ``random_spec(np.random.default_rng(seed))`` rebuilds it.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import example, given, note, strategies as st

from cnngrad.gradcheck import check_model

from helpers.randomnets import random_spec, to_model, to_yaml

seeds = st.integers(min_value=0, max_value=2**32 - 1)


def build(seed):
    spec = random_spec(np.random.default_rng(seed))
    note(to_yaml(spec))
    return spec, to_model(spec)


@given(seeds)
@example(2973)      # next to an L2 window of norm 7e-4: steep curvature for the default step
def test_analytic_gradients_agree_with_finite_differences(seed):
    _, model = build(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = check_model(model)
    assert result.gradients, "every network has at least the input gradient to check"
    assert all(q.passed for q in result.gradients), [
        (q.quantity, [e for e in q.entries if e.status == "fail"][:3]) for q in result.gradients if not q.passed]
    assert all(e.passed for e in result.expect)


@given(seeds)
def test_analytic_gradients_match_torch_autograd(seed):
    pytest.importorskip("torch")
    from helpers.torchnet import rel_err, torch_gradients
    _, model = build(seed)
    trace = model.forward()
    loss = model.loss(trace)
    grads = model.backward(trace)
    torch_loss, torch_input_grad, torch_param_grads = torch_gradients(model)
    # 1e-10 relative, above a rounding floor: where a gradient is tiny because of cancellation
    # (1 − tanh² of a saturated unit, softmax's y(g − Σyg)), both sides carry absolute rounding
    # errors of a few ulp of (largest delta × largest activation), not of the gradient itself
    deltas = max([1.0, float(np.max(np.abs(grads.input))),
                  *(float(np.max(np.abs(d))) for d in grads.outputs.values())])
    values = max([1.0, float(np.max(np.abs(model.input))), *(float(np.max(np.abs(y))) for y in trace.outputs)])
    floor = 1e-13 * deltas * values

    def close(ours, theirs, what):
        ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
        assert ours.shape == theirs.shape, what
        error = float(np.linalg.norm(ours - theirs))
        allowed = 1e-10 * max(np.linalg.norm(ours), np.linalg.norm(theirs)) + floor
        assert error <= allowed, f"{what}: off by {error:.3e} (relative {rel_err(ours, theirs):.3e})"

    if loss is not None:
        close(loss, torch_loss, "loss")
    close(grads.input, torch_input_grad, "grad.input")
    assert set(grads.params) == set(torch_param_grads)
    for name, value in grads.params.items():
        close(value, torch_param_grads[name], f"grad.{name}")


@given(seeds, st.integers(min_value=2, max_value=5))
def test_a_batch_gives_what_separate_runs_give(seed, batch):
    spec, model = build(seed)
    net = model.network
    rng = np.random.default_rng(seed)
    # other examples near the spec's own: same rounding (integer specs stay integer, so kinks
    # and ties stay in play), different values
    others = model.input + rng.integers(-1, 2, size=(batch - 1,) + model.input.shape[1:])
    x = np.concatenate([model.input, others])
    target = np.repeat(model.target, batch, axis=0)
    with np.errstate(all="ignore"):
        trace = net.forward(x, model.params)
        losses = net.losses(trace, target)
        grads = net.backward(trace, model.params, target)
    summed = {name: np.zeros_like(value) for name, value in grads.params.items()}

    def same(ours, theirs, what, scale=None):
        # a few units in the last place of the array's scale: numpy hands a batch to BLAS as a
        # matrix product and one example as a vector product, which sum in different orders
        finite = np.isfinite(theirs)
        assert np.array_equal(ours[~finite], theirs[~finite]), f"{what}: non-finite entries differ"
        scale = max(1.0, float(np.max(np.abs(theirs[finite]), initial=0.0)), scale or 0.0)
        worst = float(np.max(np.abs(ours[finite] - theirs[finite]), initial=0.0))
        assert worst <= 64 * np.finfo(float).eps * scale, f"{what}: off by {worst:.3e} (scale {scale:.3e})"

    for b in range(batch):
        one = slice(b, b + 1)
        with np.errstate(all="ignore"):
            single = net.forward(x[one], model.params)
            single_grads = net.backward(single, model.params, target[one])
            single_loss = net.losses(single, target[one])
        for name, ours, theirs in zip(net.names, trace.outputs, single.outputs):
            same(ours[one], theirs, f"example {b}: {name}")
        # the loss adds up terms y·∂E/∂y that may cancel: its rounding scales with their sizes
        output_grad = single_grads.outputs[net.names[-1]] if net.names else single_grads.input
        terms = float(np.sum(np.abs(single.output * output_grad)))
        same(losses[one], single_loss, f"example {b}: loss", scale=terms)
        same(grads.input[one], single_grads.input, f"example {b}: grad.input")
        for name, delta in single_grads.outputs.items():
            scale = None
            if name == net.names[-1] and net.layers[-1].kind in ("softmax", "sigmoid"):
                # ∂E/∂y of a final probability, −t/y (or (1−t)/(1−y)): y = e^(z − logsumexp z)
                # or σ(z) carries a relative rounding of about ε·|z|, which the ratio keeps
                size = np.abs(delta[np.isfinite(delta)])
                scale = float(size.max(initial=0.0)) * (1 + float(np.max(np.abs(single.inputs[-1]))))
            same(grads.outputs[name][one], delta, f"example {b}: grad.{name}", scale=scale)
        for name, value in single_grads.params.items():
            summed[name] += value
    for name, value in summed.items():
        same(grads.params[name], value, f"grad.{name} (sum over the batch)")


def _features(spec):
    """What one random spec exercises, as words (to show the generator covers docs/reference.md §1)."""
    loss = spec["loss"]
    loss = f"{next(iter(loss))} from logits" if isinstance(loss, dict) else loss
    words = {f"input{np.ndim(spec['input'])}d", f"loss:{loss}"}
    if not spec["layers"]:
        words.add("no_layers")
    if isinstance(spec.get("target"), int):
        words.add("class_index")
    for entry in spec["layers"]:
        kind = entry if isinstance(entry, str) else next(iter(entry))
        words.add(kind)
        settings = {} if isinstance(entry, str) else (entry[kind] or {})
        if kind == "conv":
            words.add(f"kernel{np.ndim(settings['kernel'])}d")
            words.update(f"conv.{key}" for key in settings if key != "kernel")
            padding = settings.get("padding")
            if padding is not None:
                words.add("padding:" + (padding if isinstance(padding, str) else
                                        "int" if isinstance(padding, int) else
                                        "pair" if isinstance(padding[0], int) else "sides"))
            if "mode" in settings:
                words.add(f"mode:{settings['mode']}")
            if "bias" in settings:
                words.add(f"bias{np.ndim(settings['bias'])}d")
        elif kind == "pool":
            words.add(f"pool:{settings['type']}")
            words.update(f"pool.{key}" for key in settings)
            if "ties" in settings:
                words.add(f"ties:{settings['ties']}")
        elif kind == "flatten":
            words.add(f"flatten:{settings.get('order', 'C')}")
    return words


def test_the_random_networks_cover_every_layer_kind_setting_and_loss():
    """The seeds hypothesis draws reach everything docs/reference.md §1 lists (checked on 400 seeds)."""
    seen = set()
    for seed in range(400):
        seen |= _features(random_spec(np.random.default_rng(seed)))
    required = {"input2d", "input3d", "conv", "relu", "leaky_relu", "sigmoid", "tanh", "softmax",
                "pool", "flatten", "fc", "kernel2d", "kernel3d", "kernel4d", "conv.stride",
                "conv.padding", "conv.dilation", "conv.bias", "padding:same", "padding:valid",
                "padding:int", "padding:pair", "padding:sides", "mode:convolution",
                "mode:cross_correlation", "bias0d", "bias1d", "bias2d", "bias3d", "pool:max",
                "pool:avg", "pool:l2", "pool.stride", "pool.padding", "ties:first", "ties:split",
                "flatten:C", "flatten:F", "class_index", "no_layers", "add", "concat", "conv.from"} | {
        f"loss:{loss}" for loss in ("squared_error", "mse", "cross_entropy", "binary_cross_entropy", "none",
                                    "cross_entropy from logits", "binary_cross_entropy from logits")}
    assert required <= seen, sorted(required - seen)

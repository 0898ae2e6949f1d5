"""Receptive-field probes (``gradcheck.crop``) against the plain path, which runs every copy's whole maps.

Randomized networks of convs (strides, paddings incl. same, dilations, both modes), activations and
max/avg/L2 pools (inputs on a coarse grid, so windows tie and ReLUs sit at 0), 2-D and 3-D inputs.
Where no conv runs cropped, the cropped copies must give the plain path's losses, kink counts and first
kinks bit for bit; a cropped conv rounds its matrix product differently, so there the numeric
derivatives must agree to rounding and every kink flag must be the same.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.gradcheck import crop, increment
from cnngrad.gradcheck.check import check_entries
from cnngrad.gradcheck.finite import Evaluator
from cnngrad.gradcheck import check_model
from cnngrad.gradcheck.probes import input_probe, output_probe, param_probe
from cnngrad.layers.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from cnngrad.layers.base import ShapeError
from cnngrad.layers.conv import Conv
from cnngrad.layers.fc import FC
from cnngrad.layers.flatten import Flatten
from cnngrad.layers.global_pool import GlobalAvgPool
from cnngrad.layers.pooling import Pool
from cnngrad.losses import LOSSES
from cnngrad.network import Network

from helpers.randomnets import to_model
from test_gradcheck import hand_model

EPS = 1e-4


def random_local_layer(rng, channels):
    """One conv, activation or pool with random settings (a conv may change the channel count)."""
    kind = rng.choice(["conv", "conv", "pool", "pool", "relu", "leaky_relu", "tanh", "sigmoid"])
    if kind == "conv":
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        if rng.random() < 0.3:
            stride, padding = 1, "same"
        else:
            stride = (int(rng.integers(1, 4)), int(rng.integers(1, 3)))
            padding = ((int(rng.integers(0, 3)), int(rng.integers(0, 2))), (int(rng.integers(0, 2)), int(rng.integers(0, 3))))
        filters = int(rng.integers(1, 4))
        mode = str(rng.choice(["cross_correlation", "convolution"]))
        return Conv((filters, channels) + k, stride=stride, padding=padding, dilation=dilation, mode=mode), filters
    if kind == "pool":
        size = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        padding = (int(rng.integers(0, size[0] // 2 + 1)), int(rng.integers(0, size[1] // 2 + 1)))
        return Pool(str(rng.choice(["max", "avg", "l2"])), size, stride, padding,
                    str(rng.choice(["first", "split"]))), channels
    return {"relu": ReLU, "leaky_relu": lambda: LeakyReLU(0.1), "tanh": Tanh, "sigmoid": Sigmoid}[kind](), channels


def random_net(seed):
    """A random chain of local layers on a map of 1-3 channels, then one way to end: flatten → fc (→ tanh
    → fc), global average pooling → fc, softmax over the map, or the map itself into the loss."""
    rng = np.random.default_rng(seed)
    while True:
        channels = int(rng.integers(1, 4))
        shape = (channels, int(rng.integers(4, 13)), int(rng.integers(4, 13)))
        layers, width = [], channels
        for k in range(int(rng.integers(1, 6))):
            layer, width = random_local_layer(rng, width)
            layers.append((f"l{k}", layer))
        ending = rng.choice(["fc", "fc2", "gap", "softmax", "map"])
        try:
            out = Network(shape, layers, None).output_shape
        except ShapeError:
            continue
        if ending in ("fc", "fc2"):
            layers += [("flatten1", Flatten(str(rng.choice(["C", "F"])))), ("fc1", FC((3, int(np.prod(out)))))]
            if ending == "fc2":
                layers += [("tanh9", Tanh()), ("fc2", FC((2, 3)))]
        elif ending == "gap":
            layers += [("gap1", GlobalAvgPool()), ("fc1", FC((2, out[0])))]
        elif ending == "softmax":
            layers += [("softmax1", Softmax())]
        loss = {"softmax": "cross_entropy"}.get(ending, "squared_error")
        net = Network(shape, layers, LOSSES[loss]())
        # values on a coarse grid: pool windows tie, ReLUs meet exact zeros (one channel: a 2-D input)
        x = rng.integers(-3, 4, shape) / 4.0
        target = np.abs(rng.standard_normal(net.output_shape)) + 0.1
        target = target / target.sum() if loss == "cross_entropy" else target
        return hand_model(x, layers, loss, target, seed=seed)


def probes_of(model):
    """The input probe and every delta probe of a map that runs cropped, with its evaluator."""
    net = model.network
    trace = model.forward()
    grads = model.backward(trace)
    evaluator = Evaluator(net, model.params, model.target, trace)
    probes = [input_probe(net, trace, model.params, grads.input[0])]
    probes += [output_probe(net, trace, k, grads.outputs[net.names[k]][0]) for k in range(len(net.layers))]
    return evaluator, [p for p in probes if isinstance(p.shortcut, crop.CroppedRuns)]


def both_paths(evaluator, probe):
    """The probe's differences through its crops and through the plain path (whole maps)."""
    cropped = probe.differences(evaluator, EPS)
    shortcut, probe.shortcut = probe.shortcut, None
    plain = probe.differences(evaluator, EPS)
    probe.shortcut = shortcut
    return cropped, plain


def test_crops_without_convs_give_the_plain_paths_bits(monkeypatch):
    """Activations and pools compute each output from the same numbers either way: identical
    numeric derivatives, one-sided quotients and kink flags, over 120 random networks (the boxes
    pasted into the whole map before a flatten into an fc too, which otherwise runs on the change:
    tests/unit/test_increment.py). Calls of cropped copies take the whole memory budget here, as the
    plain path's do (these small networks run each probe's copies in one call): a product after
    the crop (an fc) may round otherwise in a call of another number of rows."""
    monkeypatch.setattr(crop, "CONV_PAYS", 0.0)
    monkeypatch.setattr(crop, "CROP_BUDGET", 1.0)
    monkeypatch.setattr(increment, "applies", lambda network, index: False)
    seen = {"probes": 0, "kinks": 0, "several": 0, "windowed": 0}
    for seed in range(120):
        evaluator, probes = probes_of(random_net(seed))
        for probe in probes:
            assert not any(isinstance(step.layer, Conv) for step in probe.shortcut.plan.steps)
            cropped, plain = both_paths(evaluator, probe)
            for field in ("numeric", "left", "right", "kink", "several", "noise", "spread"):
                np.testing.assert_array_equal(getattr(cropped, field), getattr(plain, field), err_msg=f"{seed} {field}")
            seen["probes"] += 1
            seen["kinks"] += int(plain.kink.any())
            seen["several"] += int(plain.several.any())
            seen["windowed"] += int(any(step.window is not None for step in probe.shortcut.plan.steps))
    assert seen["probes"] > 150 and seen["kinks"] > 30 and seen["several"] > 10 and seen["windowed"] > 50, seen


def test_cropped_convs_agree_to_rounding(monkeypatch):
    """A conv on a crop rounds its matrix product differently from the whole map's: the numeric
    derivatives agree within the rounding allowance of the check (``noise``), the kink flags exactly.
    A conv run on its box's change (``linear``) rounds independently of the whole product: each
    path lies within its own allowance of the exact derivative, so they agree within the two."""
    monkeypatch.setattr(crop, "CONV_PAYS", 1.0)
    monkeypatch.setattr(increment, "applies", lambda network, index: False)   # tests/unit/test_increment.py
    convs = {False: 0, True: 0}
    for seed in range(120):
        evaluator, probes = probes_of(random_net(seed))
        for probe in probes:
            cropped, plain = both_paths(evaluator, probe)
            np.testing.assert_array_equal(cropped.kink, plain.kink, err_msg=str(seed))
            np.testing.assert_array_equal(cropped.several, plain.several, err_msg=str(seed))
            finite = np.isfinite(plain.numeric)
            np.testing.assert_array_equal(finite, np.isfinite(cropped.numeric))
            linear = any(step.leg.linear for step in probe.shortcut.plan.steps)
            allowance = plain.noise + (cropped.noise if linear else 0.0)
            assert (np.abs(cropped.numeric - plain.numeric)[finite] <= allowance[finite]).all(), seed
            if any(isinstance(step.layer, Conv) for step in probe.shortcut.plan.steps):
                convs[linear] += 1
    assert convs[False] > 5 and convs[True] > 50, convs


def lenet_like(size, seed=0):
    """conv 4@5×5 → relu → max pool 2 → conv 6@3×3 pad same → relu → avg pool 2 → flatten → fc 3."""
    layers = [("conv1", Conv((4, 1, 5, 5))), ("relu1", ReLU()), ("pool1", Pool("max", 2)),
              ("conv2", Conv((6, 4, 3, 3), padding="same")), ("relu2", ReLU()), ("pool2", Pool("avg", 2)),
              ("flatten1", Flatten())]
    out = Network((1, size, size), layers, None).output_shape
    layers.append(("fc1", FC((3, out[0]))))
    rng = np.random.default_rng(seed)
    return hand_model(rng.standard_normal((1, size, size)), layers, "squared_error", rng.standard_normal(3), seed=seed)


def test_a_large_map_crops_its_convs_and_checks_the_same():
    """On a 28×28 input the input pixel's box after pool1 is a small part of conv2's map, so conv2
    runs cropped at the default setting; every entry's verdict is the plain path's."""
    model = lenet_like(28)
    evaluator, probes = probes_of(model)
    probe = probes[0]
    assert probe.quantity == "input" and probe.start == 1
    assert [model.network.names[s.index] for s in probe.shortcut.plan.steps] == \
        ["relu1", "pool1", "conv2", "relu2", "pool2"]
    cropped = check_entries(evaluator, probe, model.user_shapes["input"], EPS, 1e-7, 1e-10)
    probe.shortcut = None
    plain = check_entries(evaluator, probe, model.user_shapes["input"], EPS, 1e-7, 1e-10)
    assert cropped.passed and plain.passed
    assert [e.status for e in cropped.entries] == [e.status for e in plain.entries]
    np.testing.assert_allclose([e.numeric for e in cropped.entries], [e.numeric for e in plain.entries],
                               rtol=1e-8, atol=1e-12)


def test_small_maps_keep_convs_whole():
    """On a 12×12 input conv2's box would be most of its map: the crop stops before it (and so
    gives the plain path's bits)."""
    model = lenet_like(12)
    _, probes = probes_of(model)
    assert [model.network.names[s.index] for s in probes[0].shortcut.plan.steps] == ["relu1", "pool1"]


class OwnReLU(ReLU):
    """A kind the crop does not know (a user's subclass): run whole."""


def test_unknown_kinds_and_untied_biases_run_whole():
    layers = [("conv1", Conv((2, 1, 3, 3))), ("own1", OwnReLU()), ("pool1", Pool("max", 2)), ("flatten1", Flatten()),
              ("fc1", FC((2, 18)))]
    model = hand_model(np.ones((1, 8, 8)), layers, "squared_error", [0.0, 1.0])
    _, probes = probes_of(model)
    assert [p.quantity for p in probes] == ["own1"]          # only the pool after own1 is cropped
    assert not crop.local(Conv((2, 1, 3, 3), untied_bias=True))
    conv = Conv((2, 1, 3, 3))
    conv.groups = 2                                          # a setting the crop has not learnt
    assert not crop.local(conv) and crop.local(Conv((2, 1, 3, 3)))


def test_the_work_of_cropped_copies_by_hand():
    """An input pixel of 8×8 → relu → max pool 2 → flatten → fc 2×16 runs relu on its 1×1 box (1
    multiply-add's worth), the pool on the 2×2 window of its 1×1 output box (4), then the fc on the
    box's change (1 × 2 outputs), writing its box and the fc's 2 outputs; before an fc that is not
    after a flatten, flatten (16) and fc (32) run whole, the box pasted into the 16 values of the pooled map."""
    from cnngrad.gradcheck.work import FORMING, check_work
    layers = [("relu1", ReLU()), ("pool1", Pool("max", 2)), ("flatten1", Flatten()), ("fc1", FC((2, 16)))]
    model = hand_model(np.ones((1, 8, 8)), layers, "squared_error", [0.0, 1.0])
    assert check_work(model.network, wrt=["input"]) == 64 * 4 * (1 + 4 + 2 + FORMING * (1 + 2))
    # with --fast every entry moves at once: the whole maps, as before
    assert check_work(model.network, wrt=["input"], fast=True) == 6 * 4 * (64 + 64 + 16 + 32 + FORMING * 64)
    layers.insert(3, ("tanh1", Tanh()))
    model = hand_model(np.ones((1, 8, 8)), layers, "squared_error", [0.0, 1.0])
    assert check_work(model.network, wrt=["input"]) == 64 * 4 * (1 + 4 + 16 + 16 + 32 + FORMING * (1 + 16))


def test_an_untied_bias_runs_cropped_and_gives_the_plain_paths_bits(monkeypatch):
    """An untied bias entry moves one output entry: the layers after it run on its box, with the
    very numbers of the whole-map runs (and of the one-channel runs it replaces; the flatten into
    the fc run whole, as tests/unit/test_increment.py compares)."""
    monkeypatch.setattr(increment, "applies", lambda network, index: False)
    from cnngrad.gradcheck.probes import OneChannelRuns, param_probe
    rng = np.random.default_rng(5)
    layers = [("conv1", Conv((2, 1, 3, 3), untied_bias=True, padding=1)), ("relu1", ReLU()),
              ("pool1", Pool("max", 2)), ("tanh1", Tanh()), ("flatten1", Flatten()), ("fc1", FC((2, 32)))]
    # a kernel of zeros and a bias on a coarse grid: conv1's outputs are the bias, ReLUs sit at 0, pools tie
    params = {"conv1.kernel": np.zeros((2, 1, 3, 3)), "conv1.bias": rng.integers(-2, 3, (2, 8, 8)) / 2.0}
    model = hand_model(rng.standard_normal((1, 8, 8)), layers, "squared_error", [0.5, -0.5], params, seed=5)
    trace = model.forward()
    grads = model.backward(trace)
    evaluator = Evaluator(model.network, model.params, model.target, trace)
    probe = param_probe(model.network, trace, model.params, "conv1.bias", grads.params["conv1.bias"])
    assert isinstance(probe.shortcut, crop.CroppedRuns)
    cropped = probe.differences(evaluator, EPS)
    probe.shortcut = None
    plain = probe.differences(evaluator, EPS)
    probe.shortcut = OneChannelRuns(crop_free_one_channel(model, trace))
    channel = probe.differences(evaluator, EPS)
    for field in ("numeric", "left", "right", "kink", "several"):
        np.testing.assert_array_equal(getattr(cropped, field), getattr(plain, field))
        np.testing.assert_array_equal(getattr(cropped, field), getattr(channel, field))
    assert plain.kink.any()


def crop_free_one_channel(model, trace):
    from cnngrad.gradcheck.probes import LayerParameter
    net = model.network
    return LayerParameter(net.layers[0], trace.inputs[0], trace.outputs[0], net.params_of(0, model.params),
                          "bias").one_channel


def test_a_regularized_untied_bias_runs_cropped_with_its_penalty():
    """The cropped copies of an untied conv bias move the L2 penalty too: found by the random
    networks, a regularized untied bias read the data loss alone (its analytic 2λθ unmatched)."""
    rng = np.random.default_rng(11)
    spec = {"input": np.round(rng.standard_normal((1, 9, 9)), 3).tolist(),
            "layers": [{"conv": {"kernel": np.round(rng.standard_normal((2, 1, 3, 3)), 3).tolist(),
                                 "bias": np.round(rng.standard_normal((2, 7, 7)), 3).tolist()}},
                       "tanh", {"conv": {"kernel": np.round(rng.standard_normal((1, 2, 3, 3)), 3).tolist()}},
                       "flatten"],
            "loss": "mse", "target": [0.0] * 25,
            "regularization": {"l2": 0.5, "params": ["conv1.bias"]}}
    model = to_model(spec)
    trace = model.forward()
    grads = model.backward(trace)
    probe = param_probe(model.network, trace, model.params, "conv1.bias", grads.params["conv1.bias"])
    assert isinstance(probe.shortcut, crop.CroppedRuns)
    result = check_model(model)
    assert all(q.passed for q in result.gradients), [(q.quantity, q.status) for q in result.gradients]

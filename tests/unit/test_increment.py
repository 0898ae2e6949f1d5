"""A flatten into an fc run on a copy's change (``gradcheck.increment``) against the plain path,
which pastes the copy into the whole map and multiplies the whole of it.

y_base + W[:, cols(box)] · Δ rounds differently from W · x_copy, so the numeric derivatives of
the two paths are compared within the allowance each has for rounding (``Differences.noise``:
each lies within it of the exact derivative), the kink flags and verdicts exactly.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.gradcheck import crop, increment
from cnngrad.gradcheck.check import judge, rounding_magnitude, significant_gradient, zero_gradient
from cnngrad.gradcheck.finite import Evaluator
from cnngrad.gradcheck.probes import OneChannelRuns, input_probe, output_probe, param_probe
from cnngrad.layers.activations import ReLU
from cnngrad.layers.conv import Conv
from cnngrad.layers.fc import FC
from cnngrad.layers.flatten import Flatten
from cnngrad.layers.pooling import Pool
from cnngrad.network import Network

from helpers import ROOT
from test_crop import EPS, both_paths, lenet_like, random_net
from test_gradcheck import hand_model


@pytest.mark.parametrize("order", ["C", "F"])
def test_the_fc_of_a_changed_box_is_the_whole_product(order):
    """FlatFC.outputs against flatten and fc run forward on the whole maps with the boxes pasted
    in: boxes of every channel and of one, anywhere in the map, agree to rounding."""
    rng = np.random.default_rng(3)
    shape = (3, 7, 6)
    layers = [("flatten1", Flatten(order)), ("fc1", FC((5, 126)))]
    model = hand_model(rng.standard_normal(shape), layers, "squared_error", rng.standard_normal(5), seed=3)
    net, trace = model.network, model.forward()
    flat_fc = increment.FlatFC(net, trace, model.params, 0)
    assert flat_fc.after == 2
    count = 40
    for box, channels in (((2, 3), None), ((4, 1), rng.integers(0, 3, count))):
        rows = rng.integers(0, shape[1] - box[0] + 1, count)
        cols = rng.integers(0, shape[2] - box[1] + 1, count)
        depth = 3 if channels is None else 1
        values = rng.standard_normal((count, depth) + box)
        whole = np.repeat(trace.inputs[0], count, axis=0)
        for k in range(count):
            taken = slice(None) if channels is None else slice(channels[k], channels[k] + 1)
            whole[k, taken, rows[k]:rows[k] + box[0], cols[k]:cols[k] + box[1]] = values[k]
        expected = whole.reshape(count, -1) if order == "C" else whole.transpose(0, 3, 2, 1).reshape(count, -1)
        expected = expected @ model.params["fc1.weights"].T + model.params["fc1.bias"]
        np.testing.assert_allclose(flat_fc.outputs(values, rows, cols, channels), expected, rtol=1e-12, atol=1e-12)
        # a copy that changed nothing gets the unperturbed output's very bits (a product of another
        # batch size may round otherwise, and move a unit that sits at a kink)
        first = None if channels is None else channels[:1]
        taken = slice(None) if channels is None else first
        unmoved = trace.inputs[0][0][taken, rows[0]:rows[0] + box[0], cols[0]:cols[0] + box[1]][None]
        np.testing.assert_array_equal(flat_fc.outputs(unmoved, rows[:1], cols[:1], first), trace.outputs[1])


def test_tiles_group_copies_by_box():
    """Copies of one key share tiles of one size; every copy has its own slot."""
    key = np.array([5, 1, 5, 5, 9, 1, 5, 5, 5])
    tile, slot, first, size = increment.tiles(key)
    assert size == 3                                    # 9 copies, 3 keys
    assert len(set(zip(tile, slot))) == len(key) and (slot < size).all()
    np.testing.assert_array_equal(key[first[tile]], key)
    assert len(first) == 1 + 2 + 1                      # key 5's six copies fill two tiles


def probes_of(model):
    """As test_crop's, with the evaluator the check builds: its rounding allowance counts the sums
    behind E (``rounding_magnitude``), the fc's among them."""
    net = model.network
    trace = model.forward()
    grads = model.backward(trace)
    evaluator = Evaluator(net, model.params, model.target, trace, magnitude=rounding_magnitude(model, trace, grads))
    probes = [input_probe(net, trace, model.params, grads.input[0])]
    probes += [output_probe(net, trace, k, grads.outputs[net.names[k]][0]) for k in range(len(net.layers))]
    return evaluator, [p for p in probes if isinstance(p.shortcut, crop.CroppedRuns)]


def agree(cropped, plain, context):
    """Kinks exactly; numeric derivatives within both paths' rounding allowances."""
    np.testing.assert_array_equal(cropped.kink, plain.kink, err_msg=context)
    np.testing.assert_array_equal(cropped.several, plain.several, err_msg=context)
    finite = np.isfinite(plain.numeric)
    np.testing.assert_array_equal(finite, np.isfinite(cropped.numeric), err_msg=context)
    allowance = (plain.noise + cropped.noise)[finite]
    assert (np.abs(cropped.numeric - plain.numeric)[finite] <= allowance).all(), context
    for side in ("left", "right"):
        kink = finite & plain.kink
        gap = np.abs(getattr(cropped, side) - getattr(plain, side))[kink]
        assert (gap <= (plain.noise + cropped.noise + plain.spread + cropped.spread)[kink]).all(), context


def test_random_chains_into_an_fc_agree_with_the_plain_path():
    """Input and delta probes of random chains (convs, pools, activations on coarse grids, so ReLUs
    sit at 0 and pools tie) ending in flatten → fc: the same kinks, the numbers to rounding."""
    seen = {"increments": 0, "kinks": 0, "one channel": 0}
    for seed in range(200):
        model = random_net(seed)
        evaluator, probes = probes_of(model)
        for probe in probes:
            if probe.shortcut.plan.entries is None:
                continue
            cropped, plain = both_paths(evaluator, probe)
            agree(cropped, plain, f"{seed} {probe.quantity}")
            seen["increments"] += 1
            seen["kinks"] += int(plain.kink.any())
            seen["one channel"] += int(not any(isinstance(s.layer, Conv) for s in probe.shortcut.plan.steps))
    assert seen["increments"] > 100 and seen["kinks"] > 20 and seen["one channel"] > 50, seen


def conv_chain(seed, second_conv=False):
    """conv → (relu) → (max pool) (→ conv → relu) → flatten → fc → relu → fc, with an fc bias that
    puts half of fc1's outputs 1e-7 from 0, far nearer than a step moves them, far farther than
    rounding: the relu after the fc sits next to its kink. Input and first kernel on grids: conv
    outputs sit at 0, pools tie. A second conv has a random kernel, stride and mode."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 3)), int(rng.integers(5, 11)), int(rng.integers(5, 11)))
    layers = [("conv1", Conv((2, shape[0], 3, 3), padding=int(rng.integers(0, 2))))]
    if rng.random() < 0.7 or second_conv:
        layers.append(("relu0", ReLU()))
    if rng.random() < 0.7:
        layers.append(("pool1", Pool("max", int(rng.integers(2, 4)), int(rng.integers(1, 3)))))
    if second_conv:
        layers += [("conv2", Conv((3, 2, 2, 2), stride=int(rng.integers(1, 3)), padding=1,
                                  mode=str(rng.choice(["cross_correlation", "convolution"])))), ("relu2", ReLU())]
    layers.append(("flatten1", Flatten()))
    layers += [("fc1", FC((4, Network(shape, layers, None).output_shape[0]))), ("relu1", ReLU()), ("fc2", FC((2, 4)))]
    params = {"conv1.kernel": rng.integers(-2, 3, (2, shape[0], 3, 3)) / 2.0, "conv1.bias": np.zeros(2),
              "fc1.bias": np.zeros(4)}
    model = hand_model(rng.integers(-4, 5, shape) / 4.0, layers, "squared_error", rng.standard_normal(2), params,
                       seed=seed)
    products = model.forward().outputs[model.network.names.index("fc1")][0]
    model.params["fc1.bias"] = np.where(np.arange(4) % 2 == 0, [1e-7, -1e-7, -1e-7, 1e-7] - products, 0.1)
    return model


def test_kernels_moving_one_channel_into_an_fc_agree_with_the_plain_path():
    """A conv kernel or bias entry moves one channel into flatten → fc: its one-channel runs give
    the fc that channel's change. Against whole-map runs: the same kinks (a relu after the fc at 0
    among them), the numbers to rounding, the same verdicts."""
    kinks = 0
    for seed in range(60):
        model = conv_chain(seed)
        net = model.network
        trace = model.forward()
        assert np.any(np.abs(trace.outputs[net.names.index("fc1")]) < 2e-7)
        grads = model.backward(trace)
        evaluator = Evaluator(net, model.params, model.target, trace, magnitude=rounding_magnitude(model, trace, grads))
        for name in ("conv1.kernel", "conv1.bias"):
            probe = param_probe(net, trace, model.params, name, grads.params[name])
            if not isinstance(probe.shortcut, OneChannelRuns):
                continue
            assert evaluator.flat_fc(net.names.index("flatten1")) is not None
            cropped, plain = both_paths(evaluator, probe)
            agree(cropped, plain, f"{seed} {name}")
            kinks += int(plain.kink.any())
    assert kinks > 20


def verdicts(evaluator, probe, shape):
    """The probe's differences and the check's verdicts on them (as ``check_entries``)."""
    diffs = probe.differences(evaluator, EPS)
    zero = zero_gradient(evaluator, probe, EPS, probe.steps(EPS))
    result = judge(probe.quantity, shape, probe.analytic.reshape(-1), diffs, shape, 1e-7, 1e-10, zero=zero,
                   significant=significant_gradient(evaluator, probe, zero))
    return diffs, result


def same_verdicts(evaluator, probe, shape):
    """The probe through its shortcut and through the plain path: numbers to rounding, the same
    kinks, every entry passed with the same status."""
    diffs, result = verdicts(evaluator, probe, shape)
    probe.shortcut = None
    plain_diffs, plain = verdicts(evaluator, probe, shape)
    agree(diffs, plain_diffs, probe.quantity)
    assert result.passed and plain.passed
    np.testing.assert_array_equal(result.verdicts.status, plain.verdicts.status)


def test_kernels_moving_one_channel_into_a_conv_agree_with_the_plain_path():
    """A conv kernel entry's one channel reaching a second conv runs it on that channel's change:
    against whole-map runs, the same kinks (ReLUs at 0, tied pools, a relu after the fc next to 0),
    the numbers to rounding."""
    kinks = 0
    for seed in range(60):
        model = conv_chain(seed, second_conv=True)
        net = model.network
        trace = model.forward()
        grads = model.backward(trace)
        evaluator = Evaluator(net, model.params, model.target, trace, magnitude=rounding_magnitude(model, trace, grads))
        for name in ("conv1.kernel", "conv1.bias"):
            probe = param_probe(net, trace, model.params, name, grads.params[name])
            assert isinstance(probe.shortcut, OneChannelRuns)
            assert evaluator.channel_conv(net.names.index("conv2")) is not None
            cropped, plain = both_paths(evaluator, probe)
            agree(cropped, plain, f"{seed} {name}")
            kinks += int(plain.kink.any())
    assert kinks > 20


def test_a_conv_on_one_channels_change_is_the_whole_conv():
    """ChannelConv.outputs against the conv run on the whole map with one channel replaced, over
    random strides, paddings, dilations and modes."""
    rng = np.random.default_rng(11)
    for trial in range(30):
        conv = Conv((3, 4, int(rng.integers(1, 4)), int(rng.integers(1, 4))), stride=int(rng.integers(1, 3)),
                    padding=int(rng.integers(0, 3)), dilation=int(rng.integers(1, 3)),
                    mode=str(rng.choice(["cross_correlation", "convolution"])))
        params = {"kernel": rng.standard_normal((3, 4) + conv.size), "bias": rng.standard_normal(3)}
        x = rng.standard_normal((1, 4, 8, 7))
        base_out = conv.forward(x, params)[0][0]
        channels = rng.integers(0, 4, 10)
        values = rng.standard_normal((10, 1, 8, 7))
        whole = np.repeat(x, 10, axis=0)
        whole[np.arange(10), channels] = values[:, 0]
        np.testing.assert_allclose(increment.ChannelConv(conv, params, x[0], base_out).outputs(values, channels),
                                   conv.forward(whole, params)[0], rtol=1e-12, atol=1e-12, err_msg=str(trial))


def test_lenet5_checks_the_same_either_way():
    """LeNet-5 (configs/lenet5.yaml): an input pixel's 3×3 box after pool1 runs conv2 on its change
    (9 entries a channel against 25 kernel taps), then relu2 and pool2 on boxes into flatten → fc1;
    conv1's kernel and bias move one channel into conv2, conv2's into pool2 → flatten → fc1. Every
    verdict is the plain path's and the numbers agree to rounding."""
    from cnngrad.api import load
    model = load(str(ROOT / "configs" / "lenet5.yaml"))
    net = model.network
    trace = model.forward()
    grads = model.backward(trace)
    evaluator = Evaluator(net, model.params, model.target, trace, magnitude=rounding_magnitude(model, trace, grads))
    probe = input_probe(net, trace, model.params, grads.input[0])
    assert [step.leg.linear for step in probe.shortcut.plan.steps] == [False, False, True, False, False]
    assert probe.shortcut.plan.entries == 16 * 4 * 4
    same_verdicts(evaluator, probe, model.user_shapes["input"])
    for name in ("conv1.kernel", "conv1.bias", "conv2.kernel", "conv2.bias"):
        probe = param_probe(net, trace, model.params, name, grads.params[name])
        assert isinstance(probe.shortcut, OneChannelRuns)
        same_verdicts(evaluator, probe, model.user_shapes[name])


def test_a_large_input_runs_its_crops_into_the_fc():
    """On a 36×36 input the input pixel's boxes reach the flatten: the fc runs on their change
    and every verdict is the plain path's."""
    model = lenet_like(36)
    evaluator, probes = probes_of(model)
    probe = probes[0]
    assert probe.quantity == "input" and probe.shortcut.plan.entries == 6 * 3 * 3
    same_verdicts(evaluator, probe, model.user_shapes["input"])


@pytest.mark.parametrize("mode, expected, edge", [("cross_correlation", [4, 3, 2, 1], [0, 4, 0, 2]),
                                                  ("convolution", [1, 2, 3, 4], [0, 1, 0, 3])])
def test_a_conv_maps_a_unit_of_its_box_to_the_kernel(mode, expected, edge):
    """Kernel [[1, 2], [3, 4]] on a 3×3 window: a unit at its centre reaches output (i, j) through
    tap (1 − i, 1 − j), so the outputs read K[1,1], K[1,0], K[0,1], K[0,0]; rotated in convolution
    mode. A 1×2 box at (1, 2) is half outside the window: its unit at (1, 2) moves outputs (0, 1)
    and (1, 1) through taps (1, 1) and (0, 1), the one at (1, 3) nothing."""
    conv = Conv((1, 1, 2, 2), mode=mode)
    params = {"kernel": np.arange(1.0, 5.0).reshape(1, 1, 2, 2), "bias": np.array([7.0])}
    box = increment.ConvBox(conv, params, np.zeros((1, 3, 3)), np.zeros((1, 2, 2)), (1, 1), (2, 2))
    np.testing.assert_array_equal(box.map_at((1, 1)), [[expected]])
    wide = increment.ConvBox(conv, params, np.zeros((1, 3, 3)), np.zeros((1, 2, 2)), (1, 2), (2, 2))
    np.testing.assert_array_equal(wide.map_at((1, 2)), [[edge, [0] * 4]])


def test_a_conv_on_the_change_is_the_conv_on_the_window():
    """ConvBox.outputs against the conv run on each copy's window with its box pasted in, over
    random strides, dilations, modes and offsets (boxes reaching past the window too)."""
    rng = np.random.default_rng(7)
    for trial in range(40):
        size = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        conv = Conv((2, 3) + size, stride=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                    dilation=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                    mode=str(rng.choice(["cross_correlation", "convolution"])))
        out_box = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        extent = tuple(conv.stride[a] * (out_box[a] - 1) + conv.span[a] for a in (0, 1))
        box = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        params = {"kernel": rng.standard_normal((2, 3) + size), "bias": rng.standard_normal(2)}
        count = 12
        windows = rng.standard_normal((count, 3) + extent)
        base_out = conv.forward(windows[:1], params)[0][0]
        offsets = np.stack([rng.integers(-box[0] + 1, extent[0], count), rng.integers(-box[1] + 1, extent[1], count)], 1)
        values = rng.standard_normal((count, 3) + box)
        channels = rng.integers(0, 3, count) if trial % 2 else None
        if channels is not None:
            values = values[:, :1]
        # the base input: one window holding the box's unperturbed entries (the window itself,
        # padded so that a box past its edge reads zeros there), the box at (rows, cols) of it
        padded = np.pad(windows[0], ((0, 0), (box[0], box[0]), (box[1], box[1])))
        rows, cols = offsets[:, 0] + box[0], offsets[:, 1] + box[1]
        conv_box = increment.ConvBox(conv, params, padded, base_out, box, out_box)
        zero = np.zeros(count, dtype=np.int64)
        expected = []
        for k in range(count):
            pasted = padded.copy()
            taken = slice(None) if channels is None else slice(channels[k], channels[k] + 1)
            pasted[taken, rows[k]:rows[k] + box[0], cols[k]:cols[k] + box[1]] = values[k]
            window = pasted[:, box[0]:box[0] + extent[0], box[1]:box[1] + extent[1]]
            expected.append(conv.forward(window[None], params)[0][0])
        got = conv_box.outputs(values, rows, cols, channels, offsets, zero, zero)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=str(trial))


def test_only_a_flatten_into_an_fc_runs_on_the_change():
    layers = [("flatten1", Flatten()), ("fc1", FC((2, 16))), ("relu1", ReLU()), ("fc2", FC((1, 2)))]
    net = hand_model(np.ones((1, 4, 4)), layers, "squared_error", [0.0]).network
    assert increment.applies(net, 0)
    assert not increment.applies(net, 1) and not increment.applies(net, 2)
    layers = [("pool1", Pool("max", 2)), ("flatten1", Flatten()), ("relu1", ReLU()), ("fc1", FC((2, 4)))]
    assert not increment.applies(hand_model(np.ones((1, 4, 4)), layers, "squared_error", [0.0, 0.0]).network, 1)

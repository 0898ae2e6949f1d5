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

from cnngrad.gradcheck import crop
from cnngrad.gradcheck.check import check_entries
from cnngrad.gradcheck.finite import Evaluator
from cnngrad.gradcheck.probes import input_probe, output_probe
from cnngrad.layers.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from cnngrad.layers.base import ShapeError
from cnngrad.layers.conv import Conv
from cnngrad.layers.fc import FC
from cnngrad.layers.flatten import Flatten
from cnngrad.layers.global_pool import GlobalAvgPool
from cnngrad.layers.pooling import Pool
from cnngrad.losses import LOSSES
from cnngrad.network import Network

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

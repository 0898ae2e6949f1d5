"""Checks every new layer kind's tests share: the checker's exact shortcuts against forward
differences, the explanation's sum against the gradient, and a negative control (a deliberately
wrong backward is caught by ``check`` and blamed on its layer)."""
from __future__ import annotations

import textwrap

import numpy as np

from cnngrad.explain import explain
from cnngrad.gradcheck.check import check_model

from .specs import write_spec


def assert_shortcuts_exact(layer, x, params):
    """``input_change``, ``output_change`` and ``channel_change`` (for the kinds that declare them)
    against the forward run with each entry moved by 1: the layer is affine, so the change is exact
    up to rounding, and a parameter entry moves nothing outside its channel."""
    y = layer.forward(x, params)[0][0]
    if layer.linear_in_input:
        entries = np.arange(x.size)
        change = layer.input_change(x, params, entries)
        for k in entries:
            moved = x.copy()
            moved.flat[k] += 1.0
            np.testing.assert_allclose(change[k], layer.forward(moved, params)[0][0] - y, atol=1e-9)
    if not layer.affine_in_params:
        return
    for pname in params:
        entries = np.arange(params[pname].size)
        change = layer.output_change(x, params, pname, entries)
        channels, in_channel = layer.channel_change(x, params, pname, entries) if layer.param_moves_one_channel \
            else (None, None)
        for k in entries:
            moved = {name: value.copy() for name, value in params.items()}
            moved[pname].flat[k] += 1.0
            diff = layer.forward(x, moved)[0][0] - y
            np.testing.assert_allclose(change[k], diff, atol=1e-9)
            if channels is not None:
                others = np.delete(np.arange(diff.shape[0]), channels[k])
                assert np.abs(diff[others]).max(initial=0) <= 1e-12, (pname, k)
                np.testing.assert_allclose(in_channel[k], diff[channels[k]], atol=1e-9)


def spec_path(tmp_path, body: str, name: str = "net.yaml") -> str:
    """``body`` dedented (an indented triple-quoted spec) in ``tmp_path/name``."""
    return write_spec(tmp_path, textwrap.dedent(body), name)


def assert_explains(model, texts):
    """Each named gradient entry's explanation sums to the gradient, with terms listed."""
    for text in texts:
        got = explain(model, text)
        assert got.terms, text
        assert abs(got.total - got.value) <= 1e-12 * max(1.0, abs(got.value)), (text, got.total, got.value)


def assert_wrong_backward_blamed(model, layer_name: str, wrong_class):
    """The model passes ``check``; with the layer's class swapped for ``wrong_class`` (a subclass
    whose backward is off) it fails and the faulty layer is ``layer_name``."""
    assert check_model(model).passed
    layer = model.network.layers[model.network.names.index(layer_name)]
    layer.__class__ = wrong_class
    result = check_model(model)
    assert not result.passed
    assert result.faulty_layer == layer_name, result.faulty_layer
    return result

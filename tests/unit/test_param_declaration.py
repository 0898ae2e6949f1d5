"""A kind's parameters are declared in its layer file and built by the generic path (spec/build.py
``_declared``): fc's checks keep their exact messages, and omitted or scalar biases are filled."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from cnngrad.layers import REGISTRY
from cnngrad.spec import SpecError, load_model

VECTOR = "input: [1, 2, 3]\n"


def load(tmp_path, text):
    path = tmp_path / "net.yaml"
    path.write_text(textwrap.dedent(text))
    return load_model(str(path)), path


def failure(tmp_path, text) -> SpecError:
    with pytest.raises(SpecError) as info:
        load(tmp_path, text)
    return info.value


def test_fc_weights_of_the_wrong_rank_is_an_error_at_the_weights(tmp_path):
    err = failure(tmp_path, VECTOR + "layers:\n  - fc: {weights: [1, 2, 3]}\n")
    assert (err.line, err.path) == (3, "layers[0].fc.weights")
    assert err.message == "weights must be 2-D (outputs, inputs), not 3"


def test_fc_bias_of_the_wrong_length_names_both_parameters(tmp_path):
    err = failure(tmp_path, VECTOR + "layers:\n  - fc: {weights: [[1, 2, 3], [4, 5, 6]], bias: [[1, 2]]}\n")
    assert (err.line, err.path) == (3, "layers[0].fc.bias")
    assert err.message == "fc1.bias has shape 1×2 but fc1.weights has 2 row(s) (outputs)"


@pytest.mark.parametrize("bias, expected", [("", [0.0, 0.0]), (", bias: 0.5", [0.5, 0.5]),
                                            (", bias: [1, -1]", [1.0, -1.0])])
def test_fc_bias_omitted_scalar_or_written(tmp_path, bias, expected):
    model, _ = load(tmp_path, VECTOR + f"layers:\n  - fc: {{weights: [[1, 0, 0], [0, 1, 0]]{bias}}}\n")
    assert model.params["fc1.bias"].tolist() == expected
    assert model.user_shapes["fc1.bias"] == (2,)
    assert model.user_shapes["fc1.weights"] == (2, 3)


def test_fc_needs_no_builder_of_its_own():
    from cnngrad.spec import build
    assert "fc" not in build.BUILDERS
    assert REGISTRY["fc"].settings[1].default == 0.0


def test_a_kind_with_parameters_defined_in_its_file_alone_builds(tmp_path, monkeypatch):
    """A throwaway kind with a per-entry scale, registered here only: spec reading, the build and
    the parameter checks need nothing beyond its class."""
    from cnngrad.layers.base import REGISTRY as registry, Layer, Setting
    from cnngrad.spec import layers as spec_layers

    class Scale(Layer):
        kind = "scale_test"
        settings = (Setting("scale", "array", 1.0),)
        param_names = ("scale",)

        def param_shapes(self, in_shape):
            return {"scale": tuple(in_shape)}

        def forward(self, x, params):
            return x * params["scale"], x

        def backward(self, dy, cache, params):
            return dy * params["scale"], {"scale": (dy * cache).sum(axis=0)}

    monkeypatch.setitem(registry, "scale_test", Scale)
    monkeypatch.setitem(spec_layers.SETTINGS, "scale_test", ("scale", "name"))
    model, _ = load(tmp_path, "input: [[1, 2], [3, 4]]\nlayers:\n  - scale_test: {scale: 2}\n")
    assert model.user_shapes["scale_test1.scale"] == (2, 2)
    assert model.params["scale_test1.scale"].shape == (1, 2, 2)
    np.testing.assert_array_equal(model.params["scale_test1.scale"], 2.0)
    err = failure(tmp_path, "input: [[1, 2], [3, 4]]\nlayers:\n  - scale_test: {scale: [1, 2, 3]}\n")
    assert err.path == "layers[0].scale_test.scale"
    assert err.message == ("scale_test1.scale has shape 3 but its input needs 2×2; write that shape, "
                           "or one number for every entry")


@pytest.mark.parametrize("entry, path", [("conv:\n      kernel:", "layers[0].conv.kernel"),
                                         ("fc:\n      weights: null", "layers[0].fc.weights"),
                                         ("conv_transpose: {kernel: ~}", "layers[0].conv_transpose.kernel")])
def test_a_required_parameter_written_as_null_is_a_spec_error(tmp_path, entry, path):
    """A required array written as null (an unfinished line) is missing, said at its node — not an
    internal error."""
    err = failure(tmp_path, "input: [[1, 2], [3, 4]]\nlayers:\n  - " + entry + "\n")
    assert err.path == path
    assert "needs" in err.message and "null" in err.message

"""Valid specs build complete models: ranks as written, default names, value sources, targets, expect."""
from __future__ import annotations

import io
import sys
import textwrap

import numpy as np
import pytest

from cnngrad.spec import load_model

O = [[0.51, 0.9, 0.88, 0.84, 0.05], [0.4, 0.62, 0.22, 0.59, 0.1], [0.11, 0.2, 0.74, 0.33, 0.14],
     [0.47, 0.01, 0.85, 0.7, 0.09], [0.76, 0.19, 0.72, 0.17, 0.57]]
D = [[0, 0, 0.0686, 0], [0, 0.0364, 0, 0], [0, 0.0467, 0, 0], [0, 0, 0, -0.0681]]
SEED_001 = f"""\
name: seed 001
input: {O}
layers:
  - conv:
      kernel: [[-0.13, 0.15], [0.24, 0.12]]
loss: none
upstream_grad: {D}
expect:
  grad.conv1.kernel: [[0.044606, 0.094061], [0.011262, 0.068288]]
  grad.conv1.bias: 0.0836
  grad.conv1.kernel[0, 1]: 0.094061
  conv1[0,0]: 1.50
"""


def load(tmp_path, text: str, name: str = "net.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_model(str(path))


def test_seed_001_kernel_gradient(tmp_path):
    model = load(tmp_path, SEED_001)
    values = model.values()
    np.testing.assert_allclose(values["grad.conv1.kernel"],
                               [[0.044606, 0.094061], [0.011262, 0.068288]], atol=1e-12)
    np.testing.assert_allclose(values["grad.conv1.bias"], 0.0836, atol=1e-12)
    assert values["conv1"].shape == (4, 4) and values["grad.input"].shape == (5, 5)
    assert model.name == "seed 001" and not model.has_loss


def test_model_is_filled_in_engine_layout(tmp_path):
    model = load(tmp_path, SEED_001)
    assert model.input.shape == (1, 1, 5, 5) and model.target.shape == (1, 1, 4, 4)
    assert model.params["conv1.kernel"].shape == (1, 1, 2, 2) and model.params["conv1.bias"].shape == (1,)
    assert all(a.dtype == np.float64 for a in [model.input, model.target, *model.params.values()])
    assert model.user_shapes == {"input": (5, 5), "conv1.kernel": (2, 2), "conv1.bias": (), "conv1": (4, 4),
                                 "output": (4, 4), "target": (4, 4)}
    np.testing.assert_array_equal(model.target[0, 0], D)


def test_expect_keeps_the_text_written(tmp_path):
    model = load(tmp_path, SEED_001)
    kernel, bias, entry, conv = model.expect
    assert kernel.quantity == "grad.conv1.kernel" and kernel.index is None and kernel.tolerance is None
    assert kernel.texts.tolist() == [["0.044606", "0.094061"], ["0.011262", "0.068288"]]
    assert kernel.values.shape == (2, 2) and (kernel.line, kernel.column) == (9, 3)
    assert bias.texts.shape == () and str(bias.texts) == "0.0836"
    assert entry.index == (0, 1) and entry.label == "grad.conv1.kernel[0,1]"
    assert str(conv.texts) == "1.50" and float(conv.values) == 1.5
    upstream = load(tmp_path, SEED_001.replace("expect:\n", "expect:\n  tolerance: 1e-3\n"))
    assert all(e.tolerance == 1e-3 for e in upstream.expect)


def test_expect_texts_keep_trailing_zeros(tmp_path):
    model = load(tmp_path, SEED_001 + "  target: [[0, 0, 0.0686, 0], [0, 0.03640, 0, 0], "
                 "[0, 0.0467, 0, 0], [0, 0, 0, -0.0681]]\n")
    target = model.expect[-1]
    assert target.quantity == "target" and target.texts[1, 1] == "0.03640"
    assert target.texts[3, 3] == "-0.0681" and target.texts[0, 0] == "0"


def test_ranks_follow_what_the_user_wrote(tmp_path):
    model = load(tmp_path, """\
        input: {random: {shape: [2, 8, 8], seed: 0}}
        layers:
          - conv: {kernel: {random: {shape: [2, 3, 3], seed: 1}}}        # one filter over 2 channels
          - relu
          - pool: {size: 2}
          - flatten
          - fc: {weights: {random: {shape: [3, 9], seed: 2}}}
          - softmax
        loss: cross_entropy
        target: [0, 1, 0]
        """)
    shapes = model.user_shapes
    assert shapes["conv1"] == (6, 6) and shapes["conv1.kernel"] == (2, 3, 3) and shapes["conv1.bias"] == ()
    assert shapes["relu1"] == (6, 6) and shapes["pool1"] == (3, 3) and shapes["flatten1"] == (9,)
    assert shapes["fc1"] == (3,) and shapes["fc1.weights"] == (3, 9) and shapes["fc1.bias"] == (3,)
    assert shapes["output"] == shapes["target"] == (3,) and shapes["input"] == (2, 8, 8)
    values = model.values()
    assert values["grad.conv1.kernel"].shape == (2, 3, 3) and values["pool1"].shape == (3, 3)
    assert np.isfinite(values["loss"])


def test_a_bank_gives_stacked_maps_and_one_bias_per_filter(tmp_path):
    model = load(tmp_path, """\
        input: [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
        layers:
          - conv: {kernel: {random: {shape: [4, 1, 2, 2]}}, bias: 0.5}
          - pool: {size: 2, stride: 1, type: avg}
        loss: squared_error
        target: {random: {shape: [4, 1, 1]}}
        """)
    assert model.user_shapes["conv1"] == (4, 2, 2) and model.user_shapes["pool1"] == (4, 1, 1)
    assert model.user_shapes["conv1.bias"] == (4,)
    np.testing.assert_array_equal(model.params["conv1.bias"], [0.5] * 4)


@pytest.mark.parametrize("bias, user_shape, internal_shape", [
    ("0.1", (), (1,)),
    ("[[1, 2], [3, 4]]", (2, 2), (1, 2, 2)),   # untied: one bias per output entry
])
def test_single_filter_bias_forms(tmp_path, bias, user_shape, internal_shape):
    model = load(tmp_path, f"""\
        input: [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
        layers:
          - conv: {{kernel: [[1, 0], [0, 1]], bias: {bias}}}
        loss: none
        upstream_grad: [[1, 1], [1, 1]]
        """)
    assert model.user_shapes["conv1.bias"] == user_shape
    assert model.params["conv1.bias"].shape == internal_shape
    assert model.network.layers[0].untied_bias == (len(user_shape) > 0)
    assert model.values()["grad.conv1.bias"].shape == user_shape


def test_untied_bias_of_a_bank(tmp_path):
    model = load(tmp_path, """\
        input: [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
        layers:
          - conv: {kernel: {random: {shape: [2, 1, 2, 2]}}, bias: {random: {shape: [2, 2, 2]}}}
        loss: none
        upstream_grad: {random: {shape: [2, 2, 2]}}
        """)
    assert model.user_shapes["conv1.bias"] == (2, 2, 2) and model.network.layers[0].untied_bias


def test_default_names_count_by_kind(tmp_path):
    model = load(tmp_path, """\
        input: {random: {shape: [1, 6, 6]}}
        layers:
          - conv: {kernel: {random: {shape: [1, 1, 3, 3]}}}
          - leaky_relu: {slope: 0.2}
          - conv: {kernel: {random: {shape: [1, 1, 2, 2]}}, name: second}
          - sigmoid
          - conv: {kernel: {random: {shape: [1, 1, 1, 1]}}}
          - tanh
          - pool: {size: 1}
          - flatten: {order: F}
          - fc: {weights: {random: {shape: [2, 9]}}}
          - relu
          - softmax
        loss: cross_entropy
        target: 1
        """)
    assert model.network.names == ["conv1", "leaky_relu1", "second", "sigmoid1", "conv3", "tanh1", "pool1",
                                   "flatten1", "fc1", "relu1", "softmax1"]
    assert model.network.layers[1].slope == 0.2 and model.network.layers[7].order == "F"
    assert "second.kernel" in model.params and "conv3.bias" in model.params


def test_class_index_target_is_one_hot(tmp_path):
    model = load(tmp_path, """\
        input: [1.0, -2.0, 0.5]
        layers:
          - fc: {weights: [[1, 0, 0], [0, 1, 0], [0, 0, 1]], bias: [0, 0, 0]}
          - softmax
        loss: cross_entropy
        target: 2
        upstream_grad: null
        """)
    np.testing.assert_array_equal(model.target, [[0, 0, 1]])
    assert model.user_shapes["target"] == (3,) and model.input.shape == (1, 3)


def test_a_number_targets_a_single_output(tmp_path):
    model = load(tmp_path, """\
        input: [0.5, -1]
        layers:
          - fc: {weights: [[1, 2]]}
          - sigmoid
        loss: binary_cross_entropy
        target: 1
        """)
    np.testing.assert_array_equal(model.target, [[1.0]])
    assert model.user_shapes["target"] == (1,)


def test_random_values_are_reproducible(tmp_path):
    spec = """\
        input: {random: {shape: [1, 4, 4], seed: 7, scale: 0.5}}
        layers:
          - conv: {kernel: {random: {shape: [2, 1, 2, 2], distribution: uniform, scale: 0.1, seed: 3}}}
        loss: none
        upstream_grad: {random: {shape: [2, 3, 3]}}
        """
    first, second = load(tmp_path, spec), load(tmp_path, spec, "again.yaml")
    np.testing.assert_array_equal(first.input, second.input)
    np.testing.assert_array_equal(first.input[0], np.random.default_rng(7).normal(0, 0.5, (1, 4, 4)))
    kernel = first.params["conv1.kernel"]
    np.testing.assert_array_equal(kernel, np.random.default_rng(3).uniform(-0.1, 0.1, (2, 1, 2, 2)))
    assert np.abs(kernel).max() <= 0.1


def test_file_values_relative_to_the_spec(tmp_path):
    folder = tmp_path / "specs"
    (folder / "data").mkdir(parents=True)
    np.save(folder / "data" / "input.npy", np.arange(16, dtype=np.int32).reshape(4, 4))
    (folder / "data" / "kernel.csv").write_text("1, 0\n0, -1\n")
    (folder / "data" / "grad.txt").write_text("1 2 3\n4 5 6\n7 8 9\n")
    (folder / "net.yaml").write_text(textwrap.dedent("""\
        input: {file: data/input.npy}
        layers:
          - conv: {kernel: {file: data/kernel.csv}}
        loss: none
        upstream_grad: {file: data/grad.txt}
        """))
    model = load_model(str(folder / "net.yaml"))
    assert model.input.dtype == np.float64 and model.user_shapes["input"] == (4, 4)
    np.testing.assert_array_equal(model.params["conv1.kernel"][0, 0], [[1, 0], [0, -1]])
    np.testing.assert_array_equal(model.target[0, 0], np.arange(1, 10).reshape(3, 3))
    np.testing.assert_array_equal(model.values()["conv1"], np.full((3, 3), -5.0))


@pytest.mark.parametrize("padding, resolved, out", [
    ("1", ((1, 1), (1, 1)), (5, 5)),
    ("[1, 0]", ((1, 1), (0, 0)), (5, 3)),
    ("[[0, 2], [1, 0]]", ((0, 2), (1, 0)), (5, 4)),
    ("valid", ((0, 0), (0, 0)), (3, 3)),
    ("same", ((1, 1), (1, 1)), (5, 5)),
])
def test_padding_forms(tmp_path, padding, resolved, out):
    model = load(tmp_path, f"""\
        input: {{random: {{shape: [5, 5]}}}}
        layers:
          - conv: {{kernel: {{random: {{shape: [3, 3]}}}}, padding: {padding}}}
        loss: none
        upstream_grad: {{random: {{shape: {list(out)}}}}}
        """)
    assert model.network.layers[0].padding == resolved and model.user_shapes["conv1"] == out


def test_same_padding_of_an_even_kernel_puts_the_extra_row_after(tmp_path):
    model = load(tmp_path, """\
        input: {random: {shape: [4, 4]}}
        layers:
          - conv: {kernel: {random: {shape: [2, 2]}}, padding: same, dilation: 2}
          - pool: {size: [1, 3], stride: 1, padding: same}
        loss: none
        upstream_grad: {random: {shape: [4, 4]}}
        """)
    assert model.network.layers[0].padding == ((1, 1), (1, 1))
    assert model.network.layers[1].padding == ((0, 0), (1, 1))


def test_stdin(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(textwrap.dedent(SEED_001).encode())))
    monkeypatch.chdir(tmp_path)
    model = load_model("-")
    assert model.path == "<stdin>" and model.user_shapes["conv1"] == (4, 4)


def test_floats_without_a_dot_and_every_layer_kind_run(tmp_path):
    model = load(tmp_path, """\
        input: [[1e-1, 2E+0, -3e0], [0.5, 1, 2]]
        layers:
          - conv: {kernel: [[1, -1]], mode: convolution, stride: [1, 1]}
          - pool: {type: l2, size: [2, 1]}
          - sigmoid
          - flatten
          - fc: {weights: [[0.3, -0.2]], bias: 0.1}
          - sigmoid
        loss: binary_cross_entropy
        target: [1]
        """)
    np.testing.assert_allclose(model.input[0, 0, 0], [0.1, 2.0, -3.0])
    values = model.values()
    assert values["output"].shape == (1,) and np.isfinite(values["loss"])


def test_aliases_repeat_values(tmp_path):
    model = load(tmp_path, """\
        input: &x [&row [1, -2, 3], *row]
        layers: [relu]
        loss: none
        upstream_grad: *x
        """)
    np.testing.assert_array_equal(model.target[0, 0], [[1, -2, 3], [1, -2, 3]])
    np.testing.assert_array_equal(model.values()["relu1"], [[1, 0, 3], [1, 0, 3]])


torch = pytest.importorskip("torch")


def test_layout_matches_pytorch_for_asymmetric_settings(tmp_path):
    """A bank with unequal strides, dilations and paddings: heights and widths never swap."""
    model = load(tmp_path, """\
        input: {random: {shape: [2, 7, 9], seed: 1}}
        layers:
          - conv:
              kernel: {random: {shape: [3, 2, 2, 3], seed: 2}}
              bias: [0.1, -0.2, 0.3]
              stride: [2, 1]
              dilation: [1, 2]
              padding: [1, 2]
        loss: none
        upstream_grad: {random: {shape: [3, 4, 9], seed: 3}}
        """)
    x = torch.tensor(model.input)
    k = torch.tensor(model.params["conv1.kernel"])
    b = torch.tensor(model.params["conv1.bias"])
    expected = torch.nn.functional.conv2d(x, k, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2))
    np.testing.assert_allclose(model.values()["conv1"], expected[0].numpy(), atol=1e-12)

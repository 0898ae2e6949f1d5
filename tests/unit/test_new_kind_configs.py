"""The worked examples of the new conv kinds in configs/ hold numbers PyTorch computes too: each
``expect:`` value (written by hand) equals torch's forward output or autograd gradient."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnngrad.spec import load_model

torch = pytest.importorskip("torch")

from helpers.torchnet import torch_gradients, torch_layer  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["transposed_conv_stride2.yaml", "grouped_conv_depthwise.yaml"])
def test_expected_numbers_are_torchs(name):
    model = load_model(str(CONFIGS / name))
    _, d_input, d_params = torch_gradients(model)
    layer, = model.network.layers
    x = torch.tensor(model.input)
    params = {p: torch.tensor(model.params[f"{model.network.names[0]}.{p}"]) for p in layer.param_names}
    torchs = {model.network.names[0]: torch_layer(layer)(x, params).detach().numpy()[0],
              "grad.input": d_input[0]}
    torchs.update({f"grad.{name}": value for name, value in d_params.items()})
    assert len(model.expect) >= 3
    for expectation in model.expect:
        theirs = torchs[expectation.quantity].reshape(expectation.values.shape)
        np.testing.assert_array_equal(expectation.values, theirs, err_msg=expectation.quantity)


def test_d2l_layer_norm_example_is_torchs():
    """configs/d2l_layer_norm.yaml: d2l §8.5's nn.LayerNorm(2) on [[1, 2], [2, 3]] and, for the
    upstream gradient it gives, torch's input gradient, within the written decimals."""
    import torch.nn.functional as F
    model = load_model(str(CONFIGS / "d2l_layer_norm.yaml"))
    x = torch.tensor(model.input, requires_grad=True)
    y = F.layer_norm(x, (2,), eps=1e-5)
    y.backward(torch.tensor(model.target))
    written = {e.quantity: e.values for e in model.expect}
    np.testing.assert_allclose(written["layer_norm1"], y.detach().numpy(), rtol=0, atol=5e-6)
    np.testing.assert_allclose(written["grad.input"], x.grad.numpy(), rtol=0, atol=5e-11)
    np.testing.assert_allclose(np.round(y.detach().numpy(), 4), [[-1, 1], [-1, 1]])   # what d2l prints


def test_keras_group_norm_example_is_torchs():
    """configs/keras_group_norm.yaml: Keras's GroupNormalization(groups=2) numbers are torch's
    F.group_norm (eps 1e-3) to their 4 decimals, and the hand-written input gradient is autograd's."""
    import torch.nn.functional as F
    model = load_model(str(CONFIGS / "keras_group_norm.yaml"))
    x = torch.tensor(model.input, requires_grad=True)
    y = F.group_norm(x, 2, eps=1e-3)                  # the model's arrays carry the batch axis
    y.backward(torch.tensor(model.target))
    written = {e.quantity: e.values for e in model.expect}
    np.testing.assert_allclose(written["group_norm1"], y.detach().numpy()[0], rtol=0, atol=5e-5)
    np.testing.assert_allclose(written["grad.input"], x.grad.numpy()[0], rtol=0, atol=5e-10)


def test_mindspore_softmax2d_example_is_torchs():
    """configs/mindspore_softmax2d_channels.yaml: MindSpore's float32 Softmax2d numbers are torch's
    F.softmax(dim=1) within one float32 step, and the loss and gradient are F.cross_entropy's
    (per-pixel class indices, summed)."""
    import torch.nn.functional as F
    model = load_model(str(CONFIGS / "mindspore_softmax2d_channels.yaml"))
    x = torch.tensor(model.input, requires_grad=True)
    classes = torch.tensor(model.target).argmax(dim=1)  # (1, 3, 1, 2) one-hot → (1, 1, 2) indices
    loss = F.cross_entropy(x, classes, reduction="sum")
    loss.backward()
    written = {e.quantity: e.values for e in model.expect}
    np.testing.assert_allclose(written["softmax1"], F.softmax(x, dim=1).detach().numpy()[0], rtol=0, atol=3e-8)
    np.testing.assert_allclose(written["loss"], loss.item(), rtol=0, atol=5e-9)
    np.testing.assert_allclose(written["grad.input"], x.grad.numpy()[0], rtol=0, atol=5e-9)

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

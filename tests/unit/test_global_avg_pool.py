"""global_avg_pool, the kind added as one file (cnngrad/layers/global_pool.py): against PyTorch's
``F.adaptive_avg_pool2d(x, 1).flatten(1)``, by hand, through the checker, explain and the spec."""
from __future__ import annotations

import json

import numpy as np
import pytest

import cnngrad
from cnngrad.explain import explain
from cnngrad.layers.global_pool import GlobalAvgPool
from cnngrad.spec import SpecError
from cnngrad.spec.schema import spec_schema

NET = """\
input: {random: {shape: [2, 5, 4], seed: 3}}
layers:
  - conv: {kernel: {random: {shape: [3, 2, 2, 2], seed: 4}}, bias: [0.1, -0.2, 0.3]}
  - tanh
  - global_avg_pool
  - fc: {weights: [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], bias: [0.1, 0.2]}
  - softmax
loss: cross_entropy
target: 1
"""


def test_forward_and_backward_by_hand():
    """y[c] is the mean of map c; every entry of map c gets δ[c] / (H·W)."""
    x = np.arange(24, dtype=np.float64).reshape(1, 2, 3, 4)
    layer = GlobalAvgPool()
    y, cache = layer.forward(x, {})
    np.testing.assert_array_equal(y, [[5.5, 17.5]])        # (0+…+11)/12, (12+…+23)/12
    dx, grads = layer.backward(np.array([[12.0, -24.0]]), cache, {})
    np.testing.assert_array_equal(dx, np.concatenate([np.full((1, 1, 3, 4), 1.0), np.full((1, 1, 3, 4), -2.0)], 1))
    assert grads == {} and layer.output_shape((2, 3, 4)) == (2,)


def test_agrees_with_torch_adaptive_avg_pool_then_flatten():
    torch = pytest.importorskip("torch")
    from helpers.torchnet import rel_err
    rng = np.random.default_rng(13)
    for _ in range(20):
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 7)), int(rng.integers(1, 7)))
        x = rng.standard_normal(shape)
        layer = GlobalAvgPool()
        y, cache = layer.forward(x, {})
        dy = rng.standard_normal(y.shape)
        dx, _ = layer.backward(dy, cache, {})
        tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        ty = torch.nn.functional.adaptive_avg_pool2d(tx, 1).flatten(1)
        ty.backward(torch.from_numpy(dy))
        assert tuple(ty.shape) == y.shape
        assert rel_err(y, ty.detach().numpy()) <= 1e-10
        assert rel_err(dx, tx.grad.numpy()) <= 1e-10


def test_whole_network_gradients_agree_with_torch():
    torch = pytest.importorskip("torch")
    from helpers.torchnet import rel_err
    model = cnngrad.loads(NET)
    values = cnngrad.backward(model)
    t = {name: torch.tensor(values[name], dtype=torch.float64, requires_grad=True)
         for name in ("input", "conv1.kernel", "conv1.bias", "fc1.weights", "fc1.bias")}
    conv = torch.nn.functional.conv2d(t["input"][None], t["conv1.kernel"], t["conv1.bias"])
    pooled = torch.nn.functional.adaptive_avg_pool2d(torch.tanh(conv), 1).flatten(1)
    logits = pooled @ t["fc1.weights"].T + t["fc1.bias"]
    loss = -torch.log_softmax(logits, dim=1)[0, 1]
    loss.backward()
    assert rel_err(values["global_avg_pool1"], pooled[0].detach().numpy()) <= 1e-10
    for name, tensor in t.items():
        assert rel_err(values[f"grad.{name}"], tensor.grad.numpy()) <= 1e-10, name


def test_check_passes_with_finite_differences():
    result = cnngrad.check(cnngrad.loads(NET))
    assert result.passed
    gradients = {entry["quantity"]: entry for entry in result.document["specs"][0]["gradients"]}
    assert {"grad.input", "grad.conv1.kernel"} <= set(gradients)
    assert all(entry["status"] == "passed" and entry["kinks"] == 0 for entry in gradients.values())


def test_explain_gives_backwards_entry():
    """∂E/∂x[c,p,q] = δ[c] / (H·W): one term, equal to backward's entry."""
    model = cnngrad.loads(NET.replace("  - global_avg_pool\n", "  - global_avg_pool: {name: gap}\n"))
    values = cnngrad.backward(model)
    shown = explain(model, "grad.tanh1[2,3,1]")
    assert shown.value == pytest.approx(values["grad.tanh1"][2, 3, 1], rel=1e-12)
    assert shown.value == pytest.approx(values["grad.gap"][2] / 12, rel=1e-12)    # 4×3 map after conv


def test_a_2d_map_gives_one_value():
    values = cnngrad.forward(cnngrad.loads("input: [[1, 2], [3, 6]]\nlayers: [global_avg_pool]\nloss: none\n"
                                           "upstream_grad: [1]\n"))
    np.testing.assert_array_equal(values["output"], [3.0])


def test_a_vector_input_is_a_spec_error_at_the_layer():
    with pytest.raises(SpecError) as caught:
        cnngrad.loads("input: [1, 2, 3]\nlayers:\n  - relu\n  - global_avg_pool\nloss: none\nupstream_grad: [1]\n")
    assert (caught.value.line, caught.value.column) == (4, 5)
    assert "needs a map" in caught.value.message and "relu1" in caught.value.message


def test_it_takes_no_settings():
    with pytest.raises(SpecError) as caught:
        cnngrad.loads("input: [[1, 2], [3, 6]]\nlayers:\n  - global_avg_pool: {size: 2}\nloss: none\n"
                      "upstream_grad: [1]\n")
    assert (caught.value.line, caught.value.column) == (3, 23)     # the key `size`


def test_schema_knows_the_kind():
    text = json.dumps(spec_schema())
    assert '"global_avg_pool"' in text


def test_every_registered_kind_is_read_and_in_the_schema():
    """Spec reading and the schema derive from the registry: no kind is missing from either."""
    from cnngrad.layers import REGISTRY
    from cnngrad.spec.layers import SETTINGS
    kinds = spec_schema()["properties"]["layers"]["items"]["anyOf"]
    in_schema = set(kinds[0]["enum"]) | {key for entry in kinds[1:] for key in entry["properties"] if key != "name"}
    assert set(SETTINGS) == set(REGISTRY) == in_schema
    assert SETTINGS["pool"] == ("type", "size", "stride", "padding", "ties", "dilation", "ceil_mode",
                                "count_include_pad", "name", "from")

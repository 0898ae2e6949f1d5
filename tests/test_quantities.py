"""Quantity names: parse, print, gradient-of / value-of, and the order along the chain."""
import pytest

from cnngrad import quantities as q


def test_split_and_label_round_trip():
    assert q.split("grad.conv1.kernel[0,1]") == ("grad.conv1.kernel", "0,1")
    assert q.split("conv1") == ("conv1", None)
    assert q.parse_index("0, 1") == (0, 1)
    assert q.label("grad.conv1.kernel", (0, 1)) == "grad.conv1.kernel[0,1]"
    assert q.label("loss") == "loss"
    with pytest.raises(ValueError):
        q.parse_index("a,1")


def test_gradient_and_value_of():
    assert q.gradient_of("conv1.kernel") == "grad.conv1.kernel"
    assert q.value_of("grad.conv1.kernel") == "conv1.kernel"
    assert q.value_of("conv1") == "conv1"
    assert q.is_gradient("grad.input") and not q.is_gradient("gradient")


def test_output_is_the_last_layer():
    assert q.canonical("grad.output", ["conv1", "relu1"]) == "grad.relu1"
    assert q.canonical("output", ["conv1", "relu1"]) == "relu1"
    assert q.canonical("grad.output", []) == "grad.input"      # layers: []: the input is the output
    assert q.canonical("output", []) == "input"


def test_chain_order_values_then_deltas_with_parameters_beside_their_layer():
    order = q.chain(["conv1", "relu1", "fc1"], {"conv1": ("kernel", "bias"), "fc1": ("weights", "bias")}, True)
    assert order == ["input", "conv1", "relu1", "fc1", "loss",
                     "grad.fc1", "grad.fc1.weights", "grad.fc1.bias", "grad.relu1",
                     "grad.conv1", "grad.conv1.kernel", "grad.conv1.bias", "grad.input"]
    assert "loss" not in q.chain(["relu1"], {}, False)

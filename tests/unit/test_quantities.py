"""Quantity names: parse, print, gradient-of / value-of, and the order along the chain."""
from pathlib import Path

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


def test_shape_text_is_a_cell_or_prose():
    assert q.shape_text((2, 3)) == "2×3"
    assert q.shape_text(()) == "scalar"                        # a table cell
    assert q.shape_text((), "a scalar") == "a scalar"          # a message: "has shape a scalar"


CONFIG = Path(__file__).resolve().parents[2] / "configs" / "seed001_fc_sigmoid_deltas.yaml"


def test_known_names_and_parse_against_a_model():
    from cnngrad.spec import load_model
    model = load_model(str(CONFIG))      # sigmoid1 (2×2) → flatten1 (4) → fc1 (2), weights 2×4, no loss
    known = q.known(model)
    assert known["grad.fc1.weights"] == (2, 4) and known["grad.input"] == (2, 2) and "loss" not in known
    assert q.parse("grad.fc1.weights[1,3]", known, model) == ("grad.fc1.weights", (1, 3))
    assert q.parse("fc1", known, model) == ("fc1", None)
    for bad in ("grad.fc1.weights[2,0]", "grad.fc1.weights[0]", "grad.fc1.weights[a]", "grad.fc9", "loss"):
        with pytest.raises(ValueError):
            q.parse(bad, known, model)

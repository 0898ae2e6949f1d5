"""What a spec may leave out, and what its shapes do that a student cannot see.

- `forward` runs without a loss and target; `backward`, `check` and `explain` say they need them.
- `layers: []` is a loss-only example: the input is the output.
- `bias: [b]` is the one bias of a single 2-D or 3-D filter.
- a window (pool or strided conv) that never reaches some rows or columns is said in `forward`'s summary.
- an average pool of values near float64's largest is their (finite) mean.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from cnngrad.spec import SpecError, load_model
from helpers.cli import run_text
from helpers.specs import write_spec

MAP = "input: [[1, 2, 3], [4, 5, 6], [7, 8, 9]]\n"



def json_of(tmp_path, text: str, command: str = "forward") -> dict:
    outcome = run_text(tmp_path, text, command, "--format", "json")
    assert outcome.exit_code == 0, outcome.stderr
    return json.loads(outcome.stdout)


# --- forward without a loss -----------------------------------------------------------------

def test_forward_runs_without_loss_and_target(tmp_path):
    text = MAP + "layers:\n  - conv: {kernel: [[1, 0], [0, -1]]}\n  - relu\n"
    outcome = run_text(tmp_path, text, "forward")
    assert outcome.exit_code == 0 and outcome.stderr == ""
    assert "loss: none given" in outcome.stdout
    doc = json_of(tmp_path, text)
    # conv: x[i,j] − x[i+1,j+1] = −4 everywhere; relu → 0
    assert doc["loss"] is None and doc["layers"][0]["output"] == [[-4.0, -4.0], [-4.0, -4.0]]
    assert doc["output"] == [[0.0, 0.0], [0.0, 0.0]]
    for fmt in ("markdown", "latex"):
        assert "none given" in run_text(tmp_path, text, "forward", "--format", fmt).stdout


@pytest.mark.parametrize("command", [["backward"], ["check"], ["explain", "grad.input[0,0]"],
                                     ["explain", "input"], ["explain", "relu1[0,0]"]])
def test_the_gradient_commands_still_need_a_loss(tmp_path, command):
    """Also for explain of a value: it said to write grad.input[0,0], which then needed the loss."""
    outcome = run_text(tmp_path, MAP + "layers: [relu]\n", command)
    assert outcome.exit_code == 2
    line, = outcome.stderr.splitlines()
    assert "missing key 'loss'" in line and "forward runs without" in line


def test_a_loss_without_its_target_is_still_an_error_for_forward(tmp_path):
    with pytest.raises(SpecError, match="missing key 'target'"):
        load_model(write_spec(tmp_path, MAP + "layers: [relu]\nloss: mse\n"))


# --- layers: [] ----------------------------------------------------------------------------

def test_a_loss_only_example_runs_every_command(tmp_path):
    # E = −log 0.7; ∂E/∂y = −t/y = [−1/0.7, 0, 0]
    text = "input: [0.7, 0.2, 0.1]\nlayers: []\nloss: cross_entropy\ntarget: 0\n" \
           "expect:\n  tolerance: 1e-12\n  loss: 0.35667494393873245\n  grad.output: [-1.4285714285714286, 0, 0]\n"
    forward = json_of(tmp_path, text)
    assert forward["output"] == [0.7, 0.2, 0.1] and forward["layers"] == []
    assert forward["loss"] == pytest.approx(-np.log(0.7), rel=1e-15)
    backward = json_of(tmp_path, text, "backward")
    assert backward["gradients"]["grad.input"] == pytest.approx([-1 / 0.7, 0, 0], rel=1e-15)
    check = json_of(tmp_path, text, "check")
    assert check["passed"] and check["specs"][0]["gradients"][0]["quantity"] == "grad.input"
    explained = json_of(tmp_path, text, ["explain", "grad.output[0]"])
    assert explained["value"] == pytest.approx(-1 / 0.7, rel=1e-15)
    assert "loss: none given" not in run_text(tmp_path, text, "forward").stdout


@pytest.mark.parametrize("loss, target", [("squared_error", "[[1, 0], [0, 1]]"), ("none", None),
                                          ("{binary_cross_entropy: {from: logits}}", "[[1, 0], [0.5, 1]]")])
def test_check_passes_loss_only_examples(tmp_path, loss, target):
    objective = f"loss: none\nupstream_grad: [[1, -2], [3, 0.5]]\n" if target is None else \
        f"loss: {loss}\ntarget: {target}\n"
    doc = json_of(tmp_path, "input: [[0.3, -1.5], [2, 0.25]]\nlayers: []\n" + objective, "check")
    assert doc["passed"]


# --- a one-element bias of a single filter ---------------------------------------------------

@pytest.mark.parametrize("kernel", ["[[1, 0], [0, 1]]", "[[[1, 0], [0, 1]]]"])
def test_a_single_filter_takes_a_one_element_bias(tmp_path, kernel):
    text = MAP + f"layers:\n  - conv: {{kernel: {kernel}, bias: [0.5]}}\nloss: none\n" \
                 "upstream_grad: [[1, 2], [3, 4]]\n"
    values = load_model(write_spec(tmp_path, text)).values()
    # y = x[i,j] + x[i+1,j+1] + 0.5; ∂E/∂b = Σ δ = 10, in the shape written: [10]
    np.testing.assert_array_equal(values["conv1"], [[6.5, 8.5], [12.5, 14.5]])
    assert values["conv1.bias"].shape == (1,) and values["grad.conv1.bias"].shape == (1,)
    assert values["grad.conv1.bias"][0] == 10.0
    assert json_of(tmp_path, text, "check")["passed"]


@pytest.mark.parametrize("bias, got", [("[1, 2]", "got a list of 2 values"),
                                       ("[[1, 2, 3]]", "got a 1×3 array")])
def test_a_wrong_bias_says_what_was_written(tmp_path, bias, got):
    with pytest.raises(SpecError) as info:
        load_model(write_spec(tmp_path, MAP + f"layers:\n  - conv: {{kernel: [[1, 0], [0, 1]], bias: {bias}}}\n"))
    assert got in info.value.message and "one value [b]" in info.value.message


# --- rows and columns no window reads --------------------------------------------------------

@pytest.mark.parametrize("layers, note", [
    ("  - relu\n  - pool: {type: max, size: 2, stride: 2}\n",
     "pool1 drops the last row and column of relu1: no 2×2 window at stride 2 reads them"),
    ("  - conv: {kernel: [[1]], stride: 2}\n",     # 5×5 read at rows and columns 0, 2, 4
     "conv1 drops rows 1 and 3, and columns 1 and 3, of input"),
    ("  - pool: {type: avg, size: [3, 1], stride: [3, 1]}\n",
     "pool1 drops the last 2 rows of input"),
    ("  - conv: {kernel: [[1, 1]], stride: [1, 2], dilation: 3}\n",   # one window: columns 0 and 3
     "conv1 drops columns 1, 2 and 4 of input"),
    ("  - conv: {kernel: [[1, 1]], dilation: 2}\n",   # windows at 0, 1, 2 read 0, 2 | 1, 3 | 2, 4
     None),
])
def test_forward_says_which_rows_and_columns_a_layer_drops(tmp_path, layers, note):
    text = "input: {random: {shape: [5, 5]}}\nlayers:\n" + layers
    doc = json_of(tmp_path, text)
    assert doc["notes"] == ([] if note is None else [doc["notes"][0]])
    if note is not None:
        assert doc["notes"][0].startswith(note)
        table = run_text(tmp_path, text, "forward").stdout
        summary = table[:table.index("\n\ninput ")]   # the note sits with the summary table
        assert note in summary
        for fmt in ("markdown", "latex"):
            assert "drops" in run_text(tmp_path, text, "forward", "--format", fmt).stdout


def test_padding_that_fills_the_remainder_drops_nothing(tmp_path):
    # 5 + 1 + 1 = 7 padded rows, windows of 2 at stride 2 read 0..5: only padding row 6 is left
    doc = json_of(tmp_path, "input: {random: {shape: [5, 5]}}\nlayers:\n  - pool: {size: 2, padding: 1}\n")
    assert doc["notes"] == []


# --- average pooling near float64's largest ----------------------------------------------------

def test_average_pool_of_huge_values_is_their_mean(tmp_path):
    # the sum of four 1e308 overflows, the mean does not: 1e308, and ∂E/∂x = δ/4
    text = "input: [[1e308, 1e308], [1.5e+308, -1e308]]\nlayers:\n  - pool: {type: avg, size: 2}\n" \
           "loss: none\nupstream_grad: [[2]]\n"
    forward = json_of(tmp_path, text)
    assert forward["output"][0][0] == pytest.approx(0.625e308, rel=1e-15)
    assert json_of(tmp_path, text, "backward")["gradients"]["grad.input"] == [[0.5, 0.5], [0.5, 0.5]]


def test_expecting_a_loss_of_a_spec_without_one_says_so(tmp_path):
    with pytest.raises(SpecError) as info:
        load_model(write_spec(tmp_path, MAP + "layers: [relu]\nexpect:\n  loss: 1\n"))
    assert "the spec gives no loss" in info.value.message and "loss: none" not in info.value.message

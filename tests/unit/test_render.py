"""Renderers on hand-built models and hand-made check records: number formats, grids, every format."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cnngrad.gradcheck.results import EntryResult, ExpectResult, QuantityResult, SpecResult
from cnngrad.layers.activations import Sigmoid
from cnngrad.layers.conv import Conv
from cnngrad.layers.fc import FC
from cnngrad.layers.flatten import Flatten
from cnngrad.losses import LOSSES
from cnngrad.model import Model
from cnngrad.network import Network
from cnngrad.render import jsondoc, latex, markdown, table
from cnngrad.render.grid import format_array, grids, number_text
from cnngrad.render.reports import backward_report, forward_report

INPUT = [[0.51, 0.9, 0.88, 0.84, 0.05], [0.4, 0.62, 0.22, 0.59, 0.1], [0.11, 0.2, 0.74, 0.33, 0.14],
         [0.47, 0.01, 0.85, 0.7, 0.09], [0.76, 0.19, 0.72, 0.17, 0.57]]
UPSTREAM = [[0, 0, 0.0686, 0], [0, 0.0364, 0, 0], [0, 0.0467, 0, 0], [0, 0, 0, -0.0681]]


def kernel_model() -> Model:
    """Seed 001's kernel example, built without the spec loader: 5×5 input, 2×2 conv, loss none."""
    network = Network((1, 5, 5), [("conv1", Conv((1, 1, 2, 2)))], LOSSES["none"]())
    params = {"conv1.kernel": np.array([[[[-0.13, 0.15], [0.24, 0.12]]]]), "conv1.bias": np.zeros(1)}
    shapes = {"input": (5, 5), "conv1": (4, 4), "conv1.kernel": (2, 2), "conv1.bias": (),
              "output": (4, 4), "target": (4, 4)}
    return Model(path="kernel.yaml", network=network, params=params,
                 input=np.array(INPUT).reshape(1, 1, 5, 5), target=np.array(UPSTREAM).reshape(1, 1, 4, 4),
                 user_shapes=shapes, name="kernel example")


def fc_model() -> Model:
    """Seed 001's FC example: logits of 0.58, 0.57, 0.65, 0.55 → sigmoid → flatten → fc, loss none."""
    logits = [math.log(p / (1 - p)) for p in (0.58, 0.57, 0.65, 0.55)]
    layers = [("sigmoid1", Sigmoid()), ("flatten1", Flatten()), ("fc1", FC((2, 4)))]
    network = Network((1, 2, 2), layers, LOSSES["none"]())
    params = {"fc1.weights": np.array([[0.61, 0.82, 0.96, -1.0], [0.02, -0.5, 0.23, 0.17]]),
              "fc1.bias": np.zeros(2)}
    shapes = {"input": (2, 2), "sigmoid1": (2, 2), "flatten1": (4,), "fc1": (2,), "fc1.weights": (2, 4),
              "fc1.bias": (2,), "output": (2,), "target": (2,)}
    return Model(path="fc.yaml", network=network, params=params, input=np.array(logits).reshape(1, 1, 2, 2),
                 target=np.array([[0.25, -0.15]]), user_shapes=shapes)


def spec_result(passed=True, faulty_layer=None, entries=None, expect_passed=True) -> SpecResult:
    entries = entries or [EntryResult((0, 0), 0.25, 0.25, 1e-12, "ok")]
    gradient = QuantityResult("conv1.kernel", (2, 2), all(e.status != "fail" for e in entries),
                              max(e.abs_error for e in entries), 1e-9, sum(e.status == "kink" for e in entries),
                              entries)
    expect = ExpectResult("grad.conv1.kernel", expect_passed, 3e-7 if expect_passed else 2e-3, 5e-7,
                          expected=[[0.044, 0.094]], actual=[[0.046, 0.094]], worst=(0, 0))
    return SpecResult("net.yaml", "a net", passed, [gradient], [expect], faulty_layer=faulty_layer)


# numbers and grids

def test_a_grid_shares_one_format_with_trailing_zeros_dropped_together():
    assert format_array([0.51, 0.9], 6).tolist() == ["0.51", "0.90"]
    assert format_array([0.044606, 0.5], 6).tolist() == ["0.044606", "0.500000"]
    assert format_array([1.0, 0.0], 6).tolist() == ["1.0", "0.0"]


def test_precision_caps_the_decimals():
    assert format_array([1 / 3, 2 / 3], 3).tolist() == ["0.333", "0.667"]
    assert number_text(2.5, 0) == "2"


def test_tiny_or_huge_entries_switch_the_whole_grid_to_scientific():
    assert format_array([1e-5, 0.5], 6).tolist() == ["1.0e-05", "5.0e-01"]
    assert format_array([1e9, 1.0], 2).tolist() == ["1.0e+09", "1.0e+00"]


def test_negative_zero_and_non_finite_values():
    assert format_array([-0.0, -1e-9 * 0], 6).tolist() == ["0.0", "0.0"]
    assert format_array([-0.001, 1.0], 2).tolist() == ["0.0", "1.0"]       # rounds to an unsigned 0
    assert format_array([np.nan, np.inf, -np.inf, 1.5], 6).tolist() == [
        "nan", "inf (overflow)", "-inf (overflow)", "1.5"]  # ±inf only ever shows a true overflow


def test_a_stack_is_one_grid_per_channel_and_a_bank_one_per_filter_and_channel():
    assert [g.label for g in grids("conv1", np.zeros((2, 3, 3)), 6)] == ["conv1[0]", "conv1[1]"]
    assert [g.label for g in grids("k", np.zeros((2, 2, 1, 1)), 6)] == ["k[0,0]", "k[0,1]", "k[1,0]", "k[1,1]"]
    (vector,) = grids("fc1", np.array([1.0, 2.0]), 6)
    assert vector.vector and vector.cells == [["1.0", "2.0"]]


# reports

def test_backward_report_runs_from_the_loss_back_to_the_input():
    model = kernel_model()
    report = backward_report(model, model.values())
    assert list(report.gradients) == ["conv1", "conv1.kernel", "conv1.bias", "input"]
    np.testing.assert_allclose(report.gradients["conv1.kernel"], [[0.044606, 0.094061], [0.011262, 0.068288]])
    assert report.gradients["conv1.bias"] == pytest.approx(0.0836)


def test_forward_report_counts_parameters():
    model = fc_model()
    report = forward_report(model, model.values())
    assert [(l.name, l.kind, l.shape, l.params) for l in report.layers] == [
        ("sigmoid1", "sigmoid", (2, 2), 0), ("flatten1", "flatten", (4,), 0), ("fc1", "fc", (2,), 10)]
    assert report.loss is None


# json

def test_json_backward_of_the_fc_example_gives_the_hand_deltas():
    model = fc_model()
    doc = json.loads(jsondoc.backward(backward_report(model, model.values())))
    np.testing.assert_allclose(doc["gradients"]["grad.input"], [[0.0364182, 0.068628], [0.04675125, -0.06818625]],
                               atol=1e-12)
    assert doc["loss"] is None


def test_json_writes_non_finite_numbers_as_null():
    result = spec_result()
    result.gradients[0].max_rel_error = math.inf
    result.gradients[0].entries[0].numeric = math.nan
    text = jsondoc.check([result])
    doc = json.loads(text, parse_constant=lambda name: pytest.fail(f"invalid JSON constant {name}"))
    assert doc["specs"][0]["gradients"][0]["max_rel_error"] is None
    assert doc["specs"][0]["gradients"][0]["entries"][0]["numeric"] is None


def test_json_check_marks_a_spec_that_could_not_run():
    doc = json.loads(jsondoc.check([spec_result(), SpecResult("bad.yaml", None, False, error="bad.yaml:1:1: x")]))
    assert doc["passed"] is False
    assert doc["specs"][1]["error"] == "bad.yaml:1:1: x"
    assert "error" not in doc["specs"][0]


# table

def test_check_table_lists_failing_and_kink_entries_and_the_faulty_layer():
    entries = [EntryResult((0, 0), 0.5, 0.1, 0.4, "fail"), EntryResult((0, 1), 0.0, 0.5, 0.5, "kink", 0.0, 1.0, notable=True),
               EntryResult((1, 1), 0.2, 0.2, 0.0, "ok")]
    text = table.check([spec_result(passed=False, faulty_layer="pool1", entries=entries, expect_passed=False)])
    assert "[0,0]" in text and "fail" in text
    kink_line = next(line for line in text.splitlines() if "[0,1]" in line)
    assert "kink" in kink_line and kink_line.split()[-2:] == ["0", "1"]
    assert "[1,1]" not in text
    assert "faulty layer: pool1" in text
    assert "grad.conv1.kernel[0,0]: expected 0.044, computed 0.046" in text
    assert text.rstrip().endswith("1 spec: 0 passed, 1 failed")


def test_check_table_counts_the_entries_it_leaves_out():
    entries = [EntryResult((i,), 1.0, 0.0, 1.0, "fail") for i in range(15)]
    assert "… and 5 more" in table.check([spec_result(passed=False, entries=entries)])


def test_forward_table_has_a_summary_and_titled_grids():
    model = kernel_model()
    text = table.forward(forward_report(model, model.values()), 6)
    assert "\x1b" not in text
    assert "conv1   conv   4×4" in text and "total" in text
    assert "conv1  4×4" in text and "0.2391" in text
    assert "loss: none" in text


def test_wide_grids_are_not_squeezed_to_the_terminal_width():
    values = np.arange(40, dtype=float).reshape(2, 20) + 0.123456
    text = "".join(table._render(table._quantity("wide", "wide", values, 6)))
    assert "39.123456" in text and "…" not in text


# markdown and latex

def test_markdown_grid_is_a_table_with_index_row_and_column():
    model = kernel_model()
    text = markdown.backward(backward_report(model, model.values()), 6)
    assert "## `grad.conv1.kernel` (2×2)" in text
    assert "|  | 0 | 1 |\n| --: | --: | --: |\n| **0** | 0.044606 | 0.094061 |" in text
    assert "`grad.conv1.bias` = 0.0836" in text


def test_latex_writes_bmatrix_vectors_transposed_and_scientific_powers():
    model = fc_model()
    text = latex.forward(forward_report(model, model.values()), 6)
    assert "\n".join([r"\[ \texttt{sigmoid1} = \begin{bmatrix}", r"0.58 & 0.57 \\", "0.65 & 0.55",
                      r"\end{bmatrix} \]"]) in text
    assert r"\end{bmatrix}^\top" in text
    assert latex._number("1.5e-05") == r"1.5\times10^{-5}"
    assert latex._text("leaky_relu1 50%") == r"leaky\_relu1 50\%"


def test_latex_raises_the_column_limit_for_wide_matrices():
    text = "\n".join(latex._quantity(r"\texttt{x}", "x", np.zeros((2, 12)), 6))
    assert r"\setcounter{MaxMatrixCols}{12}" in text

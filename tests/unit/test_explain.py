"""``explain``: every kind of entry's chain-rule sum, checked against the gradient the engine computes."""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.explain import CannotExplain, explain
from cnngrad.render import latex, markdown, table
from cnngrad.spec import load_model
from helpers.cli import invoke as run

CONFIGS = "configs"

# every layer kind and setting, every loss (fused and not): each entry of each gradient is explained
NETWORKS = {
    "conv_modes_relu_maxpool_fc_softmax_ce": """
input: {random: {shape: [2, 7, 6], seed: 1}}
layers:
  - conv: {kernel: {random: {shape: [3, 2, 3, 2], seed: 2}}, bias: [0.1, -0.2, 0.3], stride: [2, 1],
           padding: [[1, 0], [0, 2]], dilation: [1, 2]}
  - relu
  - conv: {kernel: {random: {shape: [2, 3, 2, 2], seed: 3}}, mode: convolution, padding: same}
  - leaky_relu: {slope: 0.1}
  - pool: {type: max, size: 2, stride: 1, padding: 1}
  - flatten: {order: F}
  - fc: {weights: {random: {shape: [3, 56], seed: 4, scale: 0.3}}, bias: [0.1, 0.2, 0.3]}
  - softmax
loss: cross_entropy
target: 1
""",
    "untied_bias_tanh_avgpool_sigmoid_bce": """
input: {random: {shape: [5, 5], seed: 5}}
layers:
  - conv: {kernel: {random: {shape: [2, 2], seed: 6}}, bias: {random: {shape: [4, 4], seed: 7}}}
  - tanh
  - pool: {type: avg, size: 2, stride: 1, padding: 1}
  - flatten
  - fc: {weights: {random: {shape: [2, 25], seed: 8, scale: 0.2}}}
  - sigmoid
loss: binary_cross_entropy
target: [1, 0]
""",
    "l2pool_sigmoid_softmax_squared": """
input: {random: {shape: [1, 4, 4], seed: 9}}
layers:
  - sigmoid
  - pool: {type: l2, size: 2}
  - flatten
  - softmax
loss: squared_error
target: [0.1, 0.2, 0.3, 0.4]
""",
    "fc_mse": """
input: [0.5, -1.0, 2.0]
layers:
  - fc: {weights: [[0.1, 0.2, 0.3], [-0.4, 0.5, -0.6]], bias: 0.5}
  - relu
loss: mse
target: [0.3, 0.1]
""",
    "sigmoid_fc_sigmoid_tanh_bce_from_logits": """
input: [0.2, -0.3, 0.9]
layers:
  - sigmoid
  - fc: {weights: [[0.3, 0.2, 0.1], [0.4, -0.5, 0.6]]}
  - sigmoid
  - tanh
loss: {binary_cross_entropy: {from: logits}}
target: [1, 0.25]
""",
    "tied_max_split": """
input: [[1, 1, 0], [0, 1, 2], [3, 3, 1]]
layers:
  - pool: {type: max, size: 2, stride: 1, ties: split}
  - flatten
  - softmax
  - tanh
loss: {cross_entropy: {from: logits}}
target: [0.5, 0.5, 0, 0]
""",
    # loss-only examples: the input is the output, and the plain (unfused) entropy losses
    "no_layers_cross_entropy": """
input: [[0.1, 0.2], [0.3, 0.4]]
layers: []
loss: cross_entropy
target: [[0, 0.5], [0.5, 0]]
""",
    "no_layers_binary_cross_entropy": """
input: [0.9, 0.2, 0.5]
layers: []
loss: binary_cross_entropy
target: [1, 0, 0.75]
""",
    "no_layers_mse": """
input: [[0.9, 0.2], [0.5, -3]]
layers: []
loss: mse
target: [[1, 0], [0.75, 2]]
""",
}


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def gradient_entries(model):
    values = model.values()
    for name, value in values.items():
        if name.startswith("grad."):
            for index in np.ndindex(value.shape):
                yield f"{name}[{','.join(map(str, index))}]" if index else name, float(value[index])


def assert_every_entry_explained(model):
    count = 0
    for quantity, value in gradient_entries(model):
        explained = explain(model, quantity)
        assert explained.value == value
        assert abs(explained.total - value) <= 1e-12 * max(1.0, abs(value)), quantity
        listed = sum(t.value for t in explained.terms) + explained.more_total
        assert abs(listed - value) <= 1e-12 * max(1.0, abs(value)), quantity
        for term in explained.terms:
            assert term.value != 0
            assert np.isclose(np.prod([v for _, v in term.factors]), term.value, rtol=1e-15, atol=0)
        count += 1
    return count


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_the_explained_sum_is_the_engines_gradient_for_every_entry(tmp_path, name):
    assert assert_every_entry_explained(load_model(write(tmp_path, name, NETWORKS[name]))) > 0


@pytest.mark.parametrize("path", ["seed000_conv_relu_pool_fc_softmax.yaml", "seed001_fc_sigmoid_deltas.yaml",
                                  "seed004_true_convolution.yaml", "seed004_stride2.yaml",
                                  "seed002_conv_relu_pool_fc_sigmoid_bce.yaml"])
def test_every_entry_of_the_worked_examples(path):
    assert_every_entry_explained(load_model(f"{CONFIGS}/{path}"))


def kernel_example():
    return explain(load_model(f"{CONFIGS}/seed001_kernel_gradient_corrected.yaml"), "grad.conv1.kernel[0,1]")


def test_a_kernel_entry_is_the_input_correlated_with_the_deltas():
    explained = kernel_example()
    assert "Σ_{i,j} δ[d,i,j] · x[c, s·i + r·m, s·j + r·n]" in explained.formula
    assert ("δ", "grad.conv1") in explained.where and ("x", "input") in explained.where
    assert [[text for text, _ in term.factors] for term in explained.terms] == [
        ["grad.conv1[0,2]", "input[0,3]"], ["grad.conv1[1,1]", "input[1,2]"],
        ["grad.conv1[2,1]", "input[2,2]"], ["grad.conv1[3,3]", "input[3,4]"]]
    assert explained.zeros == 12
    assert explained.total == pytest.approx(0.0941186865, abs=1e-15)


def test_true_convolution_says_where_the_rotation_enters():
    model = load_model(f"{CONFIGS}/seed004_true_convolution.yaml")
    explained = explain(model, "grad.conv1.kernel[0,0]")
    assert "(kh−1−m)" in explained.formula
    assert any("rotated 180°" in "".join(map(str, note)) for note in explained.notes)
    assert "K[d,c,kh−1−m,kw−1−n]" in explain(model, "grad.input[0,0]").formula


def seed000(quantity):
    return explain(load_model(f"{CONFIGS}/seed000_conv_relu_pool_fc_softmax.yaml"), quantity)


def test_a_pool_input_names_its_window_and_the_winner():
    won, lost = seed000("grad.relu1[1,2]"), seed000("grad.relu1[0,0]")
    assert "".join(map(str, won.notes[0])) == ("window pool1[0,1] reads relu1[0,2] … relu1[1,3]; "
                                               "its maximum 0.56 is at relu1[1,2]")
    assert [text for text, _ in won.terms[0].factors] == ["grad.pool1[0,1]", "1 (the maximum)"]
    assert lost.terms == [] and lost.zeros == 1 and lost.value == 0


def test_a_tie_says_how_it_was_split(tmp_path):
    model = load_model(write(tmp_path, "tie", NETWORKS["tied_max_split"]))
    explained = explain(model, "grad.input[2,0]")
    note = "".join(str(part) for part in explained.notes[0])
    assert "tied with input[2,1]" in note and "each gets δ/2 (ties: split)" in note
    assert explained.terms[0].factors[1] == ("1/2 (a tied maximum, shared)", 0.5)


def test_an_activation_gives_its_derivative_at_the_point():
    explained = seed000("grad.conv1[1,2]")
    assert explained.formula == "∂E/∂x[i] = δ[i] · relu′(x[i])"
    assert [text for text, _ in explained.terms[0].factors] == ["grad.relu1[1,2]", "relu′(conv1[1,2])"]
    assert explained.notes[0][-1] == 1.0


def test_an_fc_weight_is_delta_times_activation():
    explained = seed000("grad.fc1.weights[0,2]")
    assert explained.formula == "∂E/∂W[o,i] = δ[o] · a[i]"
    assert [text for text, _ in explained.terms[0].factors] == ["grad.fc1[0]", "flatten1[2]"]


def test_a_delta_before_a_fused_softmax_comes_from_the_loss():
    explained = seed000("grad.fc1[1]")
    assert "y[k] · Σ_j t[j] − t[k]" in explained.formula
    assert explained.total == pytest.approx(-0.62667998, abs=1e-8)


def test_a_layer_delta_sums_over_the_next_layers_readers():
    explained = seed000("grad.flatten1[1]")
    assert [[text for text, _ in term.factors] for term in explained.terms] == [
        ["fc1.weights[0,1]", "grad.fc1[0]"], ["fc1.weights[1,1]", "grad.fc1[1]"]]


@pytest.mark.parametrize("quantity, message", [
    ("grad.conv9[0,0]", "unknown quantity 'grad.conv9'"), ("conv1[0,0]", "write grad.conv1[0,0]"),
    ("grad.conv1.kernel", "name one entry"), ("grad.conv1.kernel[2,0]", "out of range")])
def test_what_cannot_be_explained_says_why(quantity, message):
    with pytest.raises(CannotExplain, match=message.replace("[", r"\[")):
        seed000(quantity)


@pytest.mark.parametrize("quantity, message", [
    ("grad.conv1.kernel[0]", "index [0] gives 1 of the 2 axes of grad.conv1.kernel (shape 2×2); "
                             "an entry needs all 2, like grad.conv1.kernel[0,0]"),
    ("grad.conv1[1]", "index [1] gives 1 of the 2 axes of grad.conv1 (shape 4×4); "
                      "an entry needs all 2, like grad.conv1[1,0]"),
    ("grad.fc1.weights[0,1,2]", "index [0,1,2] has 3 axes but grad.fc1.weights has 2 (shape 2×4), "
                                "like grad.fc1.weights[0,1]"),
    ("grad.conv1.bias[0]", "grad.conv1.bias is a scalar: write grad.conv1.bias, without an index"),
    ("loss", "explain takes a gradient entry: the loss E itself is printed by `cnngrad forward` "
             "(its formula: docs/reference.md §3), and its gradient at the output by "
             "explain SPEC 'grad.output[0]'"),
    ("conv1[0,1]", "explain takes a gradient entry: for ∂E/∂conv1[0,1] write grad.conv1[0,1] "
                   "(the values themselves are printed by `cnngrad forward`)"),
    ("fc1.weights", "explain takes a gradient entry: for ∂E/∂fc1.weights write grad.fc1.weights[0,0] "
                    "(the values themselves are printed by `cnngrad forward`)"),
    ("target[1]", "explain takes a gradient entry, and the target has none: it is given, not computed")])
def test_a_wrong_index_or_a_value_instead_of_a_gradient_says_what_to_write(quantity, message):
    """An index of the wrong length names the axes it needs; a value or the loss, the gradient entry to write."""
    with pytest.raises(CannotExplain) as caught:
        seed000(quantity)
    assert str(caught.value) == f"explain {quantity}: {message}"


def test_the_explain_command_on_the_loss_is_one_error_line_naming_what_to_write():
    result = run("explain", f"{CONFIGS}/seed000_conv_relu_pool_fc_softmax.yaml", "loss")
    assert result.exit_code == 2
    line, = result.output.strip().splitlines()
    assert line.startswith("error: configs/seed000_conv_relu_pool_fc_softmax.yaml: explain loss: ")
    assert "grad.output[0]" in line and "unknown quantity" not in line


def test_a_scalar_gradient_needs_no_index():
    assert seed000("grad.conv1.bias").quantity == "grad.conv1.bias"


def test_renderers_list_nonzero_terms_and_count_the_zeros():
    explained = kernel_example()
    text = table.explain(explained, 10)
    assert "grad.conv1[0,2] · input[0,3]" in text and "0.068628 · 0.84" in text
    assert "… and 12 terms that are 0" in text
    md = markdown.explain(explained, 10)
    assert "| + | grad.conv1[1,1] · input[1,2] | 0.0364182 · 0.22 |" in md
    tex = latex.explain(explained, 10)
    assert tex.isascii() and r"\begin{tabular}" in tex


@pytest.mark.parametrize("fmt", ["table", "markdown", "latex", "json"])
def test_the_explain_command_in_every_format(fmt):
    result = run("explain", f"{CONFIGS}/seed001_kernel_gradient_corrected.yaml", "grad.conv1.kernel[0,1]",
                 "--format", fmt, "--precision", "10")
    assert result.exit_code == 0, result.output
    if fmt == "json":
        import json
        doc = json.loads(result.output)
        assert doc["value"] == doc["total"] == pytest.approx(0.0941186865) and doc["zeros"] == 12
    else:
        assert "0.0941186865" in result.output


def test_the_explain_command_rejects_a_quantity_with_one_error_line():
    result = run("explain", f"{CONFIGS}/seed000_conv_relu_pool_fc_softmax.yaml", "grad.fc1.weights[0,9]")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: configs/seed000_conv_relu_pool_fc_softmax.yaml: explain grad.fc1.weights[0,9]: "
        "index [0,9] is out of range for grad.fc1.weights of shape 2×4"]


def big_kernel_spec(tmp_path, size: int) -> str:
    return write(tmp_path, "big", f"""
input: {{random: {{shape: [{size}, {size}], seed: 1}}}}
layers:
  - conv: {{kernel: [[0.1, 0.2], [0.3, 0.4]], bias: 0}}
  - relu
loss: none
upstream_grad: {{random: {{shape: [{size - 1}, {size - 1}], seed: 2}}}}
""")


def test_past_the_cap_the_largest_terms_are_listed_and_the_rest_summed(tmp_path):
    from cnngrad.explain import TERM_LIMIT
    model = load_model(big_kernel_spec(tmp_path, 40))
    explained = explain(model, "grad.conv1.kernel[1,0]")
    values = model.values()
    delta, x = values["grad.conv1"], values["input"][1:, :-1]        # K[1,0] meets x[i+1, j]
    products = (delta * x).ravel()
    nonzero = products[products != 0]
    assert explained.zeros == products.size - nonzero.size > 0      # the relu's dead units
    assert len(explained.terms) == TERM_LIMIT and explained.more == nonzero.size - TERM_LIMIT
    largest = np.sort(np.abs(nonzero))[::-1][:TERM_LIMIT]
    np.testing.assert_array_equal([abs(t.value) for t in explained.terms], largest)
    assert explained.more_total == pytest.approx(explained.value - sum(t.value for t in explained.terms), abs=1e-12)
    text = table.explain(explained, 6)
    assert f"… and {explained.more} more terms summing to" in text
    assert f"the {TERM_LIMIT} largest of {nonzero.size} nonzero terms" in text
    assert text.count(" · input[") == TERM_LIMIT


def test_json_says_what_was_left_out_only_when_something_was(tmp_path):
    import json

    from cnngrad.render import jsondoc
    doc = json.loads(jsondoc.explain(explain(load_model(big_kernel_spec(tmp_path, 40)), "grad.conv1.kernel[0,0]")))
    assert len(doc["terms"]) == 50 and doc["more"] > 0
    assert sum(t["value"] for t in doc["terms"]) + doc["more_total"] == pytest.approx(doc["value"], abs=1e-12)
    small = json.loads(jsondoc.explain(kernel_example()))
    assert "more" not in small and "more_total" not in small


@pytest.mark.slow
def test_a_kernel_entry_over_a_million_inputs_is_explained_in_seconds(tmp_path):
    """It listed 998,001 terms and took more than a minute."""
    import time
    model = load_model(big_kernel_spec(tmp_path, 1000))
    started = time.process_time()
    text = table.explain(explain(model, "grad.conv1.kernel[0,0]"), 6)
    assert time.process_time() - started < 30
    assert len(text.splitlines()) < 80


def test_the_readme_markdown_sample_is_the_real_output():
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    sample = readme.split("```markdown\n", 1)[1].split("```\n", 1)[0]
    result = run("explain", f"{CONFIGS}/seed001_kernel_gradient_corrected.yaml", "grad.conv1.kernel[0,1]",
                 "--precision", "10", "--format", "markdown")
    assert result.output == sample


@pytest.mark.parametrize("quantity", ["penalty", "data_loss", "losses[1]"])
def test_a_part_of_the_loss_instead_of_a_gradient_is_named_as_itself_not_as_the_loss(quantity):
    """The penalty, the data loss and an example's loss are values too: the error names the one
    asked for (not "the loss E") and where it is printed."""
    model = load_model(f"{CONFIGS}/cs231n_softmax_batch_mean_l2.yaml")
    with pytest.raises(CannotExplain) as caught:
        explain(model, quantity)
    assert str(caught.value) == (f"explain {quantity}: explain takes a gradient entry: {quantity} itself is "
                                 "printed by `cnngrad forward`, and the loss's gradient at the output by "
                                 "explain SPEC 'grad.output[0,0]'")

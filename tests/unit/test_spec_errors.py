"""Every kind of bad spec is one SpecError naming the line, the quantity path and what is wrong."""
from __future__ import annotations

import textwrap

import pytest

from cnngrad.spec import Limits, SpecError, load_model

INPUT = "input: [[1, 2, 3], [4, 5, 6], [7, 8, 9]]\n"
UPSTREAM = "loss: none\nupstream_grad: [[1, 2, 3], [4, 5, 6], [7, 8, 9]]\n"


def error(tmp_path, text: str | bytes, name: str = "net.yaml", **kwargs) -> SpecError:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text))
    with pytest.raises(SpecError) as info:
        load_model(str(path), **kwargs)
    err = info.value
    assert "\n" not in str(err)
    assert str(err).startswith(str(path))
    return err


def check(err: SpecError, line: int | None, path: str, *words: str) -> None:
    assert err.line == line, str(err)
    assert err.path == path, str(err)
    for word in words:
        assert word in err.message, str(err)


# --- the file itself -------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(SpecError) as info:
        load_model(str(tmp_path / "nope.yaml"))
    assert info.value.line is None and "not found" in str(info.value)
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: file not found"


def test_binary_file(tmp_path):
    check(error(tmp_path, b"input: \x00\x01\x02"), None, "", "binary")


def test_undecodable_file(tmp_path):
    check(error(tmp_path, b"input: \xff\xfe\xfa"), None, "", "UTF-8")


def test_file_too_large(tmp_path):
    check(error(tmp_path, INPUT + "layers: [relu]\n", limits=Limits(max_file_bytes=10)),
          None, "", "larger than 10 bytes")


def test_not_yaml(tmp_path):
    check(error(tmp_path, "input: [1, 2\nlayers: {\n"), 2, "", "not valid YAML")


def test_top_level_not_a_mapping(tmp_path):
    check(error(tmp_path, "- 1\n- 2\n"), 1, "", "expected a spec", "not a list")


def test_empty_file(tmp_path):
    check(error(tmp_path, ""), 1, "", "empty")


# --- YAML structure --------------------------------------------------------------------------

def test_key_given_twice(tmp_path):
    err = error(tmp_path, INPUT + "layers: [relu]\nloss: none\nloss: mse\n")
    check(err, 4, "", "'loss'", "twice")


def test_key_given_twice_in_a_layer(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - conv:\n      kernel: [[1]]\n      kernel: [[2]]\n")
    check(err, 5, "layers[0].conv", "'kernel'", "twice")


def test_alias_bomb(tmp_path):
    rows = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        rows.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    err = error(tmp_path, "\n".join(rows) + "\n")
    check(err, 7, "g", "expands to more than", "nodes")


def test_merge_key(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - conv: &c {kernel: [[1]]}\n  - conv: {<<: *c, stride: 1}\n" + UPSTREAM)
    check(err, 4, "layers[1].conv", "merge keys (<<) are not supported; write the keys out")
    assert err.column == 12


def test_recursive_alias(tmp_path):
    check(error(tmp_path, "input: &a [1, *a]\nlayers: [relu]\n"), 1, "input[1]", "recursive")


@pytest.mark.parametrize("opening, closing, column", [("[", "]", 8 + 63), ("[ ", " ]", 8 + 63 * 2),
                                                     ("{a: ", "}", 8 + 62 * 4 + 1)])   # a key is a level
def test_too_deep_nesting(tmp_path, opening, closing, column):
    """cnngrad's limit fires first, at the node 64 levels down (the root is level 1), before
    PyYAML's own (libyaml's, since PyYAML 6.0.4, is 1000 flow levels)."""
    err = error(tmp_path, "input: " + opening * 5000 + "1" + closing * 5000 + "\nlayers: [relu]\n")
    check(err, 1, err.path, "nested more than 64 levels")
    assert err.column == column
    assert err.path.startswith("input.a.a" if "a" in opening else "input[0][0]") and len(err.path) < 100


def test_too_deep_nesting_under_block_levels(tmp_path):
    text = "input: [[1]]\nlayers:\n  - conv:\n      kernel: " + "[" * 2000 + "1" + "]" * 2000 + "\n"
    err = error(tmp_path, text)
    check(err, 4, err.path, "nested more than 64 levels")
    assert err.path.startswith("layers[0].conv.kernel[0][0]")
    assert err.column == 15 + 60      # root, layers, [0], conv, kernel: 5 levels before the brackets


def test_brackets_in_text_are_not_nesting(tmp_path):
    text = "name: '" + "[" * 2000 + "'\ndescription: x" + "{" * 100 + "  # [[[[[\ninput: [[1, 2]]\n" \
           "layers: [relu]\nloss: none\nupstream_grad: [[1, 2]]\n"
    (tmp_path / "net.yaml").write_text(text)
    assert load_model(str(tmp_path / "net.yaml")).name == "[" * 2000


# --- values ----------------------------------------------------------------------------------

def test_ragged_rows(tmp_path):
    err = error(tmp_path, INPUT + textwrap.dedent("""\
        layers:
          - conv:
              kernel: [[-0.13, 0.15],
                       [0.24, 0.12, 0.3]]
        """) + UPSTREAM)
    check(err, 5, "layers[0].conv.kernel", "rows have different lengths (2 and 3)")
    assert err.column == 16


def test_mixed_numbers_and_lists(tmp_path):
    check(error(tmp_path, "input: [[1, 2], 3]\nlayers: [relu]\n"), 1, "input", "mixes numbers and lists")


def test_string_where_a_number_belongs(tmp_path):
    check(error(tmp_path, "input: [[1, a], [2, 3]]\nlayers: [relu]\n"), 1, "input[0][1]",
          "expected a number", "'a'")


def test_boolean_where_a_number_belongs(tmp_path):
    check(error(tmp_path, "input: [[1, true], [2, 3]]\nlayers: [relu]\n"), 1, "input[0][1]",
          "expected a number", "boolean")


@pytest.mark.parametrize("word", [".nan", ".inf", "-.Inf", "1e999"])
def test_nan_and_infinity(tmp_path, word):
    check(error(tmp_path, f"input: [[1, {word}], [2, 3]]\nlayers: [relu]\n"), 1, "input[0][1]",
          "not a finite number")


@pytest.mark.parametrize("value, path", [("[]", "input"), ("[[], []]", "input[0]")])
def test_empty_array(tmp_path, value, path):
    check(error(tmp_path, f"input: {value}\nlayers: [relu]\n"), 1, path, "empty array")


def test_random_shape_too_large(tmp_path):
    err = error(tmp_path, "input: {random: {shape: [1000000, 1000000]}}\nlayers: [relu]\n")
    check(err, 1, "input.random.shape", "1000000000000 entries", "Limits.max_entries")


def test_random_unknown_distribution(tmp_path):
    err = error(tmp_path, "input: {random: {shape: [2, 2], distribution: gauss}}\nlayers: [relu]\n")
    check(err, 1, "input.random.distribution", "normal, uniform")


def test_missing_value_file(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - conv: {kernel: {file: k.npy}}\n" + UPSTREAM)
    check(err, 3, "layers[0].conv.kernel.file", "'k.npy' not found")


def test_value_file_with_nan(tmp_path):
    (tmp_path / "k.csv").write_text("1,nan\n2,3\n")
    err = error(tmp_path, INPUT + "layers:\n  - conv: {kernel: {file: k.csv}}\n" + UPSTREAM)
    check(err, 3, "layers[0].conv.kernel.file", "NaN")


def test_value_source_with_unknown_key(tmp_path):
    err = error(tmp_path, "input: {rand: {shape: 3}}\nlayers: [relu]\n")
    check(err, 1, "input", "unknown key 'rand'", "did you mean 'random'")


# --- keys and layer kinds --------------------------------------------------------------------

def test_unknown_top_level_key(tmp_path):
    err = error(tmp_path, INPUT + "layer: [relu]\n")
    check(err, 2, "", "unknown key 'layer'", "did you mean 'layers'", "allowed: name, description")


def test_unknown_layer_key(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - conv: {kernal: [[1]]}\n")
    check(err, 3, "layers[0].conv", "unknown key 'kernal'", "did you mean 'kernel'", "allowed: kernel, bias")


def test_unknown_layer_kind(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - relu\n  - rlu\n")
    check(err, 4, "layers[1]", "unknown layer kind 'rlu'", "did you mean 'relu'", "allowed: conv")


def test_unknown_layer_kind_with_settings(tmp_path):
    check(error(tmp_path, INPUT + "layers:\n  - pooling: {size: 2}\n"), 3, "layers[0]",
          "unknown layer kind 'pooling'", "did you mean 'pool'")


def test_unknown_word(tmp_path):
    check(error(tmp_path, INPUT + "layers:\n  - conv: {kernel: [[1]], mode: convolutoin}\n"), 3,
          "layers[0].conv.mode", "cross_correlation, convolution", "did you mean 'convolution'")


def test_two_kinds_in_one_entry(tmp_path):
    check(error(tmp_path, INPUT + "layers:\n  - {relu: null, sigmoid: null}\n"), 3, "layers[0]",
          "one kind")


@pytest.mark.parametrize("layers, line, path, message", [
    ("  - relu: {name: a}\n    name: b\n", 4, "layers[0].name", "the layer's name is given twice"),
    ("  - {name: a}\n", 3, "layers[0]", "a layer entry needs a kind, e.g. `- relu`"),
    ("  - conv\n", 3, "layers[0]", "conv needs 'kernel'"),
    ("  - conv: {stride: 1}\n", 3, "layers[0].conv", "conv needs 'kernel'"),
    ("  - conv: {kernel: [[1]], padding: [[1, 1], 2]}\n", 3, "layers[0].conv.padding",
     "padding as pairs is [[top, bottom], [left, right]]: two [before, after] pairs"),
    ("  - conv: {kernel: [[1]], padding: [[1, 1], [1, 1], [1, 1]]}\n", 3, "layers[0].conv.padding",
     "padding as pairs is [[top, bottom], [left, right]]: two [before, after] pairs"),
])
def test_a_layer_entry_of_the_wrong_form(tmp_path, layers, line, path, message):
    err = error(tmp_path, INPUT + "layers:\n" + layers + UPSTREAM)
    assert (err.line, err.path, err.message) == (line, path, message)


def test_cross_entropy_of_an_input_that_sums_to_other_than_1(tmp_path):
    # no layers: the input is the output, and 0.2 + 0.2 = 0.4 is no distribution
    err = error(tmp_path, "input: [0.2, 0.2]\nlayers: []\nloss: cross_entropy\ntarget: [1, 0]\n")
    check(err, 3, "loss", "its entries sum to 0.4, not 1 (to within 0.01)", "add `- softmax` as the last layer")


def test_missing_input(tmp_path):
    check(error(tmp_path, "layers: [relu]\n"), 1, "", "missing key 'input'")


def test_missing_layers(tmp_path):
    check(error(tmp_path, INPUT), 1, "", "missing key 'layers'")


def test_layers_must_be_a_list(tmp_path):
    check(error(tmp_path, INPUT + "layers: relu\n"), 2, "layers", "a list of layers")


def test_missing_target(tmp_path):
    check(error(tmp_path, INPUT + "layers: [relu]\nloss: mse\n"), 1, "", "missing key 'target'")


def test_missing_upstream_grad(tmp_path):
    check(error(tmp_path, INPUT + "layers: [relu]\nloss: none\n"), 1, "", "missing key 'upstream_grad'")


def test_missing_loss(tmp_path):
    check(error(tmp_path, INPUT + "layers: [relu]\ntarget: 1\n"), 1, "", "missing key 'loss'", "squared_error")


def test_target_with_loss_none(tmp_path):
    check(error(tmp_path, INPUT + "layers: [relu]\n" + UPSTREAM + "target: 1\n"), 5, "target",
          "does not go with loss: none")


def test_missing_conv_kernel(tmp_path):
    check(error(tmp_path, INPUT + "layers:\n  - conv: {stride: 1}\n"), 3, "layers[0].conv", "needs 'kernel'")


def test_duplicate_layer_names(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - relu\n  - relu: {name: relu1}\n" + UPSTREAM)
    check(err, 4, "layers[1].relu.name", "'relu1' is used twice")


def test_bad_layer_name(tmp_path):
    check(error(tmp_path, INPUT + "layers:\n  - relu: {name: my.relu}\n"), 3, "layers[0].relu.name",
          "letters, digits and _")


# --- sizes and shapes ------------------------------------------------------------------------

@pytest.mark.parametrize("setting, path, words", [
    ("stride: 0", "layers[0].conv.stride", "stride must be at least 1, not 0"),
    ("stride: [1, -2]", "layers[0].conv.stride[1]", "stride must be at least 1, not -2"),
    ("dilation: 0", "layers[0].conv.dilation", "dilation must be at least 1"),
    ("padding: -1", "layers[0].conv.padding", "padding must be at least 0, not -1"),
    ("padding: [[0, -1], [0, 0]]", "layers[0].conv.padding[0][1]", "padding must be at least 0"),
    ("stride: 1.5", "layers[0].conv.stride", "whole number"),
])
def test_bad_conv_sizes(tmp_path, setting, path, words):
    check(error(tmp_path, INPUT + f"layers:\n  - conv: {{kernel: [[1]], {setting}}}\n" + UPSTREAM),
          3, path, words)


def test_zero_pool_size(tmp_path):
    check(error(tmp_path, INPUT + "layers:\n  - pool: {size: 0}\n"), 3, "layers[0].pool.size",
          "size must be at least 1")


def test_kernel_larger_than_padded_input(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - conv: {kernel: [[1, 1, 1, 1], [1, 1, 1, 1]]}\n" + UPSTREAM)
    check(err, 3, "layers[0].conv.kernel", "2×4 is larger than its padded input 3×3")


def test_dilated_kernel_larger_than_input(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - conv: {kernel: [[1, 1], [1, 1]], dilation: 3}\n" + UPSTREAM)
    check(err, 3, "layers[0].conv.kernel", "dilated to 4×4", "3×3")


def test_pool_window_larger_than_input(tmp_path):
    check(error(tmp_path, INPUT + "layers:\n  - pool: {size: [2, 4]}\n" + UPSTREAM), 3,
          "layers[0].pool.size", "window 2×4 is larger than its input 3×3")


def test_max_pool_padding_more_than_half_the_window(tmp_path):
    check(error(tmp_path, INPUT + "layers:\n  - pool: {size: 2, padding: 2}\n" + UPSTREAM), 3,
          "layers[0].pool.padding", "more than half the window", "−∞")


def test_ties_only_for_max_pooling(tmp_path):
    check(error(tmp_path, INPUT + "layers:\n  - pool: {type: avg, size: 2, ties: split}\n"), 3,
          "layers[0].pool.ties", "max pooling only")


def test_fc_after_a_map_without_flatten(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - fc: {weights: [[1, 2, 3]]}\nloss: none\nupstream_grad: [1]\n")
    check(err, 3, "layers[0]", "fc needs a vector", "add `- flatten`")


def test_conv_after_flatten(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - flatten\n  - conv: {kernel: [[1]]}\n")
    check(err, 4, "layers[1]", "conv needs a map", "flatten1", "vector of 9 values")


def test_fc_width_mismatch(tmp_path):
    err = error(tmp_path, INPUT + textwrap.dedent("""\
        layers:
          - pool: {size: 2, stride: 1}
          - flatten
          - fc:
              weights: [[1, 2, 3, 4, 5]]
        loss: none
        upstream_grad: [1]
        """))
    check(err, 6, "layers[2].fc.weights", "the weights have 5 columns but its input has 4 values (flatten1)")


def test_fc_bias_length(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - flatten\n  - fc:\n      weights: {random: {shape: [2, 9]}}\n"
                "      bias: [1, 2, 3]\n")
    check(err, 6, "layers[1].fc.bias", "fc1.bias has shape 3", "2 row(s)")


def test_conv_channels_mismatch(tmp_path):
    err = error(tmp_path, "input: {random: {shape: [3, 4, 4]}}\nlayers:\n"
                "  - conv: {kernel: {random: {shape: [2, 2, 1, 1]}}}\n")
    check(err, 3, "layers[0].conv.kernel", "the kernel has 2 channel(s) but its input has 3 (input)")


def test_2d_kernel_on_a_multichannel_input(tmp_path):
    err = error(tmp_path, "input: {random: {shape: [3, 4, 4]}}\nlayers:\n  - conv: {kernel: [[1]]}\n")
    check(err, 3, "layers[0].conv.kernel", "has 1 channel(s)", "(C, kh, kw)")


def test_conv_bias_wrong_shape(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - conv: {kernel: [[1]], bias: [1, 2]}\n" + UPSTREAM)
    check(err, 3, "layers[0].conv.bias", "scalar", "untied bias of the output's shape 3×3", "got a list of 2 values")


def test_bank_bias_wrong_length(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - conv:\n      kernel: {random: {shape: [2, 1, 2, 2]}}\n"
                "      bias: [1, 2, 3]\n")
    check(err, 5, "layers[0].conv.bias", "2 values (one per filter)", "2×2×2", "got a list of 3 values")


def test_kernel_of_wrong_rank(tmp_path):
    check(error(tmp_path, INPUT + "layers:\n  - conv: {kernel: [1, 2]}\n"), 3, "layers[0].conv.kernel",
          "2-D (kh, kw)", "not 1-D")


def test_target_of_wrong_shape(tmp_path):
    check(error(tmp_path, INPUT + "layers: [relu]\nloss: mse\ntarget: [1, 2]\n"), 4, "target",
          "target has shape 2 but the output (relu1) has shape 3×3")


def test_upstream_grad_of_wrong_shape(tmp_path):
    check(error(tmp_path, INPUT + "layers: [relu]\nloss: none\nupstream_grad: [[1, 2]]\n"), 4,
          "upstream_grad", "upstream_grad has shape 1×2", "3×3")


def test_class_index_out_of_range(tmp_path):
    check(error(tmp_path, INPUT + "layers: [flatten, softmax]\nloss: cross_entropy\ntarget: 9\n"), 4,
          "target", "class index 9 is out of range", "9 classes")


def test_class_index_needs_a_vector(tmp_path):
    check(error(tmp_path, INPUT + "layers: [softmax]\nloss: cross_entropy\ntarget: 0\n"), 4,
          "target", "class index needs a vector output")


def test_layer_output_too_large(tmp_path):
    err = error(tmp_path, "input: {random: {shape: [1, 100, 100]}}\nlayers:\n"
                "  - conv: {kernel: {random: {shape: [600, 1, 1, 1]}}}\n")
    check(err, 3, "layers[0]", "would output 600×100×100", "Limits.max_entries")


# --- expect ----------------------------------------------------------------------------------

def test_expect_unknown_quantity(tmp_path):
    err = error(tmp_path, INPUT + "layers: [relu]\n" + UPSTREAM + "expect:\n  grad.relu: 1\n")
    check(err, 6, "expect", "unknown quantity 'grad.relu'", "did you mean 'grad.relu1'", "known:")


def test_expect_loss_without_a_loss(tmp_path):
    err = error(tmp_path, INPUT + "layers: [relu]\n" + UPSTREAM + "expect:\n  loss: 1\n")
    check(err, 6, "expect", "unknown quantity 'loss'", "loss: none has no loss")


def test_expect_index_out_of_range(tmp_path):
    err = error(tmp_path, INPUT + "layers: [relu]\n" + UPSTREAM + "expect:\n  grad.relu1[3,0]: 1\n")
    check(err, 6, "expect", "index [3,0] is out of range for grad.relu1 of shape 3×3")


def test_expect_index_of_wrong_rank(tmp_path):
    err = error(tmp_path, INPUT + "layers: [relu]\n" + UPSTREAM + "expect:\n  relu1[1]: 1\n")
    check(err, 6, "expect", "index [1] gives 1 of the 2 axes of relu1 (shape 3×3)", "like relu1[1,0]")


def test_expect_value_of_wrong_shape(tmp_path):
    err = error(tmp_path, INPUT + "layers: [relu]\n" + UPSTREAM + "expect:\n  relu1: [1, 2]\n")
    check(err, 6, "expect.relu1", "relu1 has shape 3×3", "shape 2")


def test_expect_bad_tolerance(tmp_path):
    err = error(tmp_path, INPUT + "layers: [relu]\n" + UPSTREAM + "expect:\n  tolerance: loose\n")
    check(err, 6, "expect.tolerance", "auto")


def test_nothing_written_is_modified(tmp_path):
    """A failed load leaves the spec file as it was."""
    text = INPUT + "layers: [relu]\nloss: mse\ntarget: [1, 2]\n"
    (tmp_path / "net.yaml").write_text(text)
    with pytest.raises(SpecError):
        load_model(str(tmp_path / "net.yaml"))
    assert (tmp_path / "net.yaml").read_text() == text


LAYERS_AFTER = "loss: none\nupstream_grad: [[1, 2, 3], [4, 5, 6], [7, 8, 9]]\n"


@pytest.mark.parametrize("layers, line, column, words", [
    ("  - conv\n      kernel: [[1]]\n", 3, 5, ["'- conv' has settings indented under it but no colon",
                                                "write '- conv:'"]),
    ("  - relu\n  - conv\n    kernel: [[1]]\n    stride: 1\n", 4, 5, ["write '- conv:'"]),
    ("  - relu\n  conv:\n    kernel: [[1]]\n", 4, 3, ["no '-'", "write '- conv:'"]),
    ("  conv:\n    kernel: [[1]]\n  - relu\n", 3, 3, ["no '-'", "write '- conv:'"]),
    ("  - relu\n  sigmoid\n", 4, 3, ["no '-'", "write '- sigmoid'"]),
    ("  - relu\n  conv: {kernel: [[1]]}\n  - relu\n", 4, 3, ["write '- conv: {kernel: [[1]]}'"]),
    ("\t- relu\n", 3, 1, ["a tab indents this line", "spaces"]),
    ("  - conv:\n\t  kernel: [[1]]\n", 4, 1, ["a tab indents this line"]),
    ("  - conv:\n  \t  kernel: [[1]]\n", 4, 3, ["a tab indents this line"]),
], ids=["no-colon", "no-colon-second", "no-dash", "no-dash-first", "no-dash-word", "no-dash-flow",
        "tab", "tab-nested", "tab-after-spaces"])
def test_common_yaml_slips_say_what_to_write(tmp_path, layers, line, column, words):
    err = error(tmp_path, INPUT + "layers:\n" + layers + LAYERS_AFTER)
    check(err, line, "", "not valid YAML", *words)
    assert err.column == column, str(err)


def test_a_sequence_at_its_key_s_indentation_is_not_a_missing_dash(tmp_path):
    """`layers:` then `- relu` at the same indentation is valid YAML: another slip is not blamed on it."""
    err = error(tmp_path, INPUT + "layers:\n- relu\nloss: none\nupstream_grad: [[1, 2, 3]\n")
    check(err, err.line, "", "not valid YAML")
    assert "'-'" not in err.message and "tab" not in err.message, str(err)


def test_control_character(tmp_path):
    err = error(tmp_path, INPUT + "layers: [relu]\x07\n")
    check(err, 2, "", "not valid YAML", "the character #x07 is not allowed in YAML text")
    assert err.column == 15


def test_integer_too_large_for_float64(tmp_path):
    err = error(tmp_path, "input: [[1, 1" + "0" * 400 + "]]\nlayers: [relu]\n")
    check(err, 1, "input[0][1]", "not a finite number")
    assert len(str(err)) < 200


def test_python_tags_are_never_constructed(tmp_path):
    err = error(tmp_path, "input: !!python/object/apply:os.system ['touch pwned']\nlayers: [relu]\n")
    check(err, 1, "input[0]", "expected a number")
    assert not (tmp_path / "pwned").exists()


# --- a shape error shows the shapes that led to it (issue 12.6) ---------------------------------

def test_a_shape_error_carries_the_shapes_up_to_the_failing_layer(tmp_path):
    err = error(tmp_path, """\
        input: {random: {shape: [2, 3, 3]}}
        layers:
          - conv: {kernel: {random: {shape: [2, 2, 2, 2]}}}
          - pool: {size: 2}
          - flatten
          - fc:
              weights: {random: {shape: [1, 5]}}
        loss: none
        upstream_grad: [1]
        """)
    check(err, 7, "layers[3].fc.weights", "the weights have 5 columns but its input has 2 values (flatten1)")
    assert err.details == ("input     2×3×3", "conv1     2×2×2", "pool1     2×1×1", "flatten1  2")


def test_a_window_larger_than_its_input_shows_how_the_input_shrank(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - conv: {kernel: [[1, 1], [1, 1]]}\n  - pool: {size: 3}\n")
    check(err, 4, "layers[1].pool.size", "window 3×3 is larger than its input 2×2 (conv1)")
    assert err.details == ("input  3×3", "conv1  2×2")


def test_a_channel_mismatch_deep_in_the_network_shows_the_channels_on_the_way(tmp_path):
    err = error(tmp_path, "input: {random: {shape: [3, 4, 4]}}\nlayers:\n"
                "  - conv: {kernel: {random: {shape: [2, 3, 1, 1]}}}\n  - relu\n"
                "  - conv: {kernel: {random: {shape: [1, 3, 2, 2]}}}\n")
    check(err, 5, "layers[2].conv.kernel", "the kernel has 3 channel(s) but its input has 2 (relu1)")
    assert err.details == ("input  3×4×4", "conv1  2×4×4", "relu1  2×4×4")


def test_a_target_of_the_wrong_shape_shows_every_layer(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - conv: {kernel: [[1, 1], [1, 1]]}\n  - relu\n" + UPSTREAM)
    check(err, 6, "upstream_grad", "upstream_grad has shape 3×3 but the output (relu1) has shape 2×2")
    assert err.details == ("input  3×3", "conv1  2×2", "relu1  2×2")


def test_an_error_that_is_not_about_shapes_has_no_table(tmp_path):
    err = error(tmp_path, INPUT + "layers:\n  - tanhh\n")
    assert err.details == ()


@pytest.mark.parametrize("name", ["losses", "data_loss", "penalty"])
def test_the_names_of_the_batch_and_penalty_quantities_are_reserved(tmp_path, name):
    """A layer named like a quantity of the loss would show its output under that label."""
    err = error(tmp_path, INPUT + f"layers: [{{relu: {{name: {name}}}}}]\n" + UPSTREAM)
    assert "reserved" in err.message and repr(name) in err.message, str(err)

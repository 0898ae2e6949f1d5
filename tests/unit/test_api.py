"""The Python API (cnngrad.load/loads/forward/backward/check): specs from a path, text or a dict
with numpy arrays, values against independent references, errors as SpecError, and the README's
Python examples run as they are written."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnngrad
from helpers.cli import invoke

ROOT = Path(__file__).resolve().parents[2]
SEED001 = "configs/seed001_fc_sigmoid_deltas.yaml"
ERRATUM = "tests/errata/seed001_kernel_gradient_truncated_deltas.yaml"


def conv_reference(x, w, b, stride, pad, dout):
    """out, dx, dw, db of a cross-correlation (C,H,W) * (D,C,k,k), written position by position
    (CS231n's naive loops: slow and plain, an independent route to the same numbers)."""
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    d, _, k, _ = w.shape
    oh, ow = (xp.shape[1] - k) // stride + 1, (xp.shape[2] - k) // stride + 1
    out, dxp, dw = np.zeros((d, oh, ow)), np.zeros_like(xp), np.zeros_like(w)
    for f in range(d):
        for i in range(oh):
            for j in range(ow):
                window = xp[:, i * stride:i * stride + k, j * stride:j * stride + k]
                out[f, i, j] = np.sum(window * w[f]) + b[f]
                dw[f] += dout[f, i, j] * window
                dxp[:, i * stride:i * stride + k, j * stride:j * stride + k] += dout[f, i, j] * w[f]
    return out, dxp[:, pad:-pad, pad:-pad], dw, dout.sum(axis=(1, 2))


def conv_spec(x, w, b, stride, pad, dout):
    return {"input": x, "layers": [{"conv": {"kernel": w, "bias": b, "stride": stride, "padding": pad}}],
            "loss": "none", "upstream_grad": dout}


@pytest.fixture
def conv_arrays():
    rng = np.random.default_rng(7)
    x, w, b = rng.normal(size=(2, 6, 7)), rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3)
    dout = rng.normal(size=(3, 3, 4))      # (6 + 2 - 3) // 2 + 1 = 3, (7 + 2 - 3) // 2 + 1 = 4
    return x, w, b, 2, 1, dout


def test_a_dict_of_the_users_arrays_gives_the_layers_values_and_gradients(conv_arrays):
    out, dx, dw, db = conv_reference(*conv_arrays)
    values = cnngrad.backward(conv_spec(*conv_arrays))
    np.testing.assert_allclose(values["conv1"], out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(values["grad.input"], dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(values["grad.conv1.kernel"], dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(values["grad.conv1.bias"], db, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(values["grad.conv1"], conv_arrays[-1])
    assert values["grad.input"].shape == (2, 6, 7) and values["grad.conv1.kernel"].shape == (3, 2, 3, 3)


def test_a_dict_agrees_with_torch(conv_arrays):
    torch = pytest.importorskip("torch")
    x, w, b, stride, pad, dout = conv_arrays
    tx, tw, tb = (torch.tensor(a[None] if a is x else a, requires_grad=True) for a in (x, w, b))
    out = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=pad)
    out.backward(torch.tensor(dout[None]))
    values = cnngrad.backward(conv_spec(*conv_arrays))
    np.testing.assert_allclose(values["conv1"], out.detach().numpy()[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(values["grad.input"], tx.grad.numpy()[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(values["grad.conv1.kernel"], tw.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_numbers_from_a_dict_are_taken_exactly():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 4)) * np.logspace(-300, 300, 12).reshape(3, 4)
    x[0, 0], x[0, 1], x[0, 2] = 5e-324, -0.0, np.nextafter(1.0, 2.0)
    values = cnngrad.forward({"input": x, "layers": ["flatten"], "loss": "none",
                              "upstream_grad": np.zeros(12)})
    assert values["input"].tobytes() == x.tobytes()           # bit for bit, -0.0 and subnormals too
    assert values["flatten1"].tobytes() == x.ravel().tobytes()


def test_path_text_and_dict_give_the_same_model():
    text = (ROOT / SEED001).read_text()
    from_path = cnngrad.backward(SEED001)
    from_text = cnngrad.backward(cnngrad.loads(text, name="seed001"))
    from_dict = cnngrad.backward({
        "input": from_path["input"], "layers": ["sigmoid", "flatten", {"fc": {
            "weights": from_path["fc1.weights"], "bias": from_path["fc1.bias"]}}],
        "loss": "none", "upstream_grad": [0.25, -0.15]})
    assert list(from_path) == list(from_text) == list(from_dict)
    for name in from_path:
        np.testing.assert_array_equal(from_text[name], from_path[name])
        np.testing.assert_array_equal(from_dict[name], from_path[name])
    # seed 001's hand-worked deltas (its spec's comment derives them)
    np.testing.assert_allclose(from_path["grad.input"], [[0.0364182, 0.068628], [0.04675125, -0.06818625]],
                               atol=1e-12)


def test_forward_has_the_values_and_backward_adds_the_gradients():
    forward, backward = cnngrad.forward(SEED001), cnngrad.backward(SEED001)
    assert set(forward) == {"input", "target", "output", "fc1.weights", "fc1.bias", "sigmoid1", "flatten1", "fc1"}
    assert set(backward) - set(forward) == {"grad.input", "grad.output", "grad.fc1", "grad.flatten1",
                                            "grad.sigmoid1", "grad.fc1.weights", "grad.fc1.bias"}
    np.testing.assert_allclose(forward["fc1"], [0.8952, -0.0304], atol=1e-12)   # seed 001: W·a + b


def test_a_loss_is_a_0d_array():
    values = cnngrad.forward({"input": [0.0, 0.0], "layers": ["softmax"], "loss": "cross_entropy", "target": 1})
    assert values["loss"].shape == () and values["loss"] == pytest.approx(np.log(2), rel=1e-15)


def _cli_json(*args):
    result = invoke("check", "--format", "json", *args)
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("spec, code", [(SEED001, 0), (ERRATUM, 1)])
def test_check_gives_the_clis_json_document(spec, code):
    result = cnngrad.check(spec)
    exit_code, document = _cli_json(spec)
    assert result.document == document and json.loads(result.as_json()) == document
    assert result.passed == (code == 0) == document["passed"]
    assert exit_code == code


def test_check_takes_the_clis_options():
    result = cnngrad.check(SEED001, wrt=["fc1.weights"], fast=True, deltas=True)
    _, document = _cli_json(SEED001, "--wrt", "fc1.weights", "--fast", "--deltas")
    assert result.document == document
    assert [q["quantity"] for q in document["specs"][0]["gradients"]] == ["grad.fc1.weights"]
    assert document["specs"][0]["gradients"][0]["method"] == "fast" and document["specs"][0]["deltas"]


def test_a_failed_check_shows_the_table_with_the_failure():
    table = str(cnngrad.check(ERRATUM))
    assert "\x1b[" not in table
    assert re.search(r"grad\.conv1\.kernel\s+5\.77e-05\s+5\.00e-07\s+FAILED", table)
    assert "grad.conv1.kernel[0,1]: expected 0.094061, computed 0.0941186865" in table


def test_a_spec_error_from_a_dict_names_the_path_without_a_line():
    with pytest.raises(cnngrad.SpecError) as caught:
        cnngrad.load({"input": np.ones((3, 3)), "layers": [{"conv": {"kernel": [[1.0, 2.0], [3.0]]}}]})
    err = caught.value
    assert (err.file, err.line, err.column, err.path) == ("<dict>", None, None, "layers[0].conv.kernel")
    assert str(err) == "<dict>: layers[0].conv.kernel: rows have different lengths (2 and 1)"


@pytest.mark.parametrize("value, path, words", [
    (np.array([[1.0, np.nan]]), "input[0][1]", ".nan is not a finite number"),
    (object(), "input", "not object"),
    ({1.5: 2}, "input", "a key must be a word"),
])
def test_a_value_no_spec_can_hold_is_a_spec_error_at_its_path(value, path, words):
    with pytest.raises(cnngrad.SpecError) as caught:
        cnngrad.load({"input": value, "layers": ["relu"], "loss": "none", "upstream_grad": 1})
    assert caught.value.path == path and words in caught.value.message


def test_a_list_that_holds_itself_is_a_spec_error_not_a_recursion_error():
    looped: list = [1.0]
    looped.append(looped)
    with pytest.raises(cnngrad.SpecError, match="nested more than 64 levels"):
        cnngrad.load({"input": looped, "layers": ["relu"]})


def test_an_array_beyond_the_entry_limit_is_refused_before_it_is_converted():
    limits = cnngrad.Limits(max_entries=10)
    with pytest.raises(cnngrad.SpecError) as caught:
        cnngrad.load({"input": np.zeros((3, 4)), "layers": ["relu"]}, limits=limits)
    assert caught.value.path == "input" and "12 entries" in caught.value.message
    values = cnngrad.forward(cnngrad.load({"input": np.zeros(10), "layers": ["relu"], "upstream_grad": np.ones(10)},
                                          limits=limits))
    assert values["relu1"].shape == (10,)


def test_a_spec_error_from_text_or_a_file_has_its_line_and_column(tmp_path):
    text = "input: [1, 2]\nlayers:\n  - conv: {kernel: [[1, 2], [3]]}\n"
    with pytest.raises(cnngrad.SpecError) as caught:
        cnngrad.loads(text, name="net.yaml")
    assert (caught.value.line, caught.value.column, caught.value.path) == (3, 29, "layers[0].conv.kernel")
    (tmp_path / "net.yaml").write_text(text)
    with pytest.raises(cnngrad.SpecError) as caught:
        cnngrad.load(tmp_path / "net.yaml")
    assert (caught.value.file, caught.value.line) == (str(tmp_path / "net.yaml"), 3)
    with pytest.raises(cnngrad.SpecError) as caught:
        cnngrad.load(tmp_path / "missing.yaml")
    assert caught.value.line is None and caught.value.message == "file not found"


def test_an_overflowing_network_is_a_spec_error_with_the_clis_text():
    spec = {"input": [1e200, 1e200], "layers": [{"fc": {"weights": [[1e200, 1e200]], "bias": [0]}}],
            "loss": "none", "upstream_grad": [1]}
    with pytest.raises(cnngrad.SpecError) as caught:
        cnngrad.forward(spec)
    assert str(caught.value) == ("<dict>: fc1: the output is not finite (inf at [0]) although its input and "
                                 "parameters are finite: it overflowed float64")


def test_value_files_of_a_dict_are_read_from_its_folder(tmp_path):
    np.save(tmp_path / "w.npy", np.array([[2.0, -1.0]]))
    spec = {"input": [1.0, 3.0], "layers": [{"fc": {"weights": {"file": "w.npy"}, "bias": [0.5]}}],
            "loss": "none", "upstream_grad": [1.0]}
    assert cnngrad.forward(cnngrad.load(spec, folder=tmp_path))["fc1"] == pytest.approx([2 - 3 + 0.5])
    with pytest.raises(cnngrad.SpecError, match="file 'w.npy' "):
        cnngrad.load(spec, folder=tmp_path / "elsewhere")


def test_bad_arguments_are_type_and_value_errors():
    with pytest.raises(TypeError):
        cnngrad.load(42)
    with pytest.raises(ValueError, match="no such quantity"):
        cnngrad.check(SEED001, wrt=["conv9"])


@pytest.mark.parametrize("options", [
    {"eps": float("nan")}, {"eps": 0}, {"eps": 1}, {"eps": float("inf")}, {"rtol": -1}, {"rtol": float("nan")},
    {"atol": float("inf")}, {"atol": -1e-10},
])
def test_check_options_outside_their_range_are_value_errors(options):
    """As on the command line (exit 2): eps in (0, 1), rtol and atol finite and ≥ 0. A NaN eps
    returned a failed check, as if the gradients were wrong."""
    with pytest.raises(ValueError, match=next(iter(options))):
        cnngrad.check(SEED001, **options)


def test_one_wrt_name_may_be_given_as_a_string():
    """wrt="input" was taken letter by letter ("no such quantity i")."""
    result = cnngrad.check(SEED001, wrt="input")
    assert [q.quantity for q in result.result.gradients] == ["input"]


def test_compare_diagnoses_the_users_numbers():
    pytest.importorskip("cnngrad.diagnose")
    model = cnngrad.load(SEED001)
    right = cnngrad.backward(model)["grad.input"]
    assert cnngrad.compare(model, {"grad.input": right}).passed
    wrong = cnngrad.compare(model, {"grad.input": -right})
    assert not wrong.passed
    assert wrong.document["specs"][0]["expect"][0]["quantity"] == "grad.input"


def test_import_cnngrad_imports_neither_numpy_nor_yaml():
    code = "import sys, cnngrad; print(sorted(m for m in ('numpy', 'yaml', 'click', 'rich') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert set(cnngrad.__all__) <= set(dir(cnngrad))
    with pytest.raises(AttributeError):
        cnngrad.no_such_name


def test_py_typed_ships_with_the_package():
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert "py.typed" in cfg["options.package_data"]["cnngrad"]
    assert (ROOT / "cnngrad" / "py.typed").is_file()


def python_examples(readme: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", readme, re.S | re.M)


def test_the_readmes_python_examples_run(capsys):
    examples = python_examples((ROOT / "README.md").read_text())
    assert len(examples) >= 3
    namespace: dict = {}
    for example in examples:
        exec(compile(example, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "rows have different lengths (2 and 1)" in printed and "1 spec: 1 passed, 0 failed" in printed

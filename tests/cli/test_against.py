"""Values in: ``check --against FILE`` (.npz, .json, .yaml) and expect values ``{file: ...}``."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.cli import invoke

SPEC = """\
input: [[0.5, -0.2, 0.1], [0.3, 0.8, -0.6], [0.9, 0.4, 0.2]]
layers:
  - conv: {kernel: [[0.1, -0.2, 0.7], [0.3, 0.4, -0.5]], bias: 0.05}
  - tanh
  - flatten
  - fc: {weights: [[0.2, -0.1], [0.4, 0.3], [0.5, -0.6]]}
loss: squared_error
target: [1, 0, 0.5]
"""
# by hand (numpy, independent of the engine): conv1 is the 2×1 correlation of the input with the
# 2×3 kernel, tanh, then W a
X = np.array([[0.5, -0.2, 0.1], [0.3, 0.8, -0.6], [0.9, 0.4, 0.2]])
K = np.array([[0.1, -0.2, 0.7], [0.3, 0.4, -0.5]])
W = np.array([[0.2, -0.1], [0.4, 0.3], [0.5, -0.6]])
T = np.array([1, 0, 0.5])
CONV = np.array([[np.sum(X[i:i + 2] * K) + 0.05] for i in range(2)])
A = np.tanh(CONV)
Y = W @ A.ravel()
DY = Y - T                                   # squared_error is ½Σ(y − t)²
DW = np.outer(DY, A.ravel())
DA = (W.T @ DY).reshape(2, 1)
DCONV = DA * (1 - A ** 2)
DK = sum(DCONV[i, 0] * X[i:i + 2] for i in range(2))


def run(tmp_path, *args, spec=SPEC):
    (tmp_path / "net.yaml").write_text(spec)
    return invoke("check", str(tmp_path / "net.yaml"), *args)


def test_npz_values_that_are_right_pass_and_a_wrong_one_fails(tmp_path):
    np.savez(tmp_path / "mine.npz", **{"grad.fc1.weights": DW, "grad.conv1.kernel": DK, "conv1": CONV,
                                       "loss": 0.5 * np.sum(DY ** 2)})
    assert run(tmp_path, "--against", str(tmp_path / "mine.npz")).exit_code == 0
    np.savez(tmp_path / "bad.npz", **{"grad.fc1.weights": DW, "grad.conv1.kernel": DK * (1 + 1e-5)})
    result = run(tmp_path, "--against", str(tmp_path / "bad.npz"), "--format", "json")
    assert result.exit_code == 1
    verdicts = {e["quantity"]: e["passed"] for e in json.loads(result.stdout)["specs"][0]["expect"]}
    assert verdicts == {"grad.fc1.weights": True, "grad.conv1.kernel": False}


def test_what_backward_json_writes_is_accepted_as_it_is(tmp_path):
    (tmp_path / "net.yaml").write_text(SPEC)
    written = invoke("backward", str(tmp_path / "net.yaml"), "--format", "json").stdout
    (tmp_path / "mine.json").write_text(written)
    result = run(tmp_path, "--against", str(tmp_path / "mine.json"), "--format", "json")
    assert result.exit_code == 0
    names = [e["quantity"] for e in json.loads(result.stdout)["specs"][0]["expect"]]
    assert "grad.conv1.kernel" in names and "loss" in names and "grad.input" in names


def test_a_json_mapping_and_a_yaml_mapping_of_names(tmp_path):
    (tmp_path / "mine.json").write_text(json.dumps({"grad.conv1": DCONV.tolist(), "fc1": Y.tolist()}))
    assert run(tmp_path, "--against", str(tmp_path / "mine.json")).exit_code == 0
    (tmp_path / "mine.yaml").write_text(f"tolerance: 1e-9\ngrad.fc1: {DY.tolist()}\n")
    assert run(tmp_path, "--against", str(tmp_path / "mine.yaml")).exit_code == 0
    (tmp_path / "typo.yaml").write_text(f"grad.fc1.weigths: {DW.tolist()}\n")
    result = run(tmp_path, "--against", str(tmp_path / "typo.yaml"))
    assert result.exit_code == 2 and "did you mean 'grad.fc1.weights'" in result.output


def test_an_unknown_name_is_one_line_with_a_suggestion(tmp_path):
    np.savez(tmp_path / "mine.npz", **{"grad.conv1.kernal": DK})
    result = run(tmp_path, "--against", str(tmp_path / "mine.npz"))
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "did you mean 'grad.conv1.kernel'" in line


def test_a_transposed_array_is_reported_as_the_transpose(tmp_path):
    np.savez(tmp_path / "mine.npz", **{"grad.fc1.weights": DW.T})
    result = run(tmp_path, "--against", str(tmp_path / "mine.npz"), "--format", "json")
    assert result.exit_code == 1
    (entry,) = json.loads(result.stdout)["specs"][0]["expect"]
    assert "transpose" in entry["note"] and entry["diagnosis"][0]["mistake"] == "transposed"
    text = run(tmp_path, "--against", str(tmp_path / "mine.npz")).stdout
    assert "has shape 2×3 but cnngrad's grad.fc1.weights is 3×2: it holds the transpose of" in text


def test_the_same_entries_in_another_layout_and_a_wrong_size(tmp_path):
    np.savez(tmp_path / "flat.npz", **{"grad.fc1.weights": DW.ravel(order="F")})
    text = run(tmp_path, "--against", str(tmp_path / "flat.npz")).stdout
    assert "column-major (F) order" in text
    np.savez(tmp_path / "size.npz", **{"grad.fc1.weights": DW[:2]})
    result = run(tmp_path, "--against", str(tmp_path / "size.npz"))
    assert result.exit_code == 2 and "has shape 3×2, but the value has shape 2×2" in result.output


def test_float32_values_need_the_float32_tolerance(tmp_path):
    np.savez(tmp_path / "f32.npz", **{"grad.conv1.kernel": float32_kernel_gradient()})
    assert run(tmp_path, "--against", str(tmp_path / "f32.npz")).exit_code == 1
    assert run(tmp_path, "--against", str(tmp_path / "f32.npz"), "--against-rtol", "1e-4").exit_code == 0


def test_expect_values_from_npy_csv_and_npz_files(tmp_path):
    np.save(tmp_path / "dk.npy", DK)
    np.savetxt(tmp_path / "dw.csv", DW, delimiter=",", fmt="%.17g")
    np.savez(tmp_path / "all.npz", dconv=DCONV, wrong=DCONV + 1e-3)
    expect = ("expect:\n  grad.conv1.kernel: {file: dk.npy}\n  grad.fc1.weights: {file: dw.csv}\n"
              "  grad.conv1: {file: all.npz, key: dconv}\n")
    assert run(tmp_path, spec=SPEC + expect).exit_code == 0
    result = run(tmp_path, spec=SPEC + expect.replace("key: dconv", "key: wrong"))
    assert result.exit_code == 1 and "grad.conv1[0,0]: expected" in result.stdout


@pytest.mark.parametrize("value, message", [
    ("{file: all.npz}", "write {file: all.npz, key: NAME}"),
    ("{file: all.npz, key: dconf}", "did you mean 'dconv'"),
    ("{random: {shape: [2, 1]}}", "an expect value is numbers or {file: NAME}"),
])
def test_a_bad_file_value_is_one_line(tmp_path, value, message):
    np.savez(tmp_path / "all.npz", dconv=DCONV)
    result = run(tmp_path, spec=SPEC + f"expect:\n  grad.conv1: {value}\n")
    assert result.exit_code == 2 and message in result.output and len(result.stderr.splitlines()) == 1


def float32_kernel_gradient() -> np.ndarray:
    """DK computed in float32 throughout, as float32 code would."""
    f = np.float32
    x, k, w, t = X.astype(f), K.astype(f), W.astype(f), T.astype(f)
    conv = np.array([[np.sum(x[i:i + 2] * k) + f(0.05)] for i in range(2)], dtype=f)
    a = np.tanh(conv)
    dy = w @ a.ravel() - t
    dconv = (w.T @ dy).reshape(2, 1) * (f(1) - a * a)
    return sum(dconv[i, 0] * x[i:i + 2] for i in range(2))


def test_a_written_value_in_the_transposes_shape_is_an_error_that_says_so(tmp_path):
    result = run(tmp_path, spec=SPEC + f"expect:\n  grad.fc1.weights: {DW.T.tolist()}\n")
    assert result.exit_code == 2
    assert "has shape 3×2, but the expected value has shape 2×3; that is the transpose's shape" in result.stderr


def test_against_needs_one_spec_file_and_an_existing_file(tmp_path):
    (tmp_path / "other.yaml").write_text(SPEC)
    np.savez(tmp_path / "mine.npz", **{"grad.conv1.kernel": DK})
    result = run(tmp_path, str(tmp_path / "other.yaml"), "--against", str(tmp_path / "mine.npz"))
    assert result.exit_code == 2 and "give exactly one SPEC file" in result.stderr
    result = run(tmp_path, "--against", str(tmp_path / "missing.npz"))
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line == f"error: {tmp_path / 'missing.npz'}: no such file"
    (tmp_path / "mine.txt").write_text("1 2 3")
    result = run(tmp_path, "--against", str(tmp_path / "mine.txt"))
    assert result.exit_code == 2 and "--against takes a .npz, .json, .yaml, .yml file" in result.stderr


SATURATED = """\
input: [1000, 0, -1000]
layers:
  - fc: {weights: [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}
  - softmax
loss: cross_entropy
target: [0.5, 0.25, 0.25]
"""
# softmax1 = [1, e^-1000, e^-2000] = [1, 0, 0] in float64, so ∂E/∂softmax1 = −t/p = [−0.5, −inf, −inf]
# (JSON null), while ∂E/∂fc1 = p·Σt − t = [0.5, −0.25, −0.25] stays finite
LOSS_ONLY = "input: [0.2, 0.3, 0.5]\nlayers: []\nloss: cross_entropy\ntarget: [0, 1, 0]\n"
LOGITS = SPEC.replace("loss: squared_error", "loss: {cross_entropy: {from: logits}}")


@pytest.mark.parametrize("spec", [SPEC, SATURATED, LOSS_ONLY, LOGITS], ids=["tanh", "saturated", "loss-only", "logits"])
@pytest.mark.parametrize("command", ["backward", "forward"])
def test_what_backward_and_forward_json_write_is_checked_as_it_is(tmp_path, spec, command):
    """Real CLI output, keys and nulls (a value beyond float64) as written, passes against its spec."""
    (tmp_path / "net.yaml").write_text(spec)
    written = invoke(command, str(tmp_path / "net.yaml"), "--format", "json").stdout
    doc = json.loads(written)
    (tmp_path / "mine.json").write_text(written)
    result = run(tmp_path, "--against", str(tmp_path / "mine.json"), "--format", "json", spec=spec)
    assert result.exit_code == 0, result.output
    names = {e["quantity"] for e in json.loads(result.stdout)["specs"][0]["expect"]}
    expected = set(doc.get("gradients", {})) | {layer["name"] for layer in doc.get("layers", [])} | {"loss"}
    assert names == expected


def test_a_value_beyond_float64_is_matched_only_by_one(tmp_path):
    """∂E/∂softmax1[1] and [2] are −inf: finite numbers from code fail there (rtol·∞ allows
    nothing), JSON null passes there and fails where cnngrad's value is finite."""
    np.savez(tmp_path / "finite.npz", **{"grad.softmax1": [-0.5, 123.0, 7.0]})
    result = run(tmp_path, "--against", str(tmp_path / "finite.npz"), "--format", "json", spec=SATURATED)
    (entry,) = json.loads(result.stdout)["specs"][0]["expect"]
    assert result.exit_code == 1 and [f["index"] for f in entry["failing"]] == [[1], [2]]
    (tmp_path / "nulls.json").write_text('{"grad.softmax1": [-0.5, null, null], "grad.fc1": [null, -0.25, -0.25]}')
    result = run(tmp_path, "--against", str(tmp_path / "nulls.json"), "--format", "json", spec=SATURATED)
    verdicts = {e["quantity"]: e["passed"] for e in json.loads(result.stdout)["specs"][0]["expect"]}
    assert result.exit_code == 1 and verdicts == {"grad.softmax1": True, "grad.fc1": False}


def test_the_verdict_counts_only_the_expect_values_that_failed(tmp_path):
    np.savez(tmp_path / "mine.npz", **{"grad.fc1.weights": DW, "grad.conv1.kernel": DK + 1e-3})
    result = run(tmp_path, "--against", str(tmp_path / "mine.npz"))
    assert result.exit_code == 1 and "(1 of 2 expect values failed)" in result.stdout


@pytest.mark.parametrize("option", ["--against-rtol", "--against-atol"])
@pytest.mark.parametrize("value", ["inf", "nan", "-1"])
def test_a_code_tolerance_that_is_not_a_finite_number_cannot_run(tmp_path, option, value):
    """--against-atol inf would pass every value from code; nan would fail them all: neither runs."""
    result = run(tmp_path, option, value)
    assert result.exit_code == 2
    assert result.stderr == f"error: {option} {float(value):g}: must be a finite number ≥ 0\n"


@pytest.mark.parametrize("text", [
    '{"layers": [1]}', '{"layers": [{"name": "conv1"}]}', '{"layers": {"a": 1}}', '{"gradients": [1]}',
    '{"layers": [{"name": ["conv1"], "output": 1}]}', '{"gradients": {"1": 2}, "layers": null}',
    '{"grad.conv1": ' + "[" * 100_000 + "]" * 100_000 + "}",
], ids=["layer-number", "layer-without-output", "layers-dict", "gradients-list", "name-list",
        "gradient-number-name", "deep"])
def test_a_json_document_of_another_shape_is_one_error_line_naming_it(tmp_path, text):
    """A document that looks like backward/forward JSON but is not, or nests beyond Python's
    recursion limit, is an error naming the file, not an internal error."""
    (tmp_path / "mine.json").write_text(text)
    result = run(tmp_path, "--against", str(tmp_path / "mine.json"))
    assert result.exit_code == 2, result.output
    assert [line for line in result.stderr.splitlines()] == [
        line for line in result.stderr.splitlines() if line.startswith(f"error: {tmp_path / 'mine.json'}: ")]
    assert "internal error" not in result.stderr and len(result.stderr.splitlines()) == 1

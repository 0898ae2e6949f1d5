"""The diagnosis of wrong numbers: the errata, correct values, random slips, JSON and the API."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from cnngrad.diagnose import diagnose
from cnngrad.spec import load_model
from helpers import ROOT
from helpers.cli import invoke
from helpers.randomnets import random_models, to_yaml

ERRATA = os.path.join(ROOT, "tests", "errata")


def check_json(*args):
    result = invoke("check", *args, "--format", "json")
    return result.exit_code, json.loads(result.stdout)


def test_seed001_printed_kernel_gradient_came_from_deltas_truncated_to_4_decimals():
    code, doc = check_json(os.path.join(ERRATA, "seed001_kernel_gradient_truncated_deltas.yaml"))
    (spec,) = doc["specs"]
    (entry,) = spec["expect"]
    assert code == 1 and entry["origin"] == "introduced"
    best = entry["diagnosis"][0]
    assert best["mistake"] == "rounded-upstream" and best["layer"] == "conv1"
    assert best["message"] == "computed from grad.conv1 truncated to 4 decimals"
    assert spec["first_wrong"] == "grad.conv1.kernel"


def test_seed004_eq21_correlates_with_the_kernel_as_stored():
    code, doc = check_json(os.path.join(ERRATA, "seed004_eq21_article.yaml"))
    (spec,) = doc["specs"]
    (entry,) = spec["expect"]
    assert [d["mistake"] for d in entry["diagnosis"]] == ["conv-kernel-not-rotated"]
    assert entry["diagnosis"][0]["layer"] == "conv1" and entry["origin"] == "introduced"
    assert spec["first_wrong"] == "grad.relu1"      # ∂E/∂(conv1's input), which the article never wrote
    assert spec["first_wrong_layer"] == "conv1"


def test_a_truncated_answer_is_no_known_mistake_and_none_is_claimed():
    code, doc = check_json(os.path.join(ERRATA, "seed001_delta_map_truncated.yaml"))
    (entry,) = doc["specs"][0]["expect"]
    assert entry["diagnosis"] == [] and entry["origin"] == "introduced"
    text = invoke("check", os.path.join(ERRATA, "seed001_delta_map_truncated.yaml")).stdout
    assert "no known mistake reproduces these numbers" in text


def test_the_table_shows_the_diagnosis_block():
    text = invoke("check", os.path.join(ERRATA, "seed004_eq21_article.yaml")).stdout
    row = next(line for line in text.splitlines() if line.startswith("grad.input ") and "introduced" in line)
    assert row.split()[:4] == ["grad.input", "introduced", "conv-kernel-not-rotated", "conv1"]
    assert "∂E/∂input correlates the deltas with the kernel as stored" in row
    assert "first wrong quantity: grad.relu1, made by conv1" in text
    for fmt in ("markdown", "latex"):
        out = invoke("check", os.path.join(ERRATA, "seed004_eq21_article.yaml"), "--format", fmt).stdout
        assert "conv-kernel-not-rotated" in out


def six_decimals(array) -> str:
    """``array`` as a YAML flow list of numbers written with 6 decimals."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 0:
        return f"{float(array):.6f}"
    return "[" + ", ".join(six_decimals(row) for row in array) + "]"


def test_correct_values_at_six_decimals_pass_with_no_diagnosis(tmp_path):
    """100 random networks, every value and gradient written at 6 decimals (tolerance auto)."""
    for n, (spec, model) in enumerate(random_models(2026, 100)):
        values = model.values()
        expect = "".join(f"  {name}: {six_decimals(value)}\n" for name, value in values.items() if name != "target")
        (tmp_path / f"net{n:03}.yaml").write_text(to_yaml(spec) + "expect:\n" + expect)
    code, doc = check_json(str(tmp_path), "--fast")
    assert len(doc["specs"]) == 100
    failed = [(r["spec"], [e for e in r["expect"] if not e["passed"]]) for r in doc["specs"] if not r["passed"]]
    assert code == 0, failed
    for result in doc["specs"]:
        assert result["first_wrong"] is None
        assert all(e["diagnosis"] == [] and e["origin"] is None and e["failing"] == [] for e in result["expect"])


def slipped(values: dict, rng) -> dict:
    """``values`` with relative errors of 1e-3 to 1e-1 on one to three entries of one or two
    quantities (entries not small beside their quantity, so that they fail)."""
    # C order: reshape(-1) of a Fortran-ordered copy (an fc's input delta can be one) is no view
    given = {name: np.array(value, dtype=np.float64, order="C") for name, value in values.items()}
    names = [name for name, value in given.items() if np.abs(value).max(initial=0) > 1e-6]
    for name in rng.choice(names, size=min(len(names), int(rng.integers(1, 3))), replace=False):
        flat = given[name].reshape(-1)
        big = np.flatnonzero(np.abs(flat) > 1e-2 * np.abs(flat).max())
        for i in rng.choice(big, size=min(len(big), int(rng.integers(1, 4))), replace=False):
            flat[i] *= 1 + rng.choice([-1, 1]) * 10 ** rng.uniform(-3, -1)
    return given


def test_random_slips_fail_and_no_mistake_is_claimed_for_them():
    """200 random networks, every value and gradient right but for a few entries off by a
    relative 1e-3 to 1e-1: each fails, and no classic mistake is claimed in 99% of them."""
    rng = np.random.default_rng(5)
    claimed = 0
    for spec, model in random_models(99, 200):
        right = model.values()
        given = slipped({name: value for name, value in right.items()
                         if name not in ("target", "output", "grad.output") and name not in model.params}, rng)
        result = diagnose(model, given)
        assert not result.passed
        assert result.first_wrong is not None
        claimed += any(e.diagnosis for e in result.expect)
    assert claimed <= 2


def test_the_api_returns_what_the_json_is_written_from(tmp_path):
    path = os.path.join(ERRATA, "seed004_eq21_article.yaml")
    model = load_model(path)
    wrong = np.array([[0.4, 0, -0.3], [1.0, 0.7, 0], [0, 0.3, 0.05]])
    result = diagnose(model, {"grad.input": wrong})
    (entry,) = result.expect
    assert entry.diagnosis[0].mistake == "conv-kernel-not-rotated"
    assert result.first_wrong == "grad.relu1" and not result.passed
    np.save(tmp_path / "mine.npy", wrong)
    np.savez(tmp_path / "mine.npz", **{"grad.input": wrong})
    code, doc = check_json(path, "--against", str(tmp_path / "mine.npz"))
    against = doc["specs"][0]["expect"][-1]
    assert against["quantity"] == "grad.input" and against["diagnosis"][0]["mistake"] == "conv-kernel-not-rotated"
    with pytest.raises(ValueError, match="did you mean 'grad.input'"):
        diagnose(model, {"grad.inptu": wrong})


def test_a_propagated_error_is_told_apart_from_where_it_entered():
    """seed 002's network: the loss gradient doubled (½ dropped) and everything after it computed
    right from it: grad.output is introduced (scaled 2), the deltas after it propagated."""
    model = load_model(os.path.join(os.path.dirname(ERRATA), "..", "configs",
                                    "seed002_conv_relu_pool_fc_sigmoid_bce.yaml"))
    right = model.values()
    doubled = {name: 2 * right[name] for name in ("grad.sigmoid1", "grad.fc1", "grad.fc1.weights", "grad.pool1")}
    result = diagnose(model, doubled)
    origins = {e.quantity: e.origin for e in result.expect}
    assert origins == {"grad.sigmoid1": "introduced", "grad.fc1": "propagated",
                       "grad.fc1.weights": "propagated", "grad.pool1": "propagated"}
    assert result.first_wrong == "grad.sigmoid1"
    assert result.expect[0].diagnosis[0].mistake == "scaled"


def test_a_students_hand_written_attempt_with_three_mistakes():
    """tests/diagnose: seed 002's network with ½(y − t)², worked by hand at 6 decimals with the ½
    dropped, max-pool deltas sent to all entries and ReLU's derivative forgotten. Each mistake is
    found where it entered; the values computed right from wrong ones are propagated, although
    the 6-decimal rounding of the deltas moves the kernel gradient by more than its own tolerance."""
    folder = os.path.join(ROOT, "tests", "diagnose")
    code, doc = check_json(os.path.join(folder, "seed002_student.yaml"),
                           "--against", os.path.join(folder, "seed002_student_values.yaml"))
    (spec,) = doc["specs"]
    found = {e["quantity"]: (e["origin"], [d["mistake"] for d in e["diagnosis"]]) for e in spec["expect"]}
    assert found == {"grad.output": ("introduced", ["scaled"]),
                     "grad.fc1.weights": ("propagated", []), "grad.pool1": ("propagated", []),
                     "grad.relu1": ("introduced", ["maxpool-to-all"]),
                     "grad.conv1": ("introduced", ["activation-derivative-missing"]),
                     "grad.conv1.kernel": ("propagated", []), "grad.conv1.bias": ("propagated", [])}
    assert spec["first_wrong"] == "grad.output" and spec["first_wrong_layer"] == "loss" and code == 1
    scaled = spec["expect"][0]["diagnosis"][0]
    assert scaled["layer"] is None and scaled["message"].startswith("twice the right value")


@pytest.mark.skipif(__import__("shutil").which("pdflatex") is None, reason="pdflatex is not installed")
def test_the_diagnosis_compiles_in_latex(tmp_path):
    from test_export_structure import compile_latex
    folder = os.path.join(ROOT, "tests", "diagnose")
    result = invoke("check", os.path.join(folder, "seed002_student.yaml"), "--against",
                    os.path.join(folder, "seed002_student_values.yaml"), "--format", "latex")
    assert "activation-derivative-missing" in result.stdout
    done = compile_latex(result.stdout, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]


def test_a_check_whose_values_pass_does_not_load_the_diagnosis():
    """check's normal path stays as fast as it was: the diagnosis (and the --against reader) are
    imported only when an expect value fails."""
    import subprocess
    import sys
    code = ("import sys; from cnngrad.spec import load_model; from cnngrad.gradcheck import check_model; "
            "check_model(load_model('configs/seed001_fc_sigmoid_deltas.yaml')); "
            "print('cnngrad.diagnose' in sys.modules, 'cnngrad.spec.against' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


SATURATED = """\
input: [30, 0, -30]
layers:
  - fc: {weights: [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}
  - softmax
loss: cross_entropy
target: [0.5, 0, 0.5]
"""


def saturated_model(tmp_path):
    """softmax1[2] = e^-60 / (1 + e^-30 + e^-60) ≈ 8.8e-27, so ∂E/∂softmax1[2] = −0.5/p ≈ −5.7e25."""
    (tmp_path / "net.yaml").write_text(SATURATED)
    model = load_model(str(tmp_path / "net.yaml"))
    p = np.exp(np.array([30.0, 0.0, -30.0]) - 30.0) / np.sum(np.exp(np.array([30.0, 0.0, -30.0]) - 30.0))
    return model, p, np.array([-0.5 / p[0], 0.0, -0.5 / p[2]])


def test_a_slip_after_a_right_upstream_value_is_introduced_however_wide_its_tolerance(tmp_path):
    """Values from code: softmax1 right, ∂E/∂softmax1[2] ≈ −5.7e25 off by 2%. softmax1's absolute
    tolerance (1e-10) would let −t/p be anything, but a right upstream value explains no error."""
    model, p, dp = saturated_model(tmp_path)
    wrong = dp * np.array([1, 1, 1.02])
    result = diagnose(model, {"softmax1": p, "grad.softmax1": wrong})
    entries = {e.quantity: e for e in result.expect}
    assert entries["softmax1"].passed and not entries["grad.softmax1"].passed
    assert entries["grad.softmax1"].origin == "introduced" and entries["grad.softmax1"].diagnosis == []
    assert result.first_wrong == "grad.softmax1" and result.first_wrong_layer == "loss"


def test_a_value_from_code_carries_only_its_relative_rounding(tmp_path):
    """softmax1 wrong at entry 0 and ∂E/∂softmax1 computed right from the right p, but off by
    2% at entry 2 on its own: recomputed from the user's p it is not reproduced there (a value
    from code is what the code used, up to rtol of each entry), so it is introduced too."""
    model, p, dp = saturated_model(tmp_path)
    result = diagnose(model, {"softmax1": p * np.array([1.01, 1, 1]), "grad.softmax1": dp * np.array([1, 1, 1.02])})
    origins = {e.quantity: e.origin for e in result.expect}
    assert origins == {"softmax1": "introduced", "grad.softmax1": "introduced"}
    assert result.first_wrong == "softmax1"
    # computed right from a p wrong at entries 0 and 2: propagated
    mine = p * np.array([1.01, 1, 1.01])
    result = diagnose(model, {"softmax1": mine, "grad.softmax1": np.array([-0.5 / mine[0], 0, -0.5 / mine[2]])})
    assert {e.quantity: e.origin for e in result.expect} == {"softmax1": "introduced", "grad.softmax1": "propagated"}


def test_a_loss_only_example_is_a_chain_too(tmp_path):
    """layers: [] — the input is the output: E = ½Σ(x − t)² = 0.39, ∂E/∂x = x − t = [0.2, −0.7, 0.5]
    (by hand). A doubled gradient is the loss's step scaled by 2, whatever name it is given by."""
    (tmp_path / "net.yaml").write_text("input: [0.2, 0.3, 0.5]\nlayers: []\nloss: squared_error\n"
                                       "target: [0, 1, 0]\n")
    model = load_model(str(tmp_path / "net.yaml"))
    for name in ("grad.input", "grad.output"):
        result = diagnose(model, {name: 2 * np.array([0.2, -0.7, 0.5])})
        (entry,) = result.expect
        assert entry.origin == "introduced" and entry.diagnosis[0].mistake == "scaled", entry.diagnosis
        assert result.first_wrong == name and result.first_wrong_layer == "loss"
    result = diagnose(model, {"output": [0.3, 0.3, 0.5], "loss": 0.5 * (0.3 ** 2 + 0.7 ** 2 + 0.5 ** 2)})
    assert [e.origin for e in result.expect] == ["introduced", "propagated"]
    assert result.first_wrong == "output" and result.first_wrong_layer is None

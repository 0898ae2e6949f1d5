"""The entropy losses: probabilities only where they are probabilities, and the logits forms.

`cross_entropy` reads a distribution (a final softmax), `binary_cross_entropy` probabilities (a final
sigmoid); anything else is refused with the fix. `loss: {cross_entropy: {from: logits}}` and
`{binary_cross_entropy: {from: logits}}` take the final output as logits and agree with PyTorch's
`F.cross_entropy` and `F.binary_cross_entropy_with_logits` (reduction 'sum': one example, summed
over its outputs, as the probability forms are), also at logits of ±1000.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from cnngrad.spec import load_model
from helpers.cli import run_text
from helpers.specs import write_spec, spec_error

FC3 = "  - fc: {weights: [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}\n"




def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1e-300, np.maximum(np.abs(a), np.abs(b)))))


# --- the refusal --------------------------------------------------------------------------------

@pytest.mark.parametrize("loss, last, fix", [
    ("cross_entropy", FC3, "- softmax"),
    ("cross_entropy", "  - sigmoid\n", "- softmax"),
    ("cross_entropy", "  - softmax\n  - tanh\n", "- softmax"),
    ("binary_cross_entropy", FC3, "- sigmoid"),
    ("binary_cross_entropy", "  - softmax\n", "- sigmoid"),
    ("binary_cross_entropy", "  - relu\n", "- sigmoid"),
])
def test_an_entropy_loss_after_values_that_are_not_probabilities_is_refused(tmp_path, loss, last, fix):
    # the issue's example: [1, -2, 0.5] through an identity fc into cross_entropy gave loss 0.0
    err = spec_error(tmp_path, f"input: [1, -2, 0.5]\nlayers:\n{last}loss: {loss}\ntarget: [1, 0, 0]\n")
    assert err.path == "loss" and err.line == 3 + last.count("\n")
    assert fix in err.message and f"{{{loss}: {{from: logits}}}}" in err.message


def test_the_issue_example_through_the_cli_is_exit_2_for_every_command(tmp_path):
    text = f"input: [1, -2, 0.5]\nlayers:\n{FC3}loss: cross_entropy\ntarget: 0\n"
    for command in ("forward", "backward", "check"):
        outcome = run_text(tmp_path, text, command)
        assert outcome.exit_code == 2 and "add `- softmax`" in outcome.stderr


def test_with_no_layers_the_input_must_be_probabilities(tmp_path):
    ok = load_model(write_spec(tmp_path, "input: [0.7, 0.2, 0.1]\nlayers: []\nloss: cross_entropy\ntarget: 0\n"))
    assert ok.values()["loss"] == pytest.approx(-np.log(0.7), rel=1e-15)
    for values, loss, words in [("[1, -2, 0.5]", "cross_entropy", ["input[1] is -2"]),
                                ("[0.7, 0.7, 0.1]", "cross_entropy", ["sum to 1.5"]),
                                ("[0.5, 1.5]", "binary_cross_entropy", ["input[1] is 1.5"])]:
        err = spec_error(tmp_path, f"input: {values}\nlayers: []\nloss: {loss}\ntarget: 0\n")
        assert err.path == "loss", err
        for word in words + ["from: logits"]:
            assert word in err.message, err


@pytest.mark.parametrize("loss, target, words", [
    ("cross_entropy", "[0.5, -0.5, 1]", ["target[1] is -0.5", "≥ 0"]),
    ("binary_cross_entropy", "[0, 2, 1]", ["target[1] is 2", "[0, 1]"]),
    ("{binary_cross_entropy: {from: logits}}", "[-1, 0, 1]", ["target[0] is -1", "[0, 1]"]),
])
def test_targets_that_are_not_probabilities_are_refused(tmp_path, loss, target, words):
    last = "" if "logits" in loss else "  - softmax\n" if loss == "cross_entropy" else "  - sigmoid\n"
    err = spec_error(tmp_path, f"input: [1, -2, 0.5]\nlayers:\n{FC3}{last}loss: {loss}\ntarget: {target}\n")
    assert err.path == "target", err
    for word in words:
        assert word in err.message, err


def test_from_is_only_for_the_entropy_losses(tmp_path):
    err = spec_error(tmp_path, f"input: [1, 2, 3]\nlayers:\n{FC3}loss: {{mse: {{from: logits}}}}\ntarget: [0, 0, 0]\n")
    assert err.path == "loss.mse" and "cross_entropy and binary_cross_entropy" in err.message
    err = spec_error(tmp_path, f"input: [1, 2, 3]\nlayers:\n{FC3}loss: {{cross_entropy: {{from: logit}}}}\ntarget: 0\n")
    assert err.path == "loss.cross_entropy.from" and "'logits'" in err.message
    err = spec_error(tmp_path, f"input: [1, 2, 3]\nlayers:\n{FC3}loss: {{cross_entropy: null, mse: null}}\ntarget: 0\n")
    assert err.path == "loss" and "one loss" in err.message


# --- the logits forms against PyTorch -----------------------------------------------------------

torch_cases = [("random", 1.0), ("random", 10.0), ("extreme", 1000.0), ("extreme", -1000.0)]


def logits_for(kind: str, scale: float, rng, n: int) -> np.ndarray:
    if kind == "random":
        return rng.standard_normal(n) * scale
    z = np.array([scale, 0.0, -scale, 0.5 * scale, -0.5 * scale, 1.0])
    return z[:n]


def spec_text(z, loss: str, target) -> str:
    """The logits z come out of an fc with identity weights (so grad.fc1.weights is exercised too)."""
    n = len(z)
    weights = np.eye(n).tolist()
    return (f"input: {[float(v) for v in z]}\nlayers:\n  - fc: {{weights: {weights}}}\n"
            f"loss: {{{loss}: {{from: logits}}}}\ntarget: {json.dumps(target)}\n")


@pytest.mark.parametrize("kind, scale", torch_cases)
def test_cross_entropy_from_logits_is_torchs_cross_entropy(tmp_path, kind, scale):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(int(abs(scale)) + len(kind))
    for n in (1, 2, 3, 6):
        z = logits_for(kind, scale, rng, n)
        soft = rng.random(n)
        soft /= soft.sum()
        for target in (int(np.argmin(z)), soft.tolist()):
            model = load_model(write_spec(tmp_path, spec_text(z, "cross_entropy", target)))
            values = model.values()
            tz = torch.tensor(z[None], dtype=torch.float64, requires_grad=True)
            tt = torch.tensor([target]) if isinstance(target, int) else torch.tensor([target], dtype=torch.float64)
            tloss = F.cross_entropy(tz, tt, reduction="sum")
            tloss.backward()
            assert np.isfinite(values["loss"]) and rel_err(values["loss"], tloss.item()) <= 1e-10
            assert rel_err(values["grad.output"], tz.grad[0].numpy()) <= 1e-10
            assert rel_err(values["grad.input"], tz.grad[0].numpy()) <= 1e-10   # identity fc
            if kind == "extreme" and isinstance(target, int) and n > 2:
                assert values["loss"] == pytest.approx(2 * abs(scale), rel=1e-12)


@pytest.mark.parametrize("kind, scale", torch_cases)
def test_binary_cross_entropy_from_logits_is_torchs_with_logits_sum(tmp_path, kind, scale):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7 + int(abs(scale)))
    for n in (1, 3, 6):
        z = logits_for(kind, scale, rng, n)
        for target in (rng.integers(0, 2, n).astype(float).tolist(), rng.random(n).tolist()):
            model = load_model(write_spec(tmp_path, spec_text(z, "binary_cross_entropy", target)))
            values = model.values()
            tz = torch.tensor(z, dtype=torch.float64, requires_grad=True)
            tloss = F.binary_cross_entropy_with_logits(tz, torch.tensor(target, dtype=torch.float64),
                                                       reduction="sum")
            tloss.backward()
            assert np.isfinite(values["loss"]) and rel_err(values["loss"], tloss.item()) <= 1e-10
            assert rel_err(values["grad.output"], tz.grad.numpy()) <= 1e-10
            assert rel_err(values["grad.fc1.bias"], tz.grad.numpy()) <= 1e-10


def test_a_map_of_logits_is_one_distribution_over_the_example_as_softmax_is(tmp_path):
    # cnngrad's softmax normalises over all entries of an example, so the logits form of a map is
    # the same as a final softmax with cross_entropy
    z = "[[0.3, -1.2, 2.0], [0.5, 0.1, -0.4]]"
    t = "[[0, 0.25, 0.5], [0.25, 0, 0]]"
    logits = load_model(write_spec(tmp_path, f"input: {z}\nlayers: []\nloss: {{cross_entropy: {{from: logits}}}}\n"
                                        f"target: {t}\n")).values()
    fused = load_model(write_spec(tmp_path, f"input: {z}\nlayers: [softmax]\nloss: cross_entropy\ntarget: {t}\n",
                             "fused.yaml")).values()
    assert logits["loss"] == pytest.approx(float(fused["loss"]), rel=1e-14)
    np.testing.assert_allclose(logits["grad.input"], fused["grad.input"], rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("loss, target", [("cross_entropy", "2"), ("cross_entropy", "[0.2, 0.3, 0.5]"),
                                          ("binary_cross_entropy", "[1, 0, 0.25]")])
@pytest.mark.parametrize("z", ["[0.3, -1.2, 2.0]", "[1000, -1000, 0.5]"])
def test_check_passes_the_logits_forms_without_kinks(tmp_path, loss, target, z):
    text = (f"input: {z}\nlayers:\n  - fc: {{weights: [[1, 0.5, 0], [0, 1, 0], [0.2, 0, 1]], bias: 0.1}}\n"
            f"loss: {{{loss}: {{from: logits}}}}\ntarget: {target}\n")
    outcome = run_text(tmp_path, text, "check", "--format", "json")
    assert outcome.exit_code == 0, outcome.stdout
    spec = json.loads(outcome.stdout)["specs"][0]
    assert spec["passed"] and all(q["kinks"] == 0 for q in spec["gradients"])


def test_the_loss_line_names_the_logits_form(tmp_path):
    text = f"input: [1, -2, 0.5]\nlayers:\n{FC3}loss: {{cross_entropy: {{from: logits}}}}\ntarget: 0\n"
    out = run_text(tmp_path, text, "forward").stdout
    # −log softmax([1, −2, 0.5])[0] = log(1 + e^−3 + e^−0.5) = 0.504597...
    assert "loss (cross_entropy from logits) = 0.504597" in out
    assert json.loads(run_text(tmp_path, text, "forward", "--format", "json").stdout)["loss"] == \
        pytest.approx(np.log(1 + np.exp(-3) + np.exp(-0.5)), rel=1e-15)


@pytest.mark.parametrize("loss, target", [("cross_entropy", "1"), ("binary_cross_entropy", "[1, 0, 0.5]")])
def test_explain_writes_the_logits_gradient(tmp_path, loss, target):
    from cnngrad.explain import explain
    model = load_model(write_spec(tmp_path, f"input: [1, -2, 0.5]\nlayers:\n{FC3}loss: {{{loss}: {{from: logits}}}}\n"
                                       f"target: {target}\n"))
    values = model.values()
    for k in range(3):
        explained = explain(model, f"grad.fc1[{k}]")
        assert explained.value == values["grad.fc1"][k]
        assert explained.total == pytest.approx(explained.value, rel=1e-15, abs=1e-300)
        assert "z[k]" in explained.formula and ("z", "output") in explained.where
    outcome = run_text(tmp_path, open(model.path).read(), ["explain", "grad.output[1]"])
    assert outcome.exit_code == 0 and "grad.output[1] =" in outcome.stdout


def test_the_schema_accepts_the_logits_form_and_rejects_unknown_settings():
    jsonschema = pytest.importorskip("jsonschema")
    from cnngrad.spec.schema import spec_schema
    validator = jsonschema.Draft202012Validator(spec_schema())
    base = {"input": [1.0, 2.0], "layers": ["relu"], "target": [0.0, 1.0]}
    for loss in ({"cross_entropy": {"from": "logits"}}, {"binary_cross_entropy": {"from": "logits"}},
                 {"cross_entropy": {"from": "probabilities"}}, {"cross_entropy": None}, "cross_entropy"):
        assert list(validator.iter_errors({**base, "loss": loss})) == [], loss
    for loss in ({"cross_entropy": {"from": "logit"}}, {"mse": {"from": "logits"}},
                 {"cross_entropy": {"form": "logits"}}, {"cross_entropy": None, "mse": None}, {}):
        assert list(validator.iter_errors({**base, "loss": loss})), loss


# --- an infinite loss says its true cause; no numpy warning reaches stderr ---------------------

def one_error(tmp_path, text: str, command: str = "forward") -> str:
    outcome = run_text(tmp_path, text, command)   # the judge fails on any warning or traceback
    assert outcome.exit_code == 2, outcome.stdout
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, outcome.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["forward", "backward", "check"])
def test_squared_error_overflow_says_the_square_overflowed(tmp_path, command):
    # (t − y)² = 1e400 for y = 1e200, t = 0: beyond float64, though y is finite
    for loss in ("squared_error", "mse"):
        line = one_error(tmp_path, f"input: [1e200, 1]\nlayers: [relu]\nloss: {loss}\ntarget: [0, 0]\n", command)
        assert f"loss: {loss} is inf" in line and "(t − y)²" in line and "1e+200" in line
        assert "probability" not in line


def test_a_probability_of_exactly_0_under_a_positive_target_says_so(tmp_path):
    # with no layers the input is the output: y = [0, 1], t = [1, 0]: −log 0
    for loss in ("cross_entropy", "binary_cross_entropy"):
        line = one_error(tmp_path, f"input: [0, 1]\nlayers: []\nloss: {loss}\ntarget: [1, 0]\n")
        assert f"loss: {loss} is inf" in line and "output[0] is exactly 0" in line
    line = one_error(tmp_path, "input: [0.5, 1]\nlayers: []\nloss: binary_cross_entropy\ntarget: [0.5, 0.5]\n")
    assert "output[1] is exactly 1" in line


def test_logits_too_far_apart_for_float64_say_so(tmp_path):
    # log_softmax(z)[1] = −2e308 − log(…): beyond float64
    line = one_error(tmp_path, "input: [1e308, -1e308]\nlayers: []\nloss: {cross_entropy: {from: logits}}\n"
                               "target: 1\n")
    assert "loss: cross_entropy from logits is inf" in line and "logits" in line
    assert "probability" not in line


def test_an_input_made_infinite_is_not_called_finite(tmp_path):
    # normal(0, 1e308) with seed 0 draws −inf at entry 12: refused at the scale that makes it
    line = one_error(tmp_path, "input: {random: {shape: [30], scale: 1e308, seed: 0}}\nlayers: [sigmoid]\n"
                               "loss: none\nupstream_grad: {random: {shape: [30]}}\n")
    assert "input.random.scale" in line and "overflow" in line and "was finite" not in line
    line = one_error(tmp_path, "input: [[1e300, 1e300], [1e300, 1e300]]\nlayers:\n  - conv: {kernel: [[1e10, 1], [1, 1]]}\n"
                               "loss: none\nupstream_grad: [[1]]\n")
    assert "conv1: the output is not finite (inf at [0, 0])" in line
    assert "its input and parameters are finite" in line


@pytest.mark.parametrize("command", [["forward"], ["backward"], ["check"], ["explain", "grad.output[0]"]])
def test_logits_beyond_float64_apart_with_a_finite_loss_warn_nothing(tmp_path, command):
    # z = [1e308, −1e308], t = 0: log_softmax(z) = [0, −inf]: E = 0, ∂E/∂z = softmax(z) − t = [0, 0]
    outcome = run_text(tmp_path, "input: [1e308, -1e308]\nlayers: []\nloss: {cross_entropy: {from: logits}}\n"
                                 "target: 0\n", command)       # the judge fails on a warning
    assert outcome.exit_code == 0 and outcome.stderr == ""


@pytest.mark.parametrize("text", ["input: [1e200, 1]\nlayers: [relu]\nloss: mse\ntarget: [0, 0]\n",
                                  "input: [0, 1]\nlayers: []\nloss: cross_entropy\ntarget: [1, 0]\n"])
def test_explain_refuses_an_infinite_loss_with_its_cause(tmp_path, text):
    line = one_error(tmp_path, text, ["explain", "grad.output[0]"])
    assert "is inf:" in line and "gradient is not finite" not in line


# --- an activation applied twice --------------------------------------------------------------

TARGET = "[[[0.5, 0], [0, 0]], [[0, 0], [0, 0.5]]]"   # probabilities of the 2×2×2 output

@pytest.mark.parametrize("last, loss, note", [
    ("  - softmax\n", "cross_entropy",
     "softmax1 is a softmax, and cross_entropy from logits applies softmax again: the loss reads "
     "softmax(softmax1). Write `loss: cross_entropy` to read softmax1's distribution, or drop "
     "`- softmax` to keep the logits form"),
    ("  - softmax: {axis: channels}\n", "cross_entropy", "applies softmax again"),
    ("  - sigmoid\n", "binary_cross_entropy",
     "sigmoid1 is a sigmoid, and binary_cross_entropy from logits applies sigmoid again: the loss "
     "reads sigmoid(sigmoid1). Write `loss: binary_cross_entropy` to read sigmoid1's probabilities, "
     "or drop `- sigmoid` to keep the logits form"),
])
def test_a_logits_loss_after_its_own_activation_is_noted(tmp_path, last, loss, note):
    """softmax → {cross_entropy: {from: logits}} computes softmax twice; the numbers are those of
    the network as written (PyTorch's F.cross_entropy of softmax outputs), but forward says so."""
    text = (f"input: {{random: {{shape: [2, 2, 2], seed: 0}}}}\nlayers:\n{last}"
            f"loss: {{{loss}: {{from: logits}}}}\ntarget: {TARGET}\n")
    forward = run_text(tmp_path, text, "forward", "--format", "json")
    assert forward.exit_code == 0, forward.stderr
    notes = json.loads(forward.stdout)["notes"]
    assert len(notes) == 1 and note in notes[0], notes
    table = run_text(tmp_path, text, "forward").stdout
    assert note.split(":")[0] in table[:table.index("\n\ninput ")]   # with the summary, as other notes


@pytest.mark.parametrize("last, loss", [("  - softmax\n", "cross_entropy"),
                                        ("  - sigmoid\n", "binary_cross_entropy"),
                                        ("  - tanh\n", "{cross_entropy: {from: logits}}"),
                                        ("  - softmax\n  - tanh\n", "{cross_entropy: {from: logits}}")])
def test_no_note_where_each_activation_is_applied_once(tmp_path, last, loss):
    text = (f"input: {{random: {{shape: [2, 2, 2], seed: 0}}}}\nlayers:\n{last}loss: {loss}\n"
            f"target: {TARGET}\n")
    forward = run_text(tmp_path, text, "forward", "--format", "json")
    assert forward.exit_code == 0, forward.stderr
    assert json.loads(forward.stdout)["notes"] == []


@pytest.mark.parametrize("command", ["check", "backward"])
def test_check_and_backward_carry_the_note_too(tmp_path, command):
    """The gradients of softmax applied twice all pass their check (they are the network's as
    written), so `check` and `backward`, which most users run, must say it as forward does."""
    text = (f"input: {{random: {{shape: [2, 2, 2], seed: 0}}}}\nlayers:\n  - softmax\n"
            f"loss: {{cross_entropy: {{from: logits}}}}\ntarget: {TARGET}\n")
    note = "softmax1 is a softmax, and cross_entropy from logits applies softmax again"
    as_json = run_text(tmp_path, text, command, "--format", "json")
    assert as_json.exit_code == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    notes = document["specs"][0]["notes"] if command == "check" else document["notes"]
    assert len(notes) == 1 and notes[0].startswith(note), notes
    for fmt in ("table", "markdown"):
        shown = run_text(tmp_path, text, command, "--format", fmt)
        assert shown.exit_code == 0 and note in " ".join(shown.stdout.split()), shown.stdout


def test_check_json_has_no_notes_where_there_are_none(tmp_path):
    text = f"input: {{random: {{shape: [2, 2, 2], seed: 0}}}}\nlayers:\n  - softmax\nloss: cross_entropy\ntarget: {TARGET}\n"
    checked = run_text(tmp_path, text, "check", "--format", "json")
    assert json.loads(checked.stdout)["specs"][0]["notes"] == []

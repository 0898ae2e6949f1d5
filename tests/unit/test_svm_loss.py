"""The multiclass SVM (hinge) loss of CS231n, E = Σ_{j≠y} max(0, s_j − s_y + Δ), against PyTorch,
by hand, through explain and through the checker (its kinks at margin 0).

PyTorch's ``F.multi_margin_loss(s, y, p=1, margin=Δ, reduction='sum')`` is the same sum divided
by the number of classes C (its docs: loss(x, y) = Σ_i max(0, margin − x[y] + x[i]) / x.size(0)),
so E = C × torch's; the tests check that relation directly.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad import SpecError, loads
from cnngrad.explain import explain
from cnngrad.gradcheck import check_model
from cnngrad.losses import LOSSES, MulticlassSVM
from cnngrad.network import Network
from helpers import ROOT

torch = pytest.importorskip("torch")
F = torch.nn.functional

from test_gradcheck import by_name  # noqa: E402
from test_layers_torch import CASES, assert_close  # noqa: E402


def one_hot(classes, count):
    return np.eye(count)[classes]


def test_matches_torch_times_the_number_of_classes():
    rng = np.random.default_rng(2016)
    margins = set()
    for _ in range(CASES * 2):
        batch, count = int(rng.integers(1, 5)), int(rng.integers(2, 9))
        margin = float(rng.choice([1.0, 0.5, 2.0, 0.0])) if rng.random() < 0.8 else float(rng.uniform(0, 3))
        s = rng.standard_normal((batch, count)) * rng.choice([0.5, 2.0, 10.0])
        labels = rng.integers(0, count, size=batch)
        loss = MulticlassSVM(margin=margin)
        t = one_hot(labels, count)
        ts = torch.tensor(s, requires_grad=True)
        per = torch.stack([F.multi_margin_loss(ts[b:b + 1], torch.tensor(labels[b:b + 1]), p=1, margin=margin,
                                               reduction="sum") for b in range(batch)])
        assert_close(loss.value(s, t), count * per, "svm loss", (margin, count))
        (count * per).sum().backward()
        assert_close(loss.grad(s, t), ts.grad, "svm grad", (margin, count))
        margins.add(margin)
    assert len(margins) > 4


def test_cs231n_example_by_hand():
    """CS231n notes, "Multiclass Support Vector Machine loss": scores s = [13, −7, 11], the first
    class correct, Δ = 10: max(0, −7 − 13 + 10) + max(0, 11 − 13 + 10) = 0 + 8 = 8; the gradient
    counts the positive margins: ∂E/∂s = [−1, 0, 1]."""
    loss = MulticlassSVM(margin=10)
    s, t = np.array([[13.0, -7.0, 11.0]]), one_hot([0], 3)
    assert loss.value(s, t).tolist() == [8.0]
    assert loss.grad(s, t).tolist() == [[-1.0, 0.0, 1.0]]


def test_a_hinge_exactly_at_zero_gives_zero_as_torch():
    """s = [1, 0, 2], class 2, Δ = 1: margins 1 − 2 + 1 = 0 (the kink) and 0 − 2 + 1 = −1; torch
    counts only z > 0, so ∂E/∂s = [0, 0, 0] and E = 0."""
    s, t = np.array([[1.0, 0.0, 2.0]]), one_hot([2], 3)
    assert MulticlassSVM().value(s, t).tolist() == [0.0]
    assert MulticlassSVM().grad(s, t).tolist() == [[0.0, 0.0, 0.0]]
    ts = torch.tensor(s, requires_grad=True)
    F.multi_margin_loss(ts, torch.tensor([2]), reduction="sum").backward()
    assert ts.grad.tolist() == [[0.0, 0.0, 0.0]]


SPEC = """\
name: svm
input: [0.5, -1.2, 2.0]
layers:
  - fc: {weights: [[1, 0, 0.5], [0.2, 1, -0.3], [-0.5, 0.4, 1]], bias: [0, 0.1, -0.2]}
loss: {multiclass_svm: {margin: 1}}
target: 1
"""


def test_a_spec_reads_the_loss_margin_and_class_index():
    model = loads(SPEC)
    assert model.network.loss.name == "multiclass_svm" and model.network.loss.margin == 1.0
    np.testing.assert_array_equal(model.target, [[0.0, 1.0, 0.0]])
    default = loads(SPEC.replace("{multiclass_svm: {margin: 1}}", "multiclass_svm"))
    assert default.network.loss.margin == 1.0
    # s = W x + b = [1.5, −1.4 + … ]: computed by hand below, the loss by its definition
    s = np.array([[1, 0, 0.5], [0.2, 1, -0.3], [-0.5, 0.4, 1]]) @ [0.5, -1.2, 2.0] + [0, 0.1, -0.2]
    expected = sum(max(0.0, s[j] - s[1] + 1) for j in (0, 2))
    assert model.values()["loss"] == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("target, words", [("[0.2, 0.8, 0]", "one-hot"), ("[0, 1, 1]", "one-hot"),
                                           ("3", "out of range")])
def test_a_target_that_is_no_class_is_refused(target, words):
    with pytest.raises(SpecError) as err:
        loads(SPEC.replace("target: 1", f"target: {target}"))
    assert words in err.value.message and err.value.path == "target"


def test_margin_must_be_a_number_and_other_losses_take_none():
    with pytest.raises(SpecError):
        loads(SPEC.replace("margin: 1", "margin: big"))
    with pytest.raises(SpecError) as err:
        loads(SPEC.replace("{multiclass_svm: {margin: 1}}", "{squared_error: {margin: 1}}"))
    assert err.value.path.startswith("loss")


KINKED = """\
input: [1, 0, 2]
layers: []
loss: multiclass_svm
target: 2
"""


def test_the_checker_reports_a_hinge_at_zero_as_a_kink():
    """Margin of class 0 is exactly 0: moving s_0 up opens it (slope 1), down keeps it shut (0),
    and moving s_2 down opens it (slope −1 on the right side of s_2's bracket). The analytic 0 lies
    in each bracket: kinks, not failures."""
    result = check_model(loads(KINKED))
    assert result.passed
    entries = by_name(result)["input"].entries
    assert entries[0].status == "kink" and sorted([entries[0].left, entries[0].right]) == pytest.approx([0, 1])
    assert entries[1].status == "ok" and entries[1].analytic == 0.0
    assert entries[2].status == "kink" and sorted([entries[2].left, entries[2].right]) == pytest.approx([-1, 0])


def test_a_wrong_hinge_gradient_fails_the_check():
    """Negative control: a gradient that forgets the −Σ at the true class fails (away from kinks)."""

    class ForgetsTrueClass(MulticlassSVM):
        def grad(self, y, t):
            return super().grad(y, t) * (1 - t)

    model = loads(SPEC)
    model.network = Network(model.network.input_shape,
                            list(zip(model.network.names, model.network.layers)), ForgetsTrueClass())
    result = check_model(model)
    assert not result.passed and by_name(result)["input"].status == "failed"


def test_explain_shows_the_indicator_terms():
    """s for SPEC: class 1 true; ∂E/∂s_1 = −(number of positive margins), one −1 term each."""
    model = loads(SPEC)
    values = model.values()
    s = values["output"]
    positive = [j for j in (0, 2) if s[j] - s[1] + 1 > 0]
    true = explain(model, "grad.output[1]")
    assert true.value == -len(positive) and [t.value for t in true.terms] == [-1.0] * len(positive)
    assert "max(0, y[j] − y[c] + Δ)" in true.formula
    other = explain(model, f"grad.fc1[{positive[0]}]")
    assert [t.value for t in other.terms] == [1.0]
    assert any("margin" in str(part) for note in other.notes for part in note)


def test_listed_among_the_losses():
    assert "multiclass_svm" in LOSSES


def test_the_cs231n_example_expects_what_torch_computes():
    """configs/cs231n_multiclass_svm.yaml: the loss is 3 × F.multi_margin_loss(margin=10) and every
    gradient written there is torch's autograd."""
    from cnngrad import load
    model = load(str(ROOT / "configs/cs231n_multiclass_svm.yaml"))
    written = {e.quantity: e.values for e in model.expect}
    x = torch.tensor([2.0, 1.0], dtype=torch.float64, requires_grad=True)
    w = torch.tensor(model.params["fc1.weights"], requires_grad=True)
    s = w @ x
    loss = 3 * F.multi_margin_loss(s[None], torch.tensor([0]), p=1, margin=10.0, reduction="sum")
    loss.backward()
    assert float(loss.detach()) == written["loss"] == 8
    np.testing.assert_array_equal(written["fc1"], s.detach().numpy())
    np.testing.assert_array_equal(written["grad.fc1.weights"], w.grad.numpy())
    np.testing.assert_array_equal(written["grad.input"], x.grad.numpy())


def test_the_schema_takes_the_margin():
    jsonschema = pytest.importorskip("jsonschema")
    from cnngrad.spec.schema import spec_schema
    validator = jsonschema.Draft202012Validator(spec_schema())
    spec = {"input": [1.0, 2.0], "layers": [], "target": 0}
    assert validator.is_valid({**spec, "loss": {"multiclass_svm": {"margin": 10}}})
    assert validator.is_valid({**spec, "loss": "multiclass_svm"})
    assert not validator.is_valid({**spec, "loss": {"multiclass_svm": {"margin": "big"}}})
    assert not validator.is_valid({**spec, "loss": {"multiclass_svm": {"from": "logits"}}})

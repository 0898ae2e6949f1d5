"""An adversary's cases for the diagnosis: numbers a named mistake would also give only by
coincidence (a dropout that drops nothing, a value of zeros everywhere) get no claim they cannot
show, and two ids that give the same numbers are both listed; sigmoid with binary cross-entropy's
∂E/∂z written σ instead of σ − t is named; the course layers' mistakes are found on other networks
(several regularized parameters, Δ ≠ 1, batches with a mean, batch norm after a conv); and values
written from the user's own wrong forward values are propagated, not introduced.

Wrong values are made here by hand in numpy, independently of the catalogue, and handed to the
real command (``check --against``), as in test_diagnose_course_layers.
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers.cli import invoke
from test_diagnose_course_layers import CLASSES, DROPOUT_NET, SCORES_NET, WD1, WD2, WS, XD, XS, BS, \
    assert_named, assert_right, ids, run


# --- a dropout that drops nothing: not masking it changes nothing -------------------------------

def test_dropout_that_keeps_every_entry_is_not_called_unmasked(tmp_path):
    """mask [1, 1, 1, 1], p = 0.25: δ·m without 1/(1 − p) is δ itself, so a delta of δ shows the
    scale left out, and nothing of a mask (there is nothing it drops)."""
    spec = DROPOUT_NET.replace("P", "0.25").replace("mask: [1, 0, 1, 1]", "mask: [1, 1, 1, 1]")
    y = WD2 @ (np.maximum(WD1 @ XD + 0.2, 0) / 0.75)
    delta = WD2.T @ (y - np.array([1.0, 0]))          # ∂E/∂(dropout output); ∂E/∂(its input) is delta/0.75
    code, _, entries = run(tmp_path, spec, {"grad.relu1": delta})
    assert code == 1
    assert_named(entries, "grad.relu1", "dropout-scale-missing", "dropout1")
    assert "dropout-delta-not-masked" not in ids(entries["grad.relu1"])


# --- a value of zeros everywhere: what a value never computed gives, too -------------------------

ZERO_CORNER_NET = """\
input: [[[0, 0, 1, 2], [0, 0, 3, 1], [1, 2, 0.5, 1], [2, 1, 1, 3]]]
layers:
  - conv: {kernel: [[[[0.5, 0.2], [0.3, 0.1]]], [[[0.4, 0.6], [0.2, 0.3]]]], bias: [-0.5, -0.2]}
  - relu
  - flatten
  - fc: {weights: [[0.3, -0.2, 0.5, 0.1, 0.4, -0.3, 0.2, 0.6, -0.1, 0.2, 0.1, -0.4, 0.3, 0.5, -0.2, 0.1, 0.4, 0.2]]}
loss: squared_error
target: [1]
"""


def test_a_bias_gradient_of_zeros_is_not_called_one_delta(tmp_path):
    """Both filters see only their negative bias at the top-left position, so relu passes no delta
    there: "the first delta" is [0, 0], as is a gradient never computed. By hand the bias gradient
    is the sum of the live deltas, not 0; zeros get no diagnosis, the deltas' mean still does."""
    x = np.array([[0, 0, 1, 2], [0, 0, 3, 1], [1, 2, 0.5, 1], [2, 1, 1, 3.0]])
    kernels, bias = np.array([[[0.5, 0.2], [0.3, 0.1]], [[0.4, 0.6], [0.2, 0.3]]]), np.array([-0.5, -0.2])
    windows = np.lib.stride_tricks.sliding_window_view(x, (2, 2))          # (3, 3, 2, 2)
    z = np.einsum("ijkl,fkl->fij", windows, kernels) + bias[:, None, None]
    w = np.array([0.3, -0.2, 0.5, 0.1, 0.4, -0.3, 0.2, 0.6, -0.1, 0.2, 0.1, -0.4, 0.3, 0.5, -0.2, 0.1, 0.4, 0.2])
    y = w @ np.maximum(z, 0).ravel()
    delta = ((y - 1) * w).reshape(2, 3, 3) * (z > 0)
    assert np.all(delta[:, 0, 0] == 0) and np.all(delta.sum(axis=(1, 2)) != 0)
    code, _, entries = run(tmp_path, ZERO_CORNER_NET, {"grad.conv1": delta, "grad.conv1.bias": np.zeros(2)})
    assert code == 1 and entries["grad.conv1"]["passed"]
    assert entries["grad.conv1.bias"]["origin"] == "introduced" and entries["grad.conv1.bias"]["diagnosis"] == []
    table = invoke("check", tmp_path / "net.yaml", "--against", tmp_path / "mine.npz").stdout
    assert "never computed" in table and "bias-not-summed" not in table
    code, _, entries = run(tmp_path, ZERO_CORNER_NET, {"grad.conv1": delta, "grad.conv1.bias": delta.mean(axis=(1, 2))})
    assert_named(entries, "grad.conv1.bias", "bias-not-summed", "conv1")     # the mean of the 9 shows


def test_an_l2_gradient_of_zeros_where_the_data_gives_none(tmp_path):
    """relu dead for every unit: fc1's data gradient is 0 and its whole gradient 2λW. Zeros are the
    penalty left out, or nothing computed: no claim; 2λW/2 = λW (the ½λΣθ² convention) is named."""
    spec = ("input: [1.0, 2.0]\nlayers:\n  - fc: {weights: [[0.5, -0.3], [0.2, 0.1]], bias: [-5, -5]}\n  - relu\n"
            "  - fc: {weights: [[0.4, -0.6]], bias: [0.2]}\nloss: squared_error\ntarget: [1]\n"
            "regularization: {l2: 0.1, params: [fc1.weights]}\n")
    weights = np.array([[0.5, -0.3], [0.2, 0.1]])
    _, _, entries = run(tmp_path, spec, {"grad.fc1.weights": np.zeros((2, 2))})
    assert entries["grad.fc1.weights"]["origin"] == "introduced" and entries["grad.fc1.weights"]["diagnosis"] == []
    _, _, entries = run(tmp_path, spec, {"grad.fc1.weights": 0.1 * weights})
    assert_named(entries, "grad.fc1.weights", "l2-penalty-factor-off-by-2", "fc1")


# --- sigmoid with binary cross-entropy: ∂E/∂z = σ − t written σ -----------------------------------

MULTI_LABEL = np.array([[1.0, 0, 1], [0, 0, 1], [1, 1, 0]])
BCE_SPECS = {"logits": "loss: {binary_cross_entropy: {from: logits, reduction: REDUCTION}}",
             "sigmoid": "  - sigmoid\nloss: {binary_cross_entropy: {reduction: REDUCTION}}"}


def bce_spec(form: str, reduction: str) -> str:
    return SCORES_NET.replace("LOSS", BCE_SPECS[form].replace("REDUCTION", reduction)).replace(
        f"target: {CLASSES}", f"target: {MULTI_LABEL.tolist()}")


def bce_values(reduction: str, *, target_subtracted=True) -> dict:
    """Binary cross-entropy of each of the 3 examples' 3 scores: ∂E/∂z = (σ(z) − t)/N (N for a
    mean), a student's σ(z)/N when t is forgotten."""
    s = 1 / (1 + np.exp(-(XS @ WS.T + BS)))
    n = 3 if reduction == "mean" else 1
    dz = (s - MULTI_LABEL if target_subtracted else s) / n
    return {"grad.fc1": dz, "grad.fc1.weights": dz.T @ XS, "grad.input": dz @ WS}


@pytest.mark.parametrize("form", ["logits", "sigmoid"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_sigmoid_bce_right_values_get_no_diagnosis(tmp_path, form, reduction):
    code, _, entries = run(tmp_path, bce_spec(form, reduction), bce_values(reduction))
    assert_right(code, entries)


@pytest.mark.parametrize("form", ["logits", "sigmoid"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_sigmoid_bce_gradient_without_the_target(tmp_path, form, reduction):
    code, document, entries = run(tmp_path, bce_spec(form, reduction), bce_values(reduction, target_subtracted=False))
    assert code == 1
    best = assert_named(entries, "grad.fc1", "sigmoid-bce-target-not-subtracted",
                        "sigmoid1" if form == "sigmoid" else None)
    assert "σ" in best["message"]
    assert "softmax-ce-target-not-subtracted" not in ids(entries["grad.fc1"])
    assert entries["grad.fc1.weights"]["origin"] == "propagated" and entries["grad.input"]["origin"] == "propagated"
    assert document["first_wrong"] == "grad.fc1"


def test_sigmoid_bce_controls(tmp_path):
    """σ − t/2 is no known mistake; t − σ is the sign, not the target."""
    values = bce_values("sum")
    values["grad.fc1"] = values["grad.fc1"] + MULTI_LABEL / 2
    _, _, entries = run(tmp_path, bce_spec("logits", "sum"), {"grad.fc1": values["grad.fc1"]})
    assert entries["grad.fc1"]["diagnosis"] == []
    _, _, entries = run(tmp_path, bce_spec("sigmoid", "sum"), {"grad.fc1": -bce_values("sum")["grad.fc1"]})
    assert ids(entries["grad.fc1"]) == ["sign-flipped"]


# --- misses: the classic mistake on other networks ------------------------------------------------

def test_l2_penalty_of_one_parameter_left_out_of_the_loss(tmp_path):
    """Two regularized weights, the loss's penalty summing one of them: λΣW2² without λΣW1²."""
    from test_diagnose_course_layers import TANH_NET, W1, W2, tanh_net
    lam, h = 0.05, tanh_net()
    spec = TANH_NET.replace("LAMBDA", str(lam))
    _, _, entries = run(tmp_path, spec, {"loss": h["data"] + lam * np.sum(W2 ** 2)})
    best = assert_named(entries, "loss", "l2-penalty-missing", None)
    assert "fc1.weights" in best["message"]
    _, _, entries = run(tmp_path, spec, {"loss": h["data"] + lam * np.sum(W1 ** 2)})
    assert "fc2.weights" in assert_named(entries, "loss", "l2-penalty-missing", None)["message"]
    _, _, entries = run(tmp_path, spec, {"loss": h["data"]})
    assert "data loss alone" in assert_named(entries, "loss", "l2-penalty-missing", None)["message"]
    _, _, entries = run(tmp_path, spec, {"penalty": lam * np.sum(W2 ** 2)})
    assert_named(entries, "penalty", "l2-penalty-missing", None)


def test_a_coincidence_of_two_mistakes_lists_both(tmp_path):
    """A logit of 0 with target 1: σ(0) − 1 = −0.5, so σ(0) = 0.5 is both the target not subtracted
    and the sign flipped; the diagnosis lists both, not one."""
    spec = "input: [0.0, 2.0]\nlayers: []\nloss: {binary_cross_entropy: {from: logits}}\ntarget: [1, 0]\n"
    sigma = 1 / (1 + np.exp(-2.0))
    _, _, entries = run(tmp_path, spec, {"grad.input": np.array([0.5, sigma])})
    assert set(ids(entries["grad.input"])) == {"sigmoid-bce-target-not-subtracted"}     # t = 0: σ − 0 is σ
    _, _, entries = run(tmp_path, spec.replace("2.0]", "0.0]").replace("[1, 0]", "[1, 1]"), {"grad.input": np.array([0.5, 0.5])})
    assert set(ids(entries["grad.input"])) == {"sigmoid-bce-target-not-subtracted", "sign-flipped"}


# --- a gradient made from the user's own wrong forward values: propagated, not introduced ----------

def test_a_weight_gradient_from_a_wrong_forward_value_is_propagated(tmp_path):
    """Dropout without its 1/(1 − p) forward makes the fc after it read a wrong d; ∂E/∂W = δ dᵀ
    written from that d (and δ) came along with it: it did not enter at the weight gradient."""
    from test_diagnose_course_layers import MASK, dropout_values
    values = dropout_values(0.25, forward_scale=False, backward=lambda dd, p: dd * MASK)
    values["grad.fc2.weights"] = np.outer(values["grad.output"], values["dropout1"])
    _, document, entries = run(tmp_path, DROPOUT_NET.replace("P", "0.25"), values)
    assert entries["grad.fc2.weights"]["origin"] == "propagated"
    assert_named(entries, "dropout1", "dropout-scale-missing", "dropout1")
    values["grad.fc2.weights"] = 2 * values["grad.fc2.weights"]          # wrong on its own as well
    _, _, entries = run(tmp_path, DROPOUT_NET.replace("P", "0.25"), values)
    assert entries["grad.fc2.weights"]["origin"] == "introduced"


def test_a_delta_from_a_wrong_forward_value_without_the_output_is_propagated(tmp_path):
    """The output not given: ∂E/∂d = W2ᵀ(y − t) with y made from the user's wrong d came along from
    d, through the forward pass and the loss's gradient, as the user computed it."""
    from test_diagnose_course_layers import MASK, dropout_values
    values = dropout_values(0.25, forward_scale=False, backward=lambda dd, p: dd * MASK)
    _, document, entries = run(tmp_path, DROPOUT_NET.replace("P", "0.25"),
                               {name: values[name] for name in ("dropout1", "grad.dropout1")})
    assert entries["grad.dropout1"]["origin"] == "propagated"
    assert document["first_wrong"] == "dropout1"


@pytest.mark.parametrize("spec", ["features", "channels"])
def test_a_weight_gradient_after_an_unbiased_batch_norm_is_propagated(tmp_path, spec):
    """torch's batch norm with the unbiased variance: the fc's (after a flatten, too) weight
    gradient is δ·(the user's batch norm output)ᵀ, propagated from it."""
    from test_diagnose_course_layers import BN_MAP_NET, BN_NET, torch_batch_norm_values
    spec = BN_NET if spec == "features" else BN_MAP_NET
    _, _, entries = run(tmp_path, spec, torch_batch_norm_values(spec, tmp_path, unbiased=True))
    assert entries["grad.fc1.weights"]["origin"] == "propagated"
    assert_named(entries, "batch_norm1", "batchnorm-variance-unbiased", "batch_norm1")


def test_svm_mistakes_with_a_wide_margin_and_several_violating_classes(tmp_path):
    """Δ = 3: every example violates both other classes, so the correct class's entry is −2, and
    counting j = y adds 3 per example (9 in all)."""
    from test_diagnose_course_layers import svm_values
    spec = SCORES_NET.replace("LOSS", "loss: {multiclass_svm: {margin: 3}}")
    right = svm_values(3.0)
    assert np.all(right["grad.fc1"][np.arange(3), CLASSES] == -2)
    _, _, entries = run(tmp_path, spec, svm_values(3.0, correct_grad=False))
    assert_named(entries, "grad.fc1", "svm-correct-class-grad-missing", None)
    _, _, entries = run(tmp_path, spec, svm_values(3.0, count_correct=True))
    assert np.isclose(svm_values(3.0, count_correct=True)["loss"], right["loss"] + 9)
    assert_named(entries, "loss", "svm-correct-class-in-loss", None)


# --- one student's whole network: conv → spatial batch norm → dropout → fc → hinge, batch mean, L2 --

COURSE_NET = """\
batch: 3
input: {random: {shape: [3, 2, 4, 4], seed: 7}}
layers:
  - conv: {kernel: {random: {shape: [3, 2, 2, 2], seed: 8}}, bias: [0.1, -0.1, 0.2]}
  - batch_norm: {gamma: [1.2, 0.7, -0.9], beta: [0.1, 0.0, -0.2]}
  - dropout: {p: 0.3, seed: 5}
  - flatten
  - fc: {weights: {random: {shape: [4, 27], seed: 9}}, bias: [0, 0.1, 0, -0.1]}
loss: {multiclass_svm: {margin: 3, reduction: mean}}
target: [1, 3, 0]
regularization: {l2: 0.02, params: [conv1.kernel, fc1.weights]}
"""


def course_values(tmp_path, mistake: str | None = None) -> dict:
    """torch's autograd through the network, the batch norm (over N, H, W) and dropout written out
    and the hinge's gradient by a student's loops (Δ = 3, mean over the 3 examples), with one
    ``mistake`` made as a student makes it; the loss with λΣθ² of both parameters."""
    torch = pytest.importorskip("torch")
    from cnngrad.spec import load_model
    (tmp_path / "ref.yaml").write_text(COURSE_NET)
    model = load_model(str(tmp_path / "ref.yaml"))          # the spec's numbers, drawn as written
    params = {name: torch.tensor(value, requires_grad=True) for name, value in model.params.items()}
    conv = torch.nn.functional.conv2d(torch.tensor(model.input), params["conv1.kernel"], params["conv1.bias"])
    mean = conv.mean(dim=(0, 2, 3), keepdim=True)
    var = conv.var(dim=(0, 2, 3), keepdim=True, unbiased=mistake == "bn-unbiased")
    if mistake == "bn-constant":
        mean, var = mean.detach(), var.detach()
    shape = (1, -1, 1, 1)
    bn = params["batch_norm1.gamma"].view(shape) * (conv - mean) / torch.sqrt(var + 1e-5) + \
        params["batch_norm1.beta"].view(shape)
    kept = torch.tensor(model.network.layers[2].mask)
    dropped = bn * kept if mistake == "dropout-unscaled" else bn * kept / 0.7
    scores = dropped.flatten(1) @ params["fc1.weights"].T + params["fc1.bias"]
    for value in (conv, bn, dropped, scores):
        value.retain_grad()
    s, loss, dscores = scores.detach().numpy(), 0.0, np.zeros((3, 4))
    for i, y in enumerate([1, 3, 0]):
        for j in range(4):
            margin = s[i, j] - s[i, y] + 3
            if margin > 0 and (j != y or mistake == "svm-count-correct"):
                loss += margin / 3
                if j != y:
                    dscores[i, j] += 1 / 3
                    dscores[i, y] -= 0 if mistake == "svm-no-correct" else 1 / 3
    objective = (torch.tensor(dscores) * scores).sum()
    penalty = 0.0
    for name in ("conv1.kernel", "fc1.weights"):
        squares = 0.02 * (params[name] ** 2).sum()
        objective = objective + (0 if mistake == f"l2-grad-{name}" else squares)
        penalty += 0 if mistake == f"l2-loss-{name}" else float(squares.detach())
    objective.backward()
    values = {"conv1": conv, "batch_norm1": bn, "dropout1": dropped, "grad.fc1": scores.grad,
              "grad.dropout1": dropped.grad, "grad.batch_norm1": bn.grad, "grad.conv1": conv.grad,
              "grad.conv1.kernel": params["conv1.kernel"].grad, "grad.fc1.weights": params["fc1.weights"].grad}
    return {"loss": np.array(loss + penalty), **{name: value.detach().numpy() for name, value in values.items()}}


@pytest.mark.parametrize("mistake, where, named, layer", [
    (None, None, None, None),
    ("bn-constant", ["grad.conv1"], "batchnorm-mean-var-constant", "batch_norm1"),
    ("bn-unbiased", ["batch_norm1", "grad.conv1"], "batchnorm-variance-unbiased", "batch_norm1"),
    ("dropout-unscaled", ["dropout1", "grad.batch_norm1"], "dropout-scale-missing", "dropout1"),
    ("svm-no-correct", ["grad.fc1"], "svm-correct-class-grad-missing", None),
    ("svm-count-correct", ["loss"], "svm-correct-class-in-loss", None),
    ("l2-grad-fc1.weights", ["grad.fc1.weights"], "l2-penalty-missing", "fc1"),
    ("l2-loss-conv1.kernel", ["loss"], "l2-penalty-missing", None),
])
def test_a_course_network_s_mistakes_are_each_named_where_made(tmp_path, mistake, where, named, layer):
    """Each mistake is named (first) where it entered; every other wrong value came along from the
    user's own values (after a forward mistake the gradients after it too): propagated."""
    code, document, entries = run(tmp_path, COURSE_NET, course_values(tmp_path, mistake))
    if mistake is None:
        assert_right(code, entries)
        return
    for quantity in where:
        assert_named(entries, quantity, named, layer)
    wrong = [q for q, e in entries.items() if not e["passed"] and q not in where]
    assert all(entries[q]["origin"] == "propagated" for q in wrong), {q: entries[q]["origin"] for q in wrong}
    assert document["first_wrong"] == where[0]

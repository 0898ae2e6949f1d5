"""The diagnosis names the classic mistakes of the course layers (issue 16): L2 regularization,
batch norm, the multiclass SVM, softmax cross-entropy, dropout and a conv kernel's channel axes.

Each wrong value is made here the way a student makes the mistake (numpy written out, or torch's
own gradient of the mistaken computation), independently of cnngrad's catalogue, and handed to
the real command (``check --against FILE.npz --format json``, or ``expect:``). Negative controls
for each: the right values get no diagnosis, another mistake is not named as this one, and a
value no mistake explains gets ``[]``.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import ROOT
from helpers.cli import invoke

CONFIGS = ROOT / "configs"

TANH_NET = """\
input: [0.5, -1.2, 0.8, 0.3]
layers:
  - fc: {weights: [[0.2, -0.4, 0.1, 0.7], [0.5, 0.3, -0.6, 0.2], [-0.3, 0.8, 0.4, -0.1]], bias: [0.1, -0.2, 0.05]}
  - tanh
  - fc: {weights: [[0.6, -0.2, 0.3], [-0.5, 0.4, 0.9]], bias: [0, 0.1]}
loss: squared_error
target: [1, -0.5]
regularization: {l2: LAMBDA, params: [fc1.weights, fc2.weights]}
"""
X = np.array([0.5, -1.2, 0.8, 0.3])
W1 = np.array([[0.2, -0.4, 0.1, 0.7], [0.5, 0.3, -0.6, 0.2], [-0.3, 0.8, 0.4, -0.1]])
B1 = np.array([0.1, -0.2, 0.05])
W2 = np.array([[0.6, -0.2, 0.3], [-0.5, 0.4, 0.9]])
B2 = np.array([0.0, 0.1])
T = np.array([1.0, -0.5])


def run(tmp_path, spec: str, values: dict, *options):
    """``check SPEC --against mine.npz --format json``: (exit code, the spec's JSON, its expect
    entries by quantity)."""
    (tmp_path / "net.yaml").write_text(spec)
    np.savez(tmp_path / "mine.npz", **values)
    result = invoke("check", tmp_path / "net.yaml", "--against", tmp_path / "mine.npz", "--format", "json", *options)
    (document,) = json.loads(result.stdout)["specs"]
    return result.exit_code, document, {entry["quantity"]: entry for entry in document["expect"]}


def ids(entry) -> list[str]:
    return [d["mistake"] for d in entry["diagnosis"]]


def assert_named(entries, quantity: str, mistake: str, layer: str | None) -> dict:
    """``mistake`` at ``layer`` is the best diagnosis of ``quantity``, where its error entered."""
    entry = entries[quantity]
    assert not entry["passed"] and entry["origin"] == "introduced", (quantity, entry["origin"])
    assert entry["diagnosis"], f"{quantity}: no diagnosis"
    best = entry["diagnosis"][0]
    assert (best["mistake"], best["layer"]) == (mistake, layer), entry["diagnosis"]
    return best


def assert_right(code, entries):
    assert code == 0 and all(e["passed"] and e["diagnosis"] == [] and e["origin"] is None for e in entries.values())


# --- L2 regularization ------------------------------------------------------------------------

def tanh_net() -> dict:
    """By hand: fc, tanh, fc, ½Σ(y − t)²: the deltas, the weights' data gradients, the data loss and
    ΣW1² + ΣW2² (λ times it is the penalty)."""
    a = np.tanh(W1 @ X + B1)
    y = W2 @ a + B2
    dy = y - T
    da = W2.T @ dy
    dz = da * (1 - a ** 2)
    return {"data": 0.5 * np.sum(dy ** 2), "sum_sq": np.sum(W1 ** 2) + np.sum(W2 ** 2),
            "grad.fc2": dy, "grad.tanh1": da, "grad.fc1": dz, "grad.input": W1.T @ dz,
            "data.fc2.weights": np.outer(dy, a), "data.fc1.weights": np.outer(dz, X),
            "grad.fc2.bias": dy, "grad.fc1.bias": dz}


def l2_values(lam: float, penalty_factor: float, gradient_factor: float) -> dict:
    """The network's values with the penalty written penalty_factor·λΣθ² in the loss and its gradient
    gradient_factor·λθ in fc1's weight gradient (2 and 2 are right)."""
    h = tanh_net()
    values = {k: v for k, v in h.items() if k.startswith("grad.")}
    values["grad.fc2.weights"] = h["data.fc2.weights"] + 2 * lam * W2
    values["grad.fc1.weights"] = h["data.fc1.weights"] + gradient_factor * lam * W1
    values["loss"] = h["data"] + penalty_factor / 2 * lam * h["sum_sq"]
    return values


@pytest.mark.parametrize("lam", [0.05, 0.0005])
def test_l2_right_values_get_no_diagnosis(tmp_path, lam):
    code, _, entries = run(tmp_path, TANH_NET.replace("LAMBDA", str(lam)), l2_values(lam, 2, 2))
    assert_right(code, entries)


@pytest.mark.parametrize("lam", [0.05, 0.0005])
def test_l2_penalty_left_out_of_the_gradient_and_the_loss(tmp_path, lam):
    code, document, entries = run(tmp_path, TANH_NET.replace("LAMBDA", str(lam)), l2_values(lam, 0, 0))
    assert code == 1
    assert_named(entries, "grad.fc1.weights", "l2-penalty-missing", "fc1")
    assert_named(entries, "loss", "l2-penalty-missing", None)
    assert entries["grad.fc2.weights"]["passed"] and entries["grad.fc1"]["passed"]
    assert document["first_wrong"] == "loss" and document["first_wrong_layer"] == "loss"


@pytest.mark.parametrize("factor, words", [(1, "λθ"), (4, "4")])
def test_l2_penalty_gradient_off_by_two_either_way(tmp_path, factor, words):
    """λθ where l2: λ means λΣθ² (the ½λΣθ² convention's gradient), or 4λθ (twice 2λθ); the loss
    written with ½λΣθ² or 2λΣθ² likewise."""
    lam = 0.05
    code, _, entries = run(tmp_path, TANH_NET.replace("LAMBDA", str(lam)), l2_values(lam, factor, factor))
    best = assert_named(entries, "grad.fc1.weights", "l2-penalty-factor-off-by-2", "fc1")
    assert words in best["message"]
    assert_named(entries, "loss", "l2-penalty-factor-off-by-2", None)


def test_l2_controls_a_doubled_gradient_and_an_unexplained_penalty(tmp_path):
    """A whole gradient doubled is `scaled`, not an L2 mistake; 3λθ and 3λΣθ² no mistake gives."""
    lam = 0.05
    values = l2_values(lam, 2, 2)
    values["grad.fc1.weights"] = 2 * values["grad.fc1.weights"]
    _, _, entries = run(tmp_path, TANH_NET.replace("LAMBDA", str(lam)), values)
    assert ids(entries["grad.fc1.weights"])[0] == "scaled"
    assert not {"l2-penalty-missing", "l2-penalty-factor-off-by-2"} & set(ids(entries["grad.fc1.weights"]))
    _, _, entries = run(tmp_path, TANH_NET.replace("LAMBDA", str(lam)), l2_values(lam, 3, 3))
    assert entries["grad.fc1.weights"]["diagnosis"] == [] and entries["loss"]["diagnosis"] == []
    assert entries["grad.fc1.weights"]["origin"] == "introduced"


def cs231n_values(penalty_divisor: float) -> tuple[str, dict]:
    """The CS231n batch of 2 (mean, reg 0.1 · ΣW²) with its published numbers, the penalty and its
    gradient 2·reg·W divided by ``penalty_divisor`` (1 is right; 2 = N: averaged with the examples,
    (Σ losses + reg·ΣW²)/N, a student's loss /= N placed after the penalty was added)."""
    spec = (CONFIGS / "cs231n_softmax_batch_mean_l2.yaml").read_text()
    spec = spec[:spec.index("expect:")]
    weights = np.array([[0.2, -0.5, 0.1], [1.5, 1.3, 2.1], [0.0, 0.25, 0.2]])
    right = np.array([[-0.15796579, 0.60503683, -0.88300263], [0.91347220, 0.43944798, 0.85402422],
                      [-0.41550640, -0.83448481, 0.50897841]])
    penalty_grad = 2 * 0.1 * weights
    return spec, {"loss": np.array(2.02000043 + 0.87525 / penalty_divisor),
                  "grad.fc1.weights": right - penalty_grad + penalty_grad / penalty_divisor}


def test_l2_penalty_averaged_over_two_examples_is_also_half_the_penalty(tmp_path):
    """With N = 2, (Σ losses + λΣθ²)/2 gives the numbers of ½λΣθ² too: both ids are listed."""
    spec, values = cs231n_values(2)
    code, _, entries = run(tmp_path, spec, values)
    assert code == 1
    for quantity in ("loss", "grad.fc1.weights"):
        assert {"l2-penalty-averaged", "l2-penalty-factor-off-by-2"} <= set(ids(entries[quantity]))


BATCH4_NET = """\
batch: 4
input: [[1.0, 2.0, -1.0], [0.5, -1.5, 2.0], [-0.3, 0.8, 1.1], [2.0, 0.1, -0.7]]
layers:
  - fc: {weights: [[0.2, -0.5, 0.1], [1.5, 1.3, 2.1], [0.0, 0.25, 0.2]], bias: [0.1, 0, -0.1]}
loss: {cross_entropy: {from: logits, reduction: mean}}
target: [2, 0, 1, 1]
regularization: {l2: 0.1, params: [fc1.weights]}
"""


def test_l2_penalty_averaged_with_four_examples(tmp_path):
    """By hand in numpy, a student's loop: loss = (Σ −log p_y + reg·ΣW²) / N, dW = (Σ (p − y) xᵀ + 2·reg·W) / N."""
    x = np.array([[1.0, 2.0, -1.0], [0.5, -1.5, 2.0], [-0.3, 0.8, 1.1], [2.0, 0.1, -0.7]])
    w = np.array([[0.2, -0.5, 0.1], [1.5, 1.3, 2.1], [0.0, 0.25, 0.2]])
    b, y, reg, n = np.array([0.1, 0.0, -0.1]), [2, 0, 1, 1], 0.1, 4
    loss, dw = reg * np.sum(w ** 2), 2 * reg * w
    for xi, yi in zip(x, y):
        z = w @ xi + b
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        loss -= np.log(p[yi])
        p[yi] -= 1
        dw = dw + np.outer(p, xi)
    code, _, entries = run(tmp_path, BATCH4_NET, {"loss": np.array(loss / n), "grad.fc1.weights": dw / n})
    assert code == 1
    for quantity, layer in (("loss", None), ("grad.fc1.weights", "fc1")):
        best = assert_named(entries, quantity, "l2-penalty-averaged", layer)
        assert "1/4" in best["message"], best["message"]
        assert "l2-penalty-factor-off-by-2" not in ids(entries[quantity])


def test_l2_penalty_averaged_controls(tmp_path):
    """The published values get no diagnosis; a penalty divided by 3 (not N = 2) is not called averaged."""
    spec, values = cs231n_values(1)
    assert_right(*run(tmp_path, spec, values)[::2])
    spec, values = cs231n_values(3)
    _, _, entries = run(tmp_path, spec, values)
    for quantity in ("loss", "grad.fc1.weights"):
        assert "l2-penalty-averaged" not in ids(entries[quantity]), entries[quantity]["diagnosis"]


# --- batch norm -------------------------------------------------------------------------------

BN_NET = """\
batch: 4
input: [[1.0, -2.0, 0.5], [0.3, 0.2, -1.0], [2.0, 1.1, 0.0], [-0.4, 0.6, 1.5]]
layers:
  - batch_norm: {gamma: [1.5, 0.8, -1.0], beta: [0.1, -0.2, 0.3]}
  - fc: {weights: [[0.4, -0.3, 0.2], [0.1, 0.5, -0.6]], bias: [0.05, -0.1]}
loss: squared_error
target: [[1, 0], [0, 1], [0.5, 0.5], [-1, 0.2]]
"""
BN_MAP_NET = """\
batch: 2
input: {random: {shape: [2, 2, 3, 3], seed: 4}}
layers:
  - batch_norm: {gamma: [1.3, -0.7], beta: [0.2, 0.1]}
  - flatten
  - fc: {weights: {random: {shape: [2, 18], seed: 5}}}
loss: squared_error
target: [[1, 0], [0, 1]]
"""


def torch_batch_norm_values(spec: str, tmp_path, *, constant_stats=False, unbiased=False) -> dict:
    """Every value of a batch norm → (flatten →) fc → ½Σ(y − t)² network, by torch's autograd of
    batch norm written out (per feature over N, or per channel over N, H, W), as a student writes
    it: with μ and σ² detached (constants to autograd), or with the unbiased variance (torch's
    own default of ``var``)."""
    torch = pytest.importorskip("torch")
    from cnngrad.spec import load_model
    (tmp_path / "ref.yaml").write_text(spec)
    model = load_model(str(tmp_path / "ref.yaml"))        # the spec's numbers, drawn as written
    x = torch.tensor(model.input, requires_grad=True)
    gamma, beta, weights, bias = (torch.tensor(model.params[name], requires_grad=True) for name in
                                  ("batch_norm1.gamma", "batch_norm1.beta", "fc1.weights", "fc1.bias"))
    dims = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=unbiased)
    if constant_stats:
        mean, var = mean.detach(), var.detach()
    bn = gamma.reshape(shape) * (x - mean) / torch.sqrt(var + 1e-5) + beta.reshape(shape)
    out = bn.reshape(len(x), -1) @ weights.T + bias
    loss = 0.5 * ((out - torch.tensor(model.target)) ** 2).sum()
    for value in (bn, out):
        value.retain_grad()
    loss.backward()
    values = {"batch_norm1": bn, "batch_norm1.mean": mean.reshape(-1), "batch_norm1.var": var.reshape(-1),
              "output": out, "loss": loss, "grad.output": out.grad, "grad.batch_norm1": bn.grad,
              "grad.input": x.grad, "grad.batch_norm1.gamma": gamma.grad, "grad.batch_norm1.beta": beta.grad,
              "grad.fc1.weights": weights.grad}
    return {name: value.detach().numpy() for name, value in values.items()}


@pytest.mark.parametrize("spec", [BN_NET, BN_MAP_NET], ids=["features", "channels"])
def test_batchnorm_right_values_get_no_diagnosis(tmp_path, spec):
    code, _, entries = run(tmp_path, spec, torch_batch_norm_values(spec, tmp_path))
    assert_right(code, entries)


@pytest.mark.parametrize("spec", [BN_NET, BN_MAP_NET], ids=["features", "channels"])
def test_batchnorm_mean_and_variance_taken_as_constants(tmp_path, spec):
    """dx = γ·δ/σ: autograd of batch norm with μ and σ² detached. Only grad.input differs."""
    values = torch_batch_norm_values(spec, tmp_path, constant_stats=True)
    code, document, entries = run(tmp_path, spec, values)
    assert code == 1
    assert_named(entries, "grad.input", "batchnorm-mean-var-constant", "batch_norm1")
    assert "batchnorm-variance-unbiased" not in ids(entries["grad.input"])
    assert [q for q, e in entries.items() if not e["passed"]] == ["grad.input"]
    assert document["first_wrong"] == "grad.input" and document["first_wrong_layer"] == "batch_norm1"


@pytest.mark.parametrize("spec", [BN_NET, BN_MAP_NET], ids=["features", "channels"])
def test_batchnorm_unbiased_variance_forward_and_backward(tmp_path, spec):
    """N − 1 in the variance (torch's x.var default): the output and var are where it entered, the
    fc output, loss and deltas after it come from them, and grad.input and ∂E/∂γ (x̂ made with it)
    are where it entered again on the way back."""
    values = torch_batch_norm_values(spec, tmp_path, unbiased=True)
    code, document, entries = run(tmp_path, spec, values)
    assert code == 1
    for quantity in ("batch_norm1", "batch_norm1.var", "grad.input", "grad.batch_norm1.gamma"):
        assert_named(entries, quantity, "batchnorm-variance-unbiased", "batch_norm1")
    assert "batchnorm-mean-var-constant" not in ids(entries["grad.input"])
    for quantity in ("output", "loss", "grad.output", "grad.batch_norm1"):
        assert entries[quantity]["origin"] == "propagated", quantity
    # ∂E/∂β = Σ δ comes from the user's δ; after a vector's batch norm it is even right (Σ_n x̂ = 0
    # whatever σ, so the fc's outputs sum to the same), after a map's it is propagated
    beta = entries["grad.batch_norm1.beta"]
    assert beta["passed"] if spec == BN_NET else beta["origin"] == "propagated"
    assert entries["batch_norm1.mean"]["passed"]
    assert entries["grad.input"]["diagnosis"][0]["message"].startswith("the gradient of batch norm with")
    assert document["first_wrong"] == "batch_norm1"


def test_batchnorm_closed_form_with_an_unbiased_sigma(tmp_path):
    """The closed form (γ/σ)(δ − mean δ − x̂ mean(δ x̂)) written in numpy with np.var(ddof=1) for σ²."""
    values = torch_batch_norm_values(BN_NET, tmp_path)
    x = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0], [2.0, 1.1, 0.0], [-0.4, 0.6, 1.5]])
    gamma, delta = np.array([1.5, 0.8, -1.0]), values["grad.batch_norm1"]
    sigma = np.sqrt(x.var(axis=0, ddof=1) + 1e-5)
    xhat = (x - x.mean(axis=0)) / sigma
    values["grad.input"] = gamma / sigma * (delta - delta.mean(axis=0) - xhat * (delta * xhat).mean(axis=0))
    _, _, entries = run(tmp_path, BN_NET, values)
    assert_named(entries, "grad.input", "batchnorm-variance-unbiased", "batch_norm1")


def test_batchnorm_an_unexplained_input_gradient_gets_no_diagnosis(tmp_path):
    values = torch_batch_norm_values(BN_NET, tmp_path)
    values["grad.input"] = values["grad.input"] * np.array([1, 1, 1.03])
    _, _, entries = run(tmp_path, BN_NET, values)
    assert entries["grad.input"]["origin"] == "introduced" and entries["grad.input"]["diagnosis"] == []


def test_batchnorm_mistakes_written_by_hand_at_six_decimals(tmp_path):
    """CS231n's batch-norm example (configs/batchnorm_backward_closed_form.yaml) worked by hand:
    dx = γ·dout/σ and np.var(x, ddof=1), written at 6 decimals under expect: (tolerance auto)."""
    x = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0], [2.0, 1.1, 0.0], [-0.4, 0.6, 1.5]])
    dout = np.array([[0.2, -0.1, 0.4], [-0.3, 0.5, 0.1], [0.6, 0.2, -0.5], [0.1, -0.4, 0.3]])
    gamma = np.array([1.5, 0.8, -1.0])
    from test_diagnose import six_decimals
    spec = (f"batch: 4\ninput: {x.tolist()}\nlayers:\n  - batch_norm: {{gamma: {gamma.tolist()}, beta: [0.1, -0.2, 0.3]}}\n"
            f"loss: none\nupstream_grad: {dout.tolist()}\nexpect:\n"
            f"  batch_norm1.var: {six_decimals(x.var(axis=0, ddof=1))}\n"
            f"  grad.input: {six_decimals(gamma * dout / np.sqrt(x.var(axis=0) + 1e-5))}\n")
    (tmp_path / "bn.yaml").write_text(spec)
    result = invoke("check", tmp_path / "bn.yaml", "--format", "json")
    (document,) = json.loads(result.stdout)["specs"]
    entries = {e["quantity"]: e for e in document["expect"]}
    assert result.exit_code == 1
    assert_named(entries, "batch_norm1.var", "batchnorm-variance-unbiased", "batch_norm1")
    assert_named(entries, "grad.input", "batchnorm-mean-var-constant", "batch_norm1")


@pytest.mark.parametrize("term, words", [("variance", "σ² treated as a constant"), ("mean", "μ treated as a constant")])
def test_batchnorm_closed_form_missing_one_statistic_s_term(tmp_path, term, words):
    """The closed form in numpy with the variance's term −x̂·mean(δ·x̂) (or the mean's −mean(δ)) left out."""
    values = torch_batch_norm_values(BN_NET, tmp_path)
    x = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0], [2.0, 1.1, 0.0], [-0.4, 0.6, 1.5]])
    gamma, delta = np.array([1.5, 0.8, -1.0]), values["grad.batch_norm1"]
    sigma = np.sqrt(x.var(axis=0) + 1e-5)
    xhat = (x - x.mean(axis=0)) / sigma
    kept = delta - delta.mean(axis=0) if term == "variance" else delta - xhat * (delta * xhat).mean(axis=0)
    values["grad.input"] = gamma / sigma * kept
    _, _, entries = run(tmp_path, BN_NET, values)
    best = assert_named(entries, "grad.input", "batchnorm-mean-var-constant", "batch_norm1")
    assert words in best["message"]


# --- multiclass SVM -----------------------------------------------------------------------------

SCORES_NET = """\
batch: 3
input: [[0.5, -1.0, 2.0, 0.3], [1.2, 0.4, -0.7, 0.9], [-0.3, 0.8, 0.1, -1.1]]
layers:
  - fc: {weights: [[0.2, -0.5, 0.1, 0.4], [0.6, 0.3, -0.2, 0.1], [-0.4, 0.2, 0.5, -0.3]], bias: [0.1, 0, -0.1]}
LOSS
target: [0, 2, 1]
"""
XS = np.array([[0.5, -1.0, 2.0, 0.3], [1.2, 0.4, -0.7, 0.9], [-0.3, 0.8, 0.1, -1.1]])
WS = np.array([[0.2, -0.5, 0.1, 0.4], [0.6, 0.3, -0.2, 0.1], [-0.4, 0.2, 0.5, -0.3]])
BS = np.array([0.1, 0.0, -0.1])
CLASSES = [0, 2, 1]


def svm_values(margin: float, *, count_correct=False, correct_grad=True) -> dict:
    """A student's CS231n loop: for each example i and class j, margin s_j − s_y + Δ; the loss adds
    the positive ones (also j = y when ``count_correct``), the gradient is 1 at each violating j
    and −(their number) at y (left 0 unless ``correct_grad``)."""
    scores = XS @ WS.T + BS
    loss, dscores = 0.0, np.zeros_like(scores)
    for i, y in enumerate(CLASSES):
        for j in range(3):
            if j == y and not count_correct:
                continue
            m = scores[i, j] - scores[i, y] + margin
            if m > 0:
                loss += m
                if j != y:
                    dscores[i, j] += 1
                    if correct_grad:
                        dscores[i, y] -= 1
    return {"loss": np.array(loss), "grad.fc1": dscores, "grad.fc1.weights": dscores.T @ XS,
            "grad.fc1.bias": dscores.sum(axis=0), "grad.input": dscores @ WS}


def test_svm_right_values_get_no_diagnosis(tmp_path):
    values = svm_values(1.0)
    assert np.count_nonzero(values["grad.fc1"]) >= 3          # margins violated
    code, _, entries = run(tmp_path, SCORES_NET.replace("LOSS", "loss: multiclass_svm"), values)
    assert_right(code, entries)


def test_svm_correct_class_gradient_left_zero(tmp_path):
    code, document, entries = run(tmp_path, SCORES_NET.replace("LOSS", "loss: multiclass_svm"),
                                  svm_values(1.0, correct_grad=False))
    assert_named(entries, "grad.fc1", "svm-correct-class-grad-missing", None)
    assert entries["loss"]["passed"]
    for quantity in ("grad.fc1.weights", "grad.fc1.bias", "grad.input"):
        assert entries[quantity]["origin"] == "propagated"
    assert document["first_wrong"] == "grad.fc1" and document["first_wrong_layer"] == "loss"


def test_svm_loss_summing_the_correct_class_too(tmp_path):
    """Each example's loss gains max(0, s_y − s_y + Δ) = Δ: 3 examples, Δ = 1, the loss 3 too large."""
    values = svm_values(1.0, count_correct=True)
    assert np.isclose(values["loss"], svm_values(1.0)["loss"] + 3)
    code, _, entries = run(tmp_path, SCORES_NET.replace("LOSS", "loss: multiclass_svm"), values)
    assert_named(entries, "loss", "svm-correct-class-in-loss", None)
    assert [q for q, e in entries.items() if not e["passed"]] == ["loss"]


def test_svm_mistakes_written_by_hand_under_expect(tmp_path):
    """CS231n's example (configs/cs231n_multiclass_svm.yaml: scores [13, −7, 11], class 0, Δ = 10):
    by hand, the loss with j = y counted is 8 + 10 = 18, the gradient with the correct class's
    entry forgotten [0, 0, 1]."""
    spec = ("input: [2, 1]\nlayers:\n  - fc: {weights: [[5, 3], [-4, 1], [4, 3]], bias: [0, 0, 0]}\n"
            "loss: {multiclass_svm: {margin: 10}}\ntarget: 0\nexpect:\n  loss: 18\n  grad.fc1: [0, 0, 1]\n"
            "  grad.fc1.weights: [[0, 0], [0, 0], [2, 1]]\n")
    (tmp_path / "svm.yaml").write_text(spec)
    result = invoke("check", tmp_path / "svm.yaml", "--format", "json")
    (document,) = json.loads(result.stdout)["specs"]
    entries = {e["quantity"]: e for e in document["expect"]}
    assert result.exit_code == 1
    assert_named(entries, "loss", "svm-correct-class-in-loss", None)
    assert_named(entries, "grad.fc1", "svm-correct-class-grad-missing", None)
    assert entries["grad.fc1.weights"]["origin"] == "propagated"


def test_svm_controls_a_flipped_gradient_and_an_unexplained_one(tmp_path):
    values = svm_values(1.0)
    values["grad.fc1"] = -values["grad.fc1"]
    _, _, entries = run(tmp_path, SCORES_NET.replace("LOSS", "loss: multiclass_svm"), values)
    assert ids(entries["grad.fc1"])[0] == "sign-flipped"
    assert "svm-correct-class-grad-missing" not in ids(entries["grad.fc1"])
    values = svm_values(1.0)
    values["grad.fc1"] = values["grad.fc1"] + np.eye(3)[CLASSES]       # −(count) + 1 at the correct class
    values["loss"] = values["loss"] + 2.5
    _, _, entries = run(tmp_path, SCORES_NET.replace("LOSS", "loss: multiclass_svm"), values)
    assert entries["grad.fc1"]["diagnosis"] == [] and entries["loss"]["diagnosis"] == []


# --- softmax cross-entropy ----------------------------------------------------------------------

def softmax_rows(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ce_values(fused: bool, reduction: str, *, target_subtracted=True) -> dict:
    """Softmax cross-entropy of the 3 examples' scores: ∂E/∂z = (p − y)/N (N for a mean), a student's
    p/N when the one-hot y is forgotten; with a softmax layer also ∂E/∂p = −y/(p N), written right."""
    p = softmax_rows(XS @ WS.T + BS)
    onehot = np.eye(3)[CLASSES]
    n = 3 if reduction == "mean" else 1
    dz = (p - onehot if target_subtracted else p) / n
    values = {"grad.fc1": dz, "grad.fc1.weights": dz.T @ XS, "grad.input": dz @ WS}
    if fused:
        values["grad.softmax1"] = -onehot / p / n
    return values


CE_SPECS = {"logits": "loss: {cross_entropy: {from: logits, reduction: REDUCTION}}",
            "softmax": "  - softmax\nloss: {cross_entropy: {reduction: REDUCTION}}"}


@pytest.mark.parametrize("form", ["logits", "softmax"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_softmax_cross_entropy_right_values_get_no_diagnosis(tmp_path, form, reduction):
    spec = SCORES_NET.replace("LOSS", CE_SPECS[form].replace("REDUCTION", reduction))
    code, _, entries = run(tmp_path, spec, ce_values(form == "softmax", reduction))
    assert_right(code, entries)


@pytest.mark.parametrize("form", ["logits", "softmax"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_softmax_cross_entropy_gradient_without_the_one_hot(tmp_path, form, reduction):
    spec = SCORES_NET.replace("LOSS", CE_SPECS[form].replace("REDUCTION", reduction))
    values = ce_values(form == "softmax", reduction, target_subtracted=False)
    code, document, entries = run(tmp_path, spec, values)
    layer = "softmax1" if form == "softmax" else None
    assert_named(entries, "grad.fc1", "softmax-ce-target-not-subtracted", layer)
    assert entries["grad.fc1.weights"]["origin"] == "propagated" and entries["grad.input"]["origin"] == "propagated"
    assert document["first_wrong"] == "grad.fc1"


def test_softmax_cross_entropy_controls(tmp_path):
    """∂E/∂p handed to the logits is the softmax's Jacobian forgotten, not the one-hot; a gradient
    p − y/2 is no known mistake."""
    spec = SCORES_NET.replace("LOSS", CE_SPECS["softmax"].replace("REDUCTION", "sum"))
    values = ce_values(True, "sum")
    values["grad.fc1"] = values["grad.softmax1"]
    values.pop("grad.fc1.weights"), values.pop("grad.input")
    _, _, entries = run(tmp_path, spec, values)
    assert ids(entries["grad.fc1"])[0] == "softmax-jacobian-missing"
    assert "softmax-ce-target-not-subtracted" not in ids(entries["grad.fc1"])
    values = ce_values(True, "sum")
    values["grad.fc1"] = values["grad.fc1"] + np.eye(3)[CLASSES] / 2
    values.pop("grad.fc1.weights"), values.pop("grad.input")
    _, _, entries = run(tmp_path, spec, values)
    assert entries["grad.fc1"]["diagnosis"] == []


# --- dropout ------------------------------------------------------------------------------------

DROPOUT_NET = """\
input: [0.5, -1.0, 2.0, 0.3, 0.7]
layers:
  - fc: {weights: [[0.2, -0.5, 0.1, 0.4, 0.3], [0.6, 0.3, -0.2, 0.1, 0.5], [-0.4, 0.2, 0.5, -0.3, 0.2], [0.3, -0.1, 0.4, 0.2, -0.6]], bias: 0.2}
  - relu
  - dropout: {p: P, mask: [1, 0, 1, 1]}
  - fc: {weights: [[0.7, -0.4, 0.2, 0.5], [-0.3, 0.6, 0.8, -0.2]]}
loss: squared_error
target: [1, 0]
"""
XD = np.array([0.5, -1.0, 2.0, 0.3, 0.7])
WD1 = np.array([[0.2, -0.5, 0.1, 0.4, 0.3], [0.6, 0.3, -0.2, 0.1, 0.5], [-0.4, 0.2, 0.5, -0.3, 0.2],
                [0.3, -0.1, 0.4, 0.2, -0.6]])
WD2 = np.array([[0.7, -0.4, 0.2, 0.5], [-0.3, 0.6, 0.8, -0.2]])
MASK = np.array([1.0, 0, 1, 1])


def dropout_values(p: float, *, forward_scale=True, backward=lambda dd, p: dd * MASK / (1 - p)) -> dict:
    """By hand: fc, relu, inverted dropout h·m/(1 − p) (or h·m without ``forward_scale``), fc,
    ½Σ(y − t)²; the dropout's backward as ``backward(∂E/∂(dropout output), p)`` writes it."""
    z = WD1 @ XD + 0.2
    h = np.maximum(z, 0)
    assert np.all(h > 0)                              # every unit active: a dropped one's delta shows
    d = h * MASK / (1 - p) if forward_scale else h * MASK
    y = WD2 @ d
    dy = y - np.array([1.0, 0])
    dd = WD2.T @ dy
    dh = backward(dd, p)
    dz = dh * (z > 0)
    return {"dropout1": d, "output": y, "grad.output": dy, "grad.dropout1": dd, "grad.relu1": dh,
            "grad.fc1": dz, "grad.fc1.weights": np.outer(dz, XD), "grad.input": WD1.T @ dz}


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_dropout_right_values_get_no_diagnosis(tmp_path, p):
    code, _, entries = run(tmp_path, DROPOUT_NET.replace("P", str(p)), dropout_values(p))
    assert_right(code, entries)


@pytest.mark.parametrize("backward", [lambda dd, p: dd, lambda dd, p: dd / (1 - p)], ids=["plain", "scaled"])
def test_dropout_delta_not_masked(tmp_path, backward):
    code, document, entries = run(tmp_path, DROPOUT_NET.replace("P", "0.25"), dropout_values(0.25, backward=backward))
    assert_named(entries, "grad.relu1", "dropout-delta-not-masked", "dropout1")
    assert "dropout-scale-missing" not in ids(entries["grad.relu1"])
    for quantity in ("grad.fc1", "grad.fc1.weights", "grad.input"):
        assert entries[quantity]["origin"] == "propagated"
    assert document["first_wrong"] == "grad.relu1" and document["first_wrong_layer"] == "dropout1"


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_dropout_without_the_inverted_scale(tmp_path, p):
    """h·m in the forward pass and δ·m back, no 1/(1 − p) in either (at p = ½ also one factor ½)."""
    values = dropout_values(p, forward_scale=False, backward=lambda dd, p: dd * MASK)
    code, document, entries = run(tmp_path, DROPOUT_NET.replace("P", str(p)), values)
    assert_named(entries, "dropout1", "dropout-scale-missing", "dropout1")
    assert_named(entries, "grad.relu1", "dropout-scale-missing", "dropout1")
    assert "dropout-delta-not-masked" not in ids(entries["grad.relu1"])
    if p == 0.5:
        assert "scaled" in ids(entries["grad.relu1"])
    for quantity in ("output", "grad.output", "grad.dropout1", "grad.fc1"):
        assert entries[quantity]["origin"] == "propagated", quantity
    assert document["first_wrong"] == "dropout1"


def test_dropout_an_unexplained_delta_gets_no_diagnosis(tmp_path):
    values = dropout_values(0.25, backward=lambda dd, p: dd * np.array([1, 0, 1, 0]) / (1 - p))   # another mask
    _, _, entries = run(tmp_path, DROPOUT_NET.replace("P", "0.25"), values)
    assert entries["grad.relu1"]["origin"] == "introduced" and entries["grad.relu1"]["diagnosis"] == []


# --- a conv kernel's gradient with its channel axes swapped -----------------------------------------

CONV_NET = """\
input: {random: {shape: [2, 4, 4], seed: 1}}
layers:
  - conv: {kernel: {random: {shape: [2, 2, 2, 2], seed: 2}}, bias: [0.1, -0.1]}
  - tanh
  - flatten
  - fc: {weights: {random: {shape: [2, 18], seed: 3}}}
loss: squared_error
target: [1, 0]
"""


def conv_values(tmp_path) -> tuple[dict, np.ndarray]:
    """torch's gradients of the conv net, and the conv's input (C, H, W) as the spec draws it."""
    torch = pytest.importorskip("torch")
    from cnngrad.spec import load_model
    (tmp_path / "ref.yaml").write_text(CONV_NET)
    model = load_model(str(tmp_path / "ref.yaml"))
    x = torch.tensor(model.input)
    kernel, bias, weights = (torch.tensor(model.params[n], requires_grad=True)
                             for n in ("conv1.kernel", "conv1.bias", "fc1.weights"))
    conv = torch.nn.functional.conv2d(x, kernel, bias)
    conv.retain_grad()
    y = torch.tanh(conv).flatten(1) @ weights.T
    (0.5 * ((y - torch.tensor([[1.0, 0]])) ** 2).sum()).backward()
    values = {"grad.conv1": conv.grad[0].numpy(), "grad.conv1.kernel": kernel.grad.numpy(),
              "grad.conv1.bias": bias.grad.numpy()}
    return values, model.input[0]


def test_conv_right_values_get_no_diagnosis(tmp_path):
    code, _, entries = run(tmp_path, CONV_NET, conv_values(tmp_path)[0])
    assert_right(code, entries)


def test_conv_kernel_gradient_with_in_and_out_channels_swapped(tmp_path):
    """A student's loops: dK[c, d] = Σ_ij δ[d, i, j] · x[c, i:i+2, j:j+2], indexed (input channel,
    filter) where the kernel is (filter, input channel)."""
    values, x = conv_values(tmp_path)
    delta = values["grad.conv1"]
    wrong = np.zeros((2, 2, 2, 2))
    for c in range(2):
        for d in range(2):
            for i in range(3):
                for j in range(3):
                    wrong[c, d] += delta[d, i, j] * x[c, i:i + 2, j:j + 2]
    values["grad.conv1.kernel"] = wrong
    _, document, entries = run(tmp_path, CONV_NET, values)
    assert_named(entries, "grad.conv1.kernel", "conv-kernel-grad-channels-swapped", "conv1")
    assert document["first_wrong"] == "grad.conv1.kernel"


def test_conv_controls_transposed_windows_and_an_unexplained_kernel_gradient(tmp_path):
    values, _ = conv_values(tmp_path)
    right = values["grad.conv1.kernel"]
    values["grad.conv1.kernel"] = np.swapaxes(right, -1, -2)
    _, _, entries = run(tmp_path, CONV_NET, values)
    assert ids(entries["grad.conv1.kernel"])[0] == "transposed"
    assert "conv-kernel-grad-channels-swapped" not in ids(entries["grad.conv1.kernel"])
    values["grad.conv1.kernel"] = right[[1, 0]]              # the filters swapped, not the channels
    _, _, entries = run(tmp_path, CONV_NET, values)
    assert entries["grad.conv1.kernel"]["diagnosis"] == []


def test_every_mistake_of_the_catalogue_is_documented():
    """docs/reference.md §8 lists each id the JSON may name, once."""
    from cnngrad.diagnose import CATALOGUE
    from helpers import ROOT
    text = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    section = text[text.index("## 8. Diagnosis ids"):text.index("## 9.")]
    rows = [line.split("|")[1].strip().strip("`") for line in section.splitlines() if line.startswith("| `")]
    assert sorted(rows) == sorted(mistake.id for mistake in CATALOGUE)

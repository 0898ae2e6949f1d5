"""A forward value printed wrong (a typo in one entry) while the gradients were computed from the
right forward values: a classic mistake made in those gradients is still named.

The diagnosis recomputes a backward step through the user's own wrong forward values (a student
backpropagates through their own numbers); a typo they did not compute with must not hide a
mistake that the right forward values reproduce. Each network's values and each mistake are made
here in torch (autograd for the right ones, the mistaken step written out), independently of
cnngrad's catalogue, and handed to ``check --against FILE.npz``. Negative controls: a typo with
right gradients (the gradients pass, no diagnosis), a typo with a gradient no mistake explains
(``[]``).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from test_diagnose_course_layers import assert_named, ids, run

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(7)
X = RNG.uniform(-1, 1, (8, 8)).round(2)
K1 = RNG.uniform(-0.6, 0.6, (2, 1, 3, 3)).round(2)
K2 = RNG.uniform(-0.6, 0.6, (2, 2, 3, 3)).round(2)
W = RNG.uniform(-0.6, 0.6, (3, 8)).round(2)
T = np.array([0.5, -0.25, 1.0])

LENET = f"""\
input: {json.dumps(X.tolist())}
layers:
  - conv: {{kernel: {json.dumps(K1.tolist())}, bias: [0.05, -0.1]}}
  - tanh
  - conv: {{kernel: {json.dumps(K2.tolist())}, bias: [0.02, 0.03]}}
  - relu
  - pool: {{type: max, size: 2}}
  - flatten
  - fc: {{weights: {json.dumps(W.tolist())}, bias: [0.1, 0, -0.1]}}
loss: squared_error
target: {json.dumps(T.tolist())}
"""


def t(a) -> "torch.Tensor":
    return torch.tensor(np.asarray(a, dtype=np.float64))


def lenet_values() -> dict:
    """conv, tanh, conv, relu, 2×2 max pool, flatten, fc, ½Σ(y − t)², by torch's autograd: every
    forward value and delta (∂E/∂ each layer's output)."""
    x = t(X)[None, None].requires_grad_()
    z1 = F.conv2d(x, t(K1), t([0.05, -0.1]))
    a1 = torch.tanh(z1)
    z2 = F.conv2d(a1, t(K2), t([0.02, 0.03]))
    a2 = torch.relu(z2)
    p = F.max_pool2d(a2, 2)
    y = p.reshape(1, -1) @ t(W).T + t([0.1, 0, -0.1])
    outputs = {"conv1": z1, "tanh1": a1, "conv2": z2, "relu1": a2, "pool1": p, "output": y}
    for value in outputs.values():
        value.retain_grad()
    (0.5 * ((y - t(T)) ** 2).sum()).backward()
    values = {name: v.detach().numpy()[0] for name, v in outputs.items()}
    values.update({f"grad.{name}": v.grad.numpy()[0] for name, v in outputs.items()})
    return values


def typo(value: np.ndarray, where: tuple, how) -> np.ndarray:
    """``value`` with the one entry ``where`` miswritten by ``how``."""
    value = value.copy()
    value[where] = how(value[where])
    return value


def largest(value: np.ndarray) -> tuple:
    return np.unravel_index(np.argmax(value), value.shape)


def test_the_network_has_what_the_typos_need():
    """The sign typo of conv2 is at a positive entry (ReLU passes it, the typo would not); the
    tanh typo's entry is far from 0, so tanh′ there changes tenfold."""
    v = lenet_values()
    assert v["conv2"][largest(v["conv2"])] > 0.1
    assert abs(v["conv1"][largest(np.abs(v["conv1"]))]) > 0.3


def test_maxpool_to_all_named_though_the_relu_input_has_a_sign_typo(tmp_path):
    """conv2 printed with its largest entry's sign lost; ∂E/∂conv2 made right from the right conv2
    except the max pool's delta sent to every entry of its window."""
    v = lenet_values()
    to_all = np.repeat(np.repeat(v["grad.pool1"], 2, axis=1), 2, axis=2)
    values = {"conv2": typo(v["conv2"], largest(v["conv2"]), lambda e: -e), "grad.pool1": v["grad.pool1"],
              "grad.conv2": to_all * (v["conv2"] > 0)}
    _, _, entries = run(tmp_path, LENET, values)
    assert entries["grad.pool1"]["passed"]
    best = assert_named(entries, "grad.conv2", "maxpool-to-all", "pool1")
    assert best["message"].endswith("(from the right conv2, not the conv2 given)")


def test_kernel_not_rotated_named_though_the_tanh_input_has_a_typo(tmp_path):
    """conv1 printed with one entry's decimal point slipped (×10); ∂E/∂conv1 made from the right
    conv1, the deltas correlated with conv2's kernel as stored (the transposed convolution with
    the kernel not rotated)."""
    v = lenet_values()
    slipped = typo(v["conv1"], largest(np.abs(v["conv1"])), lambda e: 10 * e)
    not_rotated = F.conv_transpose2d(t(v["grad.conv2"])[None], t(K2).flip(-1, -2))[0].numpy()
    values = {"conv1": slipped, "grad.conv2": v["grad.conv2"], "grad.conv1": not_rotated * (1 - v["tanh1"] ** 2)}
    _, _, entries = run(tmp_path, LENET, values)
    assert_named(entries, "grad.conv1", "conv-kernel-not-rotated", "conv2")


def test_typos_in_two_forward_values_read_on_the_way(tmp_path):
    """conv1 and conv2 both printed with a typo, ∂E/∂conv1 made from ∂E/∂pool1 through the right
    values, conv2's kernel not rotated: named, through the right values of both."""
    v = lenet_values()
    not_rotated = F.conv_transpose2d(t(v["grad.conv2"])[None], t(K2).flip(-1, -2))[0].numpy()
    values = {"conv1": typo(v["conv1"], largest(np.abs(v["conv1"])), lambda e: 10 * e),
              "conv2": typo(v["conv2"], largest(v["conv2"]), lambda e: -e), "grad.pool1": v["grad.pool1"],
              "grad.conv1": not_rotated * (1 - v["tanh1"] ** 2)}
    _, _, entries = run(tmp_path, LENET, values)
    best = assert_named(entries, "grad.conv1", "conv-kernel-not-rotated", "conv2")
    assert best["message"].endswith("(from the right conv2 and conv1, not those given)")


def test_a_typo_with_right_gradients_gets_no_diagnosis_of_them(tmp_path):
    """Control: the typo itself fails; the gradients, right, pass with no diagnosis."""
    v = lenet_values()
    values = {"conv2": typo(v["conv2"], largest(v["conv2"]), lambda e: -e),
              **{name: v[name] for name in ("grad.pool1", "grad.conv2", "grad.tanh1", "grad.conv1")}}
    _, _, entries = run(tmp_path, LENET, values)
    assert not entries["conv2"]["passed"]
    for name in ("grad.pool1", "grad.conv2", "grad.tanh1", "grad.conv1"):
        assert entries[name]["passed"] and entries[name]["diagnosis"] == [] and entries[name]["origin"] is None


def test_a_typo_with_an_unexplained_gradient_gets_none(tmp_path):
    """Control: ∂E/∂conv1 right but for three entries off by unrelated amounts: no mistake
    reproduces it, from the user's forward values or the right ones."""
    v = lenet_values()
    slipped = typo(v["conv1"], largest(np.abs(v["conv1"])), lambda e: 10 * e)
    off = v["grad.conv1"].copy()
    off[0, 0, 0] += 0.37
    off[1, 2, 3] -= 0.11
    off[0, 5, 1] += 0.05
    _, _, entries = run(tmp_path, LENET, {"conv1": slipped, "grad.conv2": v["grad.conv2"], "grad.conv1": off})
    assert entries["grad.conv1"]["origin"] == "introduced" and entries["grad.conv1"]["diagnosis"] == []


FC_NET = """\
input: [0.5, -1.2, 0.8]
layers:
  - fc: {weights: [[0.2, -0.4, 0.1], [0.5, 0.3, -0.6], [-0.3, 0.8, 0.4]], bias: [0.1, -0.2, 0.05]}
  - sigmoid
  - fc: {weights: [[0.6, -0.2, 0.3], [-0.5, 0.4, 0.9], [0.7, 0.1, -0.8]], bias: [0, 0.1, -0.1]}
  - tanh
  - fc: {weights: [[0.3, -0.7, 0.5], [0.9, 0.2, -0.4]], bias: [0.2, 0]}
loss: squared_error
target: [1, -0.5]
"""
XF = np.array([0.5, -1.2, 0.8])
W1 = np.array([[0.2, -0.4, 0.1], [0.5, 0.3, -0.6], [-0.3, 0.8, 0.4]])
W2 = np.array([[0.6, -0.2, 0.3], [-0.5, 0.4, 0.9], [0.7, 0.1, -0.8]])
W3 = np.array([[0.3, -0.7, 0.5], [0.9, 0.2, -0.4]])


def fc_values() -> dict:
    """fc, sigmoid, fc, tanh, fc, ½Σ(y − t)², written out in numpy (the backward by the chain rule)."""
    z1 = W1 @ XF + np.array([0.1, -0.2, 0.05])
    s = 1 / (1 + np.exp(-z1))
    z2 = W2 @ s + np.array([0, 0.1, -0.1])
    h = np.tanh(z2)
    y = W3 @ h + np.array([0.2, 0])
    dy = y - np.array([1, -0.5])
    dh = W3.T @ dy
    dz2 = dh * (1 - h ** 2)
    ds = W2.T @ dz2
    return {"fc1": z1, "sigmoid1": s, "fc2": z2, "tanh1": h, "output": y, "grad.output": dy,
            "grad.tanh1": dh, "grad.fc2": dz2, "grad.sigmoid1": ds, "grad.fc1": ds * s * (1 - s)}


def test_fc_not_transposed_named_though_the_sigmoid_input_has_a_typo(tmp_path):
    """fc1 printed with one entry 0.3 off; ∂E/∂fc1 = σ′(right fc1) ⊙ (W2 δ), not W2ᵀ δ."""
    v = fc_values()
    values = {"fc1": typo(v["fc1"], (1,), lambda e: e + 0.3),
              "grad.fc2": v["grad.fc2"], "grad.fc1": (W2 @ v["grad.fc2"]) * v["sigmoid1"] * (1 - v["sigmoid1"])}
    _, _, entries = run(tmp_path, FC_NET, values)
    assert not entries["fc1"]["passed"]
    assert_named(entries, "grad.fc1", "fc-weights-not-transposed", "fc2")


def test_a_weight_gradient_from_the_right_activation_names_the_mistake_before_it(tmp_path):
    """sigmoid1 printed with a typo; ∂E/∂W2 = δ2 · (the right sigmoid1)ᵀ with δ2 made without
    tanh′: the derivative's omission is named, though ∂E/∂W2 reads the value printed wrong."""
    v = fc_values()
    missing = v["grad.tanh1"]
    values = {"sigmoid1": typo(v["sigmoid1"], (0,), lambda e: e + 0.1), "grad.output": v["grad.output"],
              "grad.fc2.weights": np.outer(missing, v["sigmoid1"])}
    _, _, entries = run(tmp_path, FC_NET, values)
    assert_named(entries, "grad.fc2.weights", "activation-derivative-missing", "tanh1")


def test_a_weight_gradient_from_a_wrong_delta_and_the_right_activation_is_propagated(tmp_path):
    """As above with the user's δ2 given too: the mistake is named at δ2, and the weight gradient
    made from it and the right sigmoid1 only carries it along."""
    v = fc_values()
    missing = v["grad.tanh1"]
    values = {"sigmoid1": typo(v["sigmoid1"], (0,), lambda e: e + 0.1), "grad.output": v["grad.output"],
              "grad.fc2": missing, "grad.fc2.weights": np.outer(missing, v["sigmoid1"])}
    _, document, entries = run(tmp_path, FC_NET, values)
    assert_named(entries, "grad.fc2", "activation-derivative-missing", "tanh1")
    assert entries["grad.fc2.weights"]["origin"] == "propagated" and ids(entries["grad.fc2.weights"]) == []
    assert document["first_wrong"] == "sigmoid1"


def test_propagated_through_the_users_own_value_is_preferred_to_a_mistake_through_the_right_one(tmp_path):
    """sigmoid1 written as fc1's values (before the activation), and ∂E/∂W2 = δ2 · (that value)ᵀ:
    through the user's own sigmoid1 the error came along; through the right one it would be the
    preactivation mistake. What explains it with no mistake wins."""
    v = fc_values()
    values = {"sigmoid1": v["fc1"], "grad.fc2": v["grad.fc2"], "grad.fc2.weights": np.outer(v["grad.fc2"], v["fc1"])}
    _, _, entries = run(tmp_path, FC_NET, values)
    assert entries["grad.fc2.weights"]["origin"] == "propagated" and ids(entries["grad.fc2.weights"]) == []
    del values["sigmoid1"]        # without the wrong value given, the same numbers are the mistake
    _, _, entries = run(tmp_path, FC_NET, values)
    assert_named(entries, "grad.fc2.weights", "fc-grad-uses-preactivation", "fc2")


# --- batch norm and a fused cross-entropy read their input as the other mistakes do -------------

XB = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0], [2.0, 1.1, 0.0], [-0.4, 0.6, 1.5]])
W0 = np.array([[0.5, -0.2, 0.3], [0.1, 0.4, -0.6], [-0.3, 0.2, 0.7]])
GAMMA, BETA = np.array([1.5, 0.8, -1.0]), np.array([0.1, -0.2, 0.3])
WB = np.array([[0.4, -0.3, 0.2], [0.1, 0.5, -0.6]])
TB = np.array([[1, 0], [0, 1], [0.5, 0.5], [-1, 0.2]])
BN_NET = f"""\
batch: 4
input: {json.dumps(XB.tolist())}
layers:
  - fc: {{weights: {json.dumps(W0.tolist())}}}
  - batch_norm: {{gamma: {json.dumps(GAMMA.tolist())}, beta: {json.dumps(BETA.tolist())}}}
  - fc: {{weights: {json.dumps(WB.tolist())}}}
loss: squared_error
target: {json.dumps(TB.tolist())}
"""


def batch_norm_input_gradient(x: np.ndarray, delta: np.ndarray, unbiased: bool) -> np.ndarray:
    """∂E/∂x of y = γ (x − μ)/√(var + 1e-5) + β for the upstream ``delta``, by torch's autograd,
    with torch's biased or unbiased (N − 1) var."""
    tx = t(x).requires_grad_()
    var = tx.var(dim=0, unbiased=unbiased)
    (t(GAMMA) * (tx - tx.mean(dim=0)) / torch.sqrt(var + 1e-5) + t(BETA)).backward(t(delta))
    return tx.grad.numpy()


def bn_values() -> tuple[np.ndarray, np.ndarray]:
    """fc1's output and ∂E/∂batch_norm1, by hand in numpy: y = bn(x W0ᵀ) W2ᵀ, ½Σ(y − t)²."""
    x = XB @ W0.T
    bn = GAMMA * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5) + BETA
    return x, (bn @ WB.T - TB) @ WB


@pytest.mark.parametrize("own", [False, True], ids=["from-the-right-fc1", "from-the-fc1-given"])
def test_batchnorm_unbiased_variance_named_through_a_typo_in_its_input(tmp_path, own):
    """fc1 printed with one entry off by 0.5; ∂E/∂fc1 made with the unbiased variance from the right
    fc1 (named, with the note), or from the fc1 printed (named without it: as the student did)."""
    x, delta = bn_values()
    slipped = typo(x, (2, 1), lambda e: e + 0.5)
    values = {"fc1": slipped, "grad.batch_norm1": delta,
              "grad.fc1": batch_norm_input_gradient(slipped if own else x, delta, unbiased=True)}
    _, _, entries = run(tmp_path, BN_NET, values)
    best = assert_named(entries, "grad.fc1", "batchnorm-variance-unbiased", "batch_norm1")
    assert best["message"].endswith("(from the right fc1, not the fc1 given)") is not own


SOFTMAX_NET = """\
input: [0.5, -1.2, 0.8]
layers:
  - fc: {weights: [[0.2, -0.4, 0.1], [0.5, 0.3, -0.6], [-0.3, 0.8, 0.4]], bias: [0.1, -0.2, 0.05]}
  - softmax
loss: cross_entropy
target: [0, 1, 0]
"""


@pytest.mark.parametrize("own", [False, True], ids=["from-the-right-fc1", "from-the-fc1-given"])
def test_target_not_subtracted_named_through_a_typo_in_the_logits(tmp_path, own):
    """fc1 (the logits) printed with one entry off by 0.3; ∂E/∂z written p, the softmax of the right
    logits (named, with the note) or of the logits printed (named without it)."""
    z = np.array([[0.2, -0.4, 0.1], [0.5, 0.3, -0.6], [-0.3, 0.8, 0.4]]) @ XF + np.array([0.1, -0.2, 0.05])
    slipped = typo(z, (0,), lambda e: e + 0.3)
    read = slipped if own else z
    values = {"fc1": slipped, "grad.fc1": np.exp(read) / np.exp(read).sum()}
    _, _, entries = run(tmp_path, SOFTMAX_NET, values)
    best = assert_named(entries, "grad.fc1", "softmax-ce-target-not-subtracted", "softmax1")
    assert best["message"].endswith("(from the right fc1, not the fc1 given)") is not own

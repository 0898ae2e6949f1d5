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

from helpers.cli import invoke

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

def tanh_net(lam: float) -> dict:
    """By hand: fc, tanh, fc, ½Σ(y − t)² + λ(ΣW1² + ΣW2²); the data parts and the penalty apart."""
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
    h = tanh_net(lam)
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

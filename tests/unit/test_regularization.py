"""`regularization: {l2: λ, params: [...]}`: E = data loss + λ Σ θ² over the named parameters.

Loss and gradients against PyTorch autograd of loss + λ·(W**2).sum(); the checker's finite
differences move the penalty with the parameter (and catch a backward pass that forgets it);
`forward` shows the data loss and the penalty apart; `explain` shows the term 2λθ.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from cnngrad.explain import explain
from cnngrad.gradcheck import check_model
from cnngrad.network import Network
from cnngrad.spec import SpecError, load_model
from helpers import ROOT
from helpers.specs import write_spec



def flow(array) -> str:
    return json.dumps(np.asarray(array).tolist())


def conv_spec(rng, batch: int, factor: float, names: str, reduction: str = "mean") -> str:
    return (f"batch: {batch}\ninput: {flow(rng.standard_normal((batch, 2, 5, 5)))}\nlayers:\n"
            f"  - conv: {{kernel: {flow(rng.standard_normal((3, 2, 2, 2)))}, bias: {flow(rng.standard_normal(3))}}}\n"
            f"  - tanh\n  - pool: {{type: avg, size: 2}}\n  - flatten\n"
            f"  - fc: {{weights: {flow(rng.standard_normal((4, 12)))}, bias: {flow(rng.standard_normal(4))}}}\n"
            f"loss: {{cross_entropy: {{from: logits, reduction: {reduction}}}}}\n"
            f"target: {flow(rng.integers(0, 4, batch))}\n"
            f"regularization: {{l2: {factor!r}, params: {names}}}\n")


@pytest.mark.parametrize("seed", range(6))
def test_loss_and_gradients_are_torchs_loss_plus_the_penalty(tmp_path, seed):
    torch = pytest.importorskip("torch")
    from helpers.torchnet import rel_err, torch_layer
    F = torch.nn.functional
    rng = np.random.default_rng(seed)
    batch = int(rng.integers(1, 4))
    factor = float(rng.choice([0.0005, 0.5 * 0.01, 0.1, 1.3]))
    reduction = str(rng.choice(["sum", "mean"]))
    chosen = [["conv1.kernel", "fc1.weights"], ["fc1.weights"], ["conv1.kernel", "conv1.bias"]][seed % 3]
    model = load_model(write_spec(tmp_path, conv_spec(rng, batch, factor, flow(chosen), reduction)))
    values = model.values()
    x = torch.tensor(model.input)
    params = {name: torch.tensor(value, requires_grad=True) for name, value in model.params.items()}
    h = x
    for name, layer in zip(model.network.names, model.network.layers):
        h = torch_layer(layer)(h, {p: params[f"{name}.{p}"] for p in layer.param_names})
    data = F.cross_entropy(h, torch.tensor(model.target.argmax(axis=1)), reduction=reduction)
    penalty = factor * sum((params[name] ** 2).sum() for name in chosen)
    (data + penalty).backward()
    assert rel_err(values["loss"], float((data + penalty).detach())) <= 1e-10
    assert rel_err(values["data_loss"], float(data.detach())) <= 1e-10
    assert rel_err(values["penalty"], float(penalty.detach())) <= 1e-10
    for name, value in params.items():
        assert rel_err(values[f"grad.{name}"], model.user(name, value.grad.numpy())) <= 1e-10, name


def test_half_lambda_and_lambda_are_both_written_as_the_factor(tmp_path):
    """½λΣW² is `l2: ` ½λ: CS231n's reg·ΣW² with reg = 0.1 and a ½-convention λ = 0.2 agree."""
    rng = np.random.default_rng(3)
    text = conv_spec(rng, 2, 0.1, "[fc1.weights]")
    cs231n = load_model(write_spec(tmp_path, text)).values()
    halved = load_model(write_spec(tmp_path, text.replace("l2: 0.1", "l2: 0.5e-0").replace("0.5e-0", "0.1"),
                              "half.yaml")).values()
    weights = load_model(write_spec(tmp_path, text)).params["fc1.weights"]
    assert float(cs231n["penalty"]) == pytest.approx(0.1 * float(np.sum(weights ** 2)), rel=1e-15)
    assert np.array_equal(cs231n["grad.fc1.weights"], halved["grad.fc1.weights"])


@pytest.mark.parametrize("options", [{}, {"fast": True}, {"wrt": ("fc1.weights",)}])
def test_check_passes_with_the_penalty(tmp_path, options):
    rng = np.random.default_rng(11)
    model = load_model(write_spec(tmp_path, conv_spec(rng, 2, 0.7, "[conv1.kernel, fc1.weights, fc1.bias]")))
    result = check_model(model, **options)
    assert result.passed, [(q.quantity, q.status) for q in result.gradients]


@pytest.mark.parametrize("batch", [1, 2])
def test_check_catches_a_backward_pass_that_forgets_the_penalty(tmp_path, monkeypatch, batch):
    """A negative control: without 2λθ in the backward pass, the finite differences (which move
    the penalty with θ) disagree on exactly the regularized parameters."""
    rng = np.random.default_rng(12)
    model = load_model(write_spec(tmp_path, conv_spec(rng, batch, 0.7, "[conv1.kernel, fc1.weights]")))
    monkeypatch.setattr(Network, "penalty_grad", lambda self, name, theta: None)
    result = check_model(model)
    failed = {q.quantity for q in result.gradients if q.status == "failed"}
    assert failed == {"conv1.kernel", "fc1.weights"}


def test_forward_shows_the_data_loss_and_the_penalty_apart(tmp_path):
    from click.testing import CliRunner
    from cnngrad.cli import cli
    rng = np.random.default_rng(5)
    path = write_spec(tmp_path, conv_spec(rng, 2, 0.25, "[fc1.weights]"))
    values = load_model(path).values()
    document = json.loads(CliRunner().invoke(cli, ["forward", path, "--format", "json"]).output)
    assert document["data_loss"] == float(values["data_loss"])
    assert document["penalty"] == float(values["penalty"])
    assert document["loss"] == float(values["data_loss"]) + float(values["penalty"])
    table = CliRunner().invoke(cli, ["forward", path]).output
    assert "data_loss = " in table and "penalty = " in table and "+ L2 penalty" in table


def test_explain_a_weight_shows_the_penalty_term(tmp_path):
    rng = np.random.default_rng(6)
    model = load_model(write_spec(tmp_path, conv_spec(rng, 2, 0.25, "[fc1.weights]")))
    values = model.values()
    explained = explain(model, "grad.fc1.weights[1,3]")
    assert np.isclose(explained.total, values["grad.fc1.weights"][1, 3], rtol=1e-12)
    last = explained.terms[-1]
    assert last.factors[-1][0] == "fc1.weights[1,3]"
    assert last.value == pytest.approx(2 * 0.25 * model.params["fc1.weights"][1, 3], rel=1e-15)
    bias = explain(model, "grad.fc1.bias[1]")   # not regularized: no such term
    assert all("fc1.bias" not in text for term in bias.terms for text, _ in term.factors)


@pytest.mark.parametrize("setting, path, words", [
    ("{l2: 0.1, params: [fc9.weights]}", "regularization.params[0]", "no parameter 'fc9.weights'"),
    ("{l2: -0.1, params: [fc1.weights]}", "regularization.l2", "at least 0"),
    ("{l2: 0.1}", "regularization", "missing key 'params'"),
    ("{l2: 0.1, params: [fc1.weights, fc1.weights]}", "regularization.params[1]", "listed twice"),
    ("{l1: 0.1, params: [fc1.weights]}", "regularization", "unknown key 'l1'"),
    ("{l2: 0.1, params: []}", "regularization.params", "name the parameters"),
])
def test_a_regularization_that_does_not_fit_is_an_error_at_its_node(tmp_path, setting, path, words):
    text = ("input: [1, 2]\nlayers:\n  - fc: {weights: [[1, 2], [3, 4]]}\nloss: mse\ntarget: [0, 0]\n"
            f"regularization: {setting}\n")
    with pytest.raises(SpecError) as info:
        load_model(write_spec(tmp_path, text))
    assert info.value.path == path and words in info.value.message and info.value.line == 6


def test_expect_names_the_data_loss_and_the_penalty(tmp_path):
    rng = np.random.default_rng(9)
    text = conv_spec(rng, 2, 0.25, "[fc1.weights]")
    values = load_model(write_spec(tmp_path, text)).values()
    right = text + (f"expect:\n  data_loss: {float(values['data_loss']):.10f}\n"
                    f"  penalty: {float(values['penalty']):.10f}\n  loss: {float(values['loss']):.10f}\n")
    assert check_model(load_model(write_spec(tmp_path, right, "right.yaml"))).passed
    wrong = text + f"expect:\n  penalty: {2 * float(values['penalty']):.10f}\n"
    result = check_model(load_model(write_spec(tmp_path, wrong, "wrong.yaml")))
    assert not result.passed and result.first_wrong == "penalty"
    mistakes = [d.mistake for d in result.expect[0].diagnosis]
    assert mistakes[0] == "l2-penalty-factor-off-by-2" and "scaled" in mistakes   # equal: the specific one first


@pytest.mark.parametrize("quantity", ["loss", "data_loss"])
def test_a_mean_taken_as_a_sum_is_diagnosed_with_the_penalty_added_after(quantity):
    """CS231n's softmax of 2 examples, mean reduction, reg·ΣW²: a student who sums the examples'
    losses (forgets the 1/N) and adds the penalty writes 2·data + penalty, or 2·data as data_loss."""
    from cnngrad.diagnose import diagnose
    model = load_model(str(ROOT / "configs/cs231n_softmax_batch_mean_l2.yaml"))
    values = model.values()
    data, penalty = float(values["data_loss"]), float(values["penalty"])
    written = 2 * data + (penalty if quantity == "loss" else 0.0)
    entry, = diagnose(model, {quantity: written}).expect
    assert not entry.passed
    assert entry.diagnosis and entry.diagnosis[0].mistake == "batch-reduction-swapped", entry.diagnosis


def test_regularization_needs_a_loss_not_an_upstream_gradient(tmp_path):
    """With loss: none there is no loss to add λ Σ θ² to (nor one to show it in)."""
    path = tmp_path / "net.yaml"
    path.write_text("input: [1.0, 2.0]\nlayers: [{fc: {weights: [[0.1, 0.2], [0.3, -0.4]]}}]\n"
                    "upstream_grad: [1, -2]\nregularization: {l2: 0.5, params: [fc1.weights]}\n")
    with pytest.raises(SpecError, match="loss: none has none"):
        load_model(str(path))

"""`batch_norm` in training mode: per feature after fc, per channel over N, H, W after conv.

Forward (with the batch mean and biased variance it shows) and every gradient against PyTorch's
`F.batch_norm(training=True)` by autograd; the checker's copies hold all N examples, so its finite
differences see the statistics move, and a backward pass without the mean terms is caught;
`explain` writes the closed form's three terms.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from cnngrad.explain import explain
from cnngrad.gradcheck import check_model
from cnngrad.layers.batchnorm import BatchNorm
from cnngrad.spec import SpecError, load_model
from helpers import ROOT
from helpers.specs import write_spec



def flow(array) -> str:
    return json.dumps(np.asarray(array).tolist())


def fc_bn(rng, batch: int, eps: float | None = None) -> str:
    eps_text = "" if eps is None else f", eps: {eps!r}"
    return (f"batch: {batch}\ninput: {flow(rng.standard_normal((batch, 4)))}\nlayers:\n"
            f"  - fc: {{weights: {flow(rng.standard_normal((3, 4)))}, bias: {flow(rng.standard_normal(3))}}}\n"
            f"  - batch_norm: {{gamma: {flow(rng.uniform(0.5, 2, 3))}, beta: {flow(rng.standard_normal(3))}{eps_text}}}\n"
            f"  - tanh\n  - fc: {{weights: {flow(rng.standard_normal((2, 3)))}}}\n"
            f"loss: {{mse: {{reduction: mean}}}}\ntarget: {flow(rng.standard_normal((batch, 2)))}\n")


def conv_bn(rng, batch: int, eps: float | None = None) -> str:
    eps_text = "" if eps is None else f", eps: {eps!r}"
    return (f"batch: {batch}\ninput: {flow(rng.standard_normal((batch, 2, 5, 4)))}\nlayers:\n"
            f"  - conv: {{kernel: {flow(rng.standard_normal((3, 2, 2, 2)))}, padding: 1}}\n"
            f"  - batch_norm: {{gamma: {flow(rng.uniform(0.5, 2, 3))}, beta: {flow(rng.standard_normal(3))}{eps_text}}}\n"
            f"  - sigmoid\n  - flatten\n  - fc: {{weights: {flow(rng.standard_normal((3, 3 * 6 * 5)))}}}\n"
            f"loss: {{cross_entropy: {{from: logits, reduction: mean}}}}\ntarget: {flow(rng.integers(0, 3, batch))}\n")


def torch_values(model):
    """(loss, {quantity: value}) by torch: the layers by tests/torchnet.py, batch norm by
    F.batch_norm(training=True), its statistics by torch's mean and var(unbiased=False)."""
    import torch
    from helpers.torchnet import torch_layer
    F = torch.nn.functional
    x = torch.tensor(model.input, requires_grad=True)
    params = {name: torch.tensor(value, requires_grad=True) for name, value in model.params.items()}
    h, stats = x, {}
    for name, layer in zip(model.network.names, model.network.layers):
        if layer.kind == "batch_norm":
            axes = (0,) if h.dim() == 2 else (0, 2, 3)
            stats[f"{name}.mean"] = h.mean(dim=axes).detach().numpy()
            stats[f"{name}.var"] = h.var(dim=axes, unbiased=False).detach().numpy()
            h = F.batch_norm(h, None, None, params[f"{name}.gamma"], params[f"{name}.beta"],
                             training=True, eps=layer.eps)
        else:
            h = torch_layer(layer)(h, {p: params[f"{name}.{p}"] for p in layer.param_names})
    t = torch.tensor(model.target)
    if model.network.loss.name == "mse":
        loss = F.mse_loss(h, t, reduction="mean")
    else:
        loss = F.cross_entropy(h, t.argmax(dim=1), reduction="mean")
    loss.backward()
    grads = {f"grad.{name}": model.user(name, value.grad.numpy()) for name, value in params.items()}
    grads["grad.input"] = model.user("input", x.grad.numpy())
    return float(loss.detach()), {**grads, **stats}


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("make", [fc_bn, conv_bn], ids=["fc", "conv"])
def test_batch_norm_is_torchs_training_mode(tmp_path, make, seed):
    pytest.importorskip("torch")
    from helpers.torchnet import rel_err
    rng = np.random.default_rng(seed)
    batch = int(rng.integers(2, 6))
    eps = [None, 1e-3, 0.5][seed % 3]
    model = load_model(write_spec(tmp_path, make(rng, batch, eps)))
    values = model.values()
    loss, expected = torch_values(model)
    assert rel_err(values["loss"], loss) <= 1e-10
    for name, value in expected.items():
        if name == f"grad.{model.network.names[0]}.bias":
            # a bias right before batch norm cancels in x − μ: its gradient is 0 up to rounding
            assert np.abs(values[name]).max() <= 1e-13 and np.abs(value).max() <= 1e-13
            continue
        assert rel_err(values[name], value) <= 1e-10, name


@pytest.mark.parametrize("make", [fc_bn, conv_bn], ids=["fc", "conv"])
@pytest.mark.parametrize("options", [{}, {"fast": True}, {"deltas": True}])
def test_check_passes_batch_norm_with_its_statistics_moving(tmp_path, make, options):
    model = load_model(write_spec(tmp_path, make(np.random.default_rng(3), 3)))
    result = check_model(model, **options)
    assert result.passed, [(q.quantity, q.status) for q in result.gradients + result.deltas]
    assert sum(q.kinks for q in result.gradients) == 0


@pytest.mark.parametrize("make", [fc_bn, conv_bn], ids=["fc", "conv"])
def test_check_catches_a_batch_norm_backward_without_its_mean_terms(tmp_path, make, monkeypatch):
    """A negative control: the per-example backward γ/σ · δ (what one forgets when the statistics
    are treated as constants) fails the input gradient, and the faulty layer is the batch norm."""
    model = load_model(write_spec(tmp_path, make(np.random.default_rng(4), 3)))
    right = BatchNorm.backward

    def constant_statistics(self, dy, cache, params):
        dx, grads = right(self, dy, cache, params)
        scale = (params["gamma"][:, None] * cache.inv_std)
        return (scale * self._grouped(dy)).reshape(dy.shape), grads

    monkeypatch.setattr(BatchNorm, "backward", constant_statistics)
    result = check_model(model)
    assert not result.passed
    assert {q.quantity for q in result.gradients if q.status == "failed"} >= {"input"}
    assert result.faulty_layer == "batch_norm1"


def test_explain_writes_the_three_terms_of_the_closed_form(tmp_path):
    model = load_model(write_spec(tmp_path, conv_bn(np.random.default_rng(5), 3)))
    values = model.values()
    trace = model.forward()
    grads = model.backward(trace)
    explained = explain(model, "grad.conv1[2,1,3,2]")
    assert len(explained.terms) == 3 and explained.zeros == 0
    assert np.isclose(explained.total, values["grad.conv1"][2, 1, 3, 2], rtol=1e-12)
    # each term by hand from the closed form: (γ/σ) δ, −(γ/σ) mean δ, −(γ/σ) x̂ mean(δ x̂)
    x = trace.outputs[0][:, 1]
    dy = grads.outputs["batch_norm1"][:, 1]
    mean, var = x.mean(), x.var()
    sigma = np.sqrt(var + 1e-5)
    xhat = (x - mean) / sigma
    gamma = model.params["batch_norm1.gamma"][1]
    hand = [gamma / sigma * dy[2, 3, 2], -gamma / sigma * dy.mean(), -gamma / sigma * xhat[2, 3, 2] * (dy * xhat).mean()]
    assert np.allclose([term.value for term in explained.terms], hand, rtol=1e-12, atol=1e-15)
    assert explained.terms[0].factors[1][0] == "grad.batch_norm1[2,1,3,2]"
    assert "x̂(conv1[2,1,3,2])" in explained.terms[2].factors[1][0]
    note = "".join(str(part) for part in explained.notes[0])
    assert "batch mean" in note and "variance" in note


def test_explain_of_gamma_sums_every_example_and_position(tmp_path):
    model = load_model(write_spec(tmp_path, fc_bn(np.random.default_rng(6), 4)))
    values = model.values()
    explained = explain(model, "grad.batch_norm1.gamma[2]")
    assert np.isclose(explained.total, values["grad.batch_norm1.gamma"][2], rtol=1e-12)
    assert len(explained.terms) + explained.zeros == 4
    before = explain(model, "grad.input[3,1]")   # a layer before the batch norm, per example
    assert np.isclose(before.total, values["grad.input"][3, 1], rtol=1e-12)


def test_forward_shows_the_batch_mean_and_variance(tmp_path):
    from click.testing import CliRunner
    from cnngrad.cli import cli
    path = write_spec(tmp_path, conv_bn(np.random.default_rng(7), 2))
    values = load_model(path).values()
    document = json.loads(CliRunner().invoke(cli, ["forward", path, "--format", "json"]).output)
    layer = document["layers"][1]
    conv = np.array(document["layers"][0]["output"])
    assert layer["mean"] == values["batch_norm1.mean"].tolist()
    assert np.allclose(layer["mean"], conv.mean(axis=(0, 2, 3)), rtol=1e-14)
    assert np.allclose(layer["var"], conv.var(axis=(0, 2, 3)), rtol=1e-13)
    assert "batch_norm1.var" in CliRunner().invoke(cli, ["forward", path]).output


@pytest.mark.parametrize("setting, path, words", [
    ("{gamma: [1, 2]}", "layers[1].batch_norm.gamma", "give 3 values"),
    ("{beta: [[1, 2, 3]]}", "layers[1].batch_norm.beta", "give 3 values"),
    ("{eps: 0}", "layers[1].batch_norm.eps", "greater than 0"),
    ("{momentum: 0.1}", "layers[1].batch_norm", "unknown key 'momentum'"),
])
def test_batch_norm_settings_that_do_not_fit_are_errors_at_their_node(tmp_path, setting, path, words):
    text = ("batch: 2\ninput: [[1, 2], [3, 4]]\nlayers:\n  - fc: {weights: [[1, 2], [3, 4], [5, 6]]}\n"
            f"  - batch_norm: {setting}\nloss: mse\ntarget: [[0, 0, 0], [0, 0, 0]]\n")
    with pytest.raises(SpecError) as info:
        load_model(write_spec(tmp_path, text))
    assert info.value.path.startswith(path) and words in info.value.message and info.value.line is not None


def test_a_batched_conv_input_probe_moves_only_its_example(tmp_path):
    """The conv first layer's exact input shortcut with N = 2 gives the forward of each copy."""
    from cnngrad.gradcheck.probes import input_probe
    model = load_model(write_spec(tmp_path, conv_bn(np.random.default_rng(8), 2)))
    trace = model.forward()
    grads = model.backward(trace)
    fast = input_probe(model.network, trace, model.params, grads.input)
    plain = input_probe(model.network, trace, model.params, grads.input, structured=False)
    entries = np.arange(model.input.size)
    steps = np.random.default_rng(9).choice([1e-4, -1e-4, 0.3], size=len(entries))
    copies = plain.perturbed(entries, steps)
    conv = model.network.layers[0]
    expected = conv.forward(copies.reshape((-1,) + copies.shape[2:]), model.network.params_of(0, model.params))[0]
    got = fast.perturbed(entries, steps)
    assert got.shape == (len(entries), 2) + expected.shape[1:]
    assert np.abs(got.reshape(expected.shape) - expected).max() <= 1e-14 * np.abs(expected).max()


def test_the_worked_example_in_configs_is_torchs(tmp_path):
    """configs/batchnorm_backward_closed_form.yaml: its hand-computed numbers and cnngrad's against
    F.batch_norm(training=True) with E = Σ dout · y."""
    torch = pytest.importorskip("torch")
    import yaml
    from helpers.torchnet import rel_err
    F = torch.nn.functional
    path = str(ROOT / "configs/batchnorm_backward_closed_form.yaml")
    written = yaml.safe_load(open(path, encoding="utf-8"))
    model = load_model(path)
    values = model.values()
    x = torch.tensor(written["input"], dtype=torch.float64, requires_grad=True)
    gamma = torch.tensor(written["layers"][0]["batch_norm"]["gamma"], dtype=torch.float64, requires_grad=True)
    beta = torch.tensor(written["layers"][0]["batch_norm"]["beta"], dtype=torch.float64, requires_grad=True)
    y = F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5)
    (torch.tensor(written["upstream_grad"], dtype=torch.float64) * y).sum().backward()
    reference = {"batch_norm1": y.detach().numpy(), "grad.input": x.grad.numpy(),
                 "grad.batch_norm1.gamma": gamma.grad.numpy(), "grad.batch_norm1.beta": beta.grad.numpy(),
                 "batch_norm1.mean": x.detach().mean(dim=0).numpy(),
                 "batch_norm1.var": x.detach().var(dim=0, unbiased=False).numpy()}
    for name, value in reference.items():
        assert rel_err(values[name], value) <= 1e-10, name
        assert np.abs(np.array(written["expect"][name]) - value).max() <= 5e-9, name


def test_batch_norm_of_one_value_per_feature_is_refused(tmp_path):
    """One example of a vector (or of a 1×1 map) makes each feature its own mean: x̂ = 0."""
    text = "input: [1, 2]\nlayers:\n  - fc: {weights: [[1, 2], [3, 4]]}\n  - batch_norm\nloss: mse\ntarget: [0, 0]\n"
    with pytest.raises(SpecError) as info:
        load_model(write_spec(tmp_path, text))
    assert info.value.path == "layers[1]" and "batch: N" in info.value.message and info.value.line == 4
    assert load_model(write_spec(tmp_path, "input: [[1, 2], [3, 4]]\nlayers:\n  - batch_norm\nloss: mse\n"
                                      "target: [[0, 0], [0, 0]]\n", "map.yaml")).network.layers[0].batch == 1


def test_wrong_batch_statistics_are_placed_after_their_layers_input(tmp_path):
    """A batch mean computed from a wrong input is propagated from it, not called the first error."""
    model = load_model(write_spec(tmp_path, fc_bn(np.random.default_rng(10), 3)))
    values = model.values()
    text = open(write_spec(tmp_path, fc_bn(np.random.default_rng(10), 3))).read()
    wrong = text + (f"expect:\n  batch_norm1.var: {flow(2 * values['batch_norm1.var'])}\n")
    result = check_model(load_model(write_spec(tmp_path, wrong, "wrong.yaml")))
    assert not result.passed and result.first_wrong == "batch_norm1.var"
    assert result.expect[0].diagnosis[0].mistake == "scaled"
    shifted = np.array(values["fc1"]) + 1.0   # the user's fc1 off by one: the mean follows it
    text2 = text + (f"expect:\n  fc1: {flow(shifted)}\n  batch_norm1.mean: {flow(values['batch_norm1.mean'] + 1.0)}\n")
    result = check_model(load_model(write_spec(tmp_path, text2, "shifted.yaml")))
    assert result.first_wrong == "fc1"
    assert {e.quantity: e.origin for e in result.expect}["batch_norm1.mean"] == "propagated"


BRANCHED = """
batch: 2
input: [[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]]
layers:
  - fc: {weights: [[0.1, 0.2, -0.3], [0.4, -0.5, 0.6], [0.3, 0.1, 0.2]], name: a}
  - batch_norm: {from: input, gamma: [1.5, 0.5, 2.0], beta: [0.1, 0.2, 0.3]}
  - add: {inputs: [a, batch_norm1]}
loss: squared_error
target: [[0.5, -0.5, 1.0], [0.0, 1.0, -1.0]]
"""


def test_explain_follows_the_reads_beside_a_batch_norm(tmp_path):
    """A batch norm reading the input beside another branch: the fc's delta is explained by its
    reader (add), not by the layer after it in the list, and its terms add up to the value; the
    input's delta, read by the fc and the batch norm, is the sum of the two readers' parts."""
    model = load_model(write_spec(tmp_path, BRANCHED))
    values = model.values()
    fc = explain(model, "grad.a[0,1]")
    assert fc.value == values["grad.a"][0, 1] and np.isclose(fc.total, fc.value, rtol=1e-12)
    assert "add1" in " ".join(text for term in fc.terms for text, _ in term.factors)
    bn = explain(model, "grad.batch_norm1.gamma[1]")
    assert np.isclose(bn.total, values["grad.batch_norm1.gamma"][1], rtol=1e-12)
    for index in [(0, 1), (1, 2)]:
        both = explain(model, f"grad.input[{index[0]},{index[1]}]")
        assert both.value == values["grad.input"][index] and np.isclose(both.total, both.value, rtol=1e-12)
        assert [name for name, _ in _reader_sums(both)] == ["through a", "through batch_norm1"]


def _reader_sums(explained) -> list[tuple[str, float]]:
    """(``through READER``, the sum of its terms) for each reader's group of an explanation."""
    return [(note[0].split(" (")[0], note[-1]) for note in explained.notes
            if isinstance(note[0], str) and note[0].startswith("through")]


def test_explain_of_a_value_a_batch_norm_reads_beside_an_fc_sums_torchs_parts(tmp_path):
    """Each reader's group sums to its part of ∂E/∂input by torch autograd (that reader reading its
    own copy of the input): the fc's from one example, the batch norm's from the whole batch."""
    pytest.importorskip("torch")
    from helpers.torchnet import torch_reader_part
    model = load_model(write_spec(tmp_path, BRANCHED))
    parts = [torch_reader_part(model, 0, reader) for reader in range(2)]
    for index in [(0, 0), (0, 1), (1, 2)]:
        sums = [total for _, total in _reader_sums(explain(model, f"grad.input[{index[0]},{index[1]}]"))]
        np.testing.assert_allclose(sums, [part[index] for part in parts], rtol=1e-10, atol=1e-14)


def test_a_step_wider_than_the_bend_is_unresolved_not_a_faulty_layer(tmp_path):
    """A batch norm of a feature constant over the batch, eps 1e-12: σ is 1e-6, far below the
    step 1e-4, so the differences at h and h/2 disagree and prove nothing: the input's gradient
    (right, as torch's) is unverified, not failed with batch_norm1 blamed; a step below σ verifies it."""
    text = """
batch: 3
input: [[0.0, 1.0], [0.0, 2.0], [0.0, 0.5]]
layers:
  - batch_norm: {eps: 1e-12}
  - fc: {weights: [[1.0, 0.5], [0.3, -0.2]]}
loss: squared_error
target: [[0, 1], [1, 0], [0.5, 0.5]]
"""
    model = load_model(write_spec(tmp_path, text))
    result = check_model(model)
    status = {q.quantity: q.status for q in result.gradients}
    assert status["input"] == "unverified" and result.faulty_layer is None
    assert all(s == "passed" for name, s in status.items() if name != "input")
    assert check_model(model, eps=1e-9).passed

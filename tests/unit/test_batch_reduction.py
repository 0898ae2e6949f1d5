"""`batch: N` and `reduction: sum | mean`: N examples in one spec, their losses reduced.

The numbers are checked against PyTorch's own reductions (`F.mse_loss`, `F.cross_entropy`,
`F.binary_cross_entropy_with_logits` with `reduction=...`) and against N separate one-example
specs; the checker's finite differences must agree on every gradient, and catch a gradient that
forgets the mean's 1/N.
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
from helpers.specs import write_spec, spec_error




def flow(array) -> str:
    """A numpy array as a YAML flow value (JSON is YAML)."""
    return json.dumps(np.asarray(array).tolist())


FC_NET = ("  - fc: {{weights: {w1}, bias: {b1}}}\n  - tanh\n  - fc: {{weights: {w2}, bias: {b2}}}\n")


def fc_spec(rng, batch: int, loss: str, target_text: str, inputs: int = 4, hidden: int = 3,
            outputs: int = 3, x=None) -> str:
    x = rng.standard_normal((batch, inputs)) if x is None else x
    layers = FC_NET.format(w1=flow(rng.standard_normal((hidden, inputs))), b1=flow(rng.standard_normal(hidden)),
                           w2=flow(rng.standard_normal((outputs, hidden))), b2=flow(rng.standard_normal(outputs)))
    return f"batch: {batch}\ninput: {flow(x)}\nlayers:\n{layers}loss: {loss}\ntarget: {target_text}\n"


# --- against PyTorch ----------------------------------------------------------------------------

def torch_run(model, loss_of):
    """(E, per-example losses or None, ∂E/∂input, {param: ∂E/∂param}) by torch autograd, the
    network from tests/torchnet.py's layer references, the loss by ``loss_of(y)``."""
    import torch
    from helpers.torchnet import torch_layer
    x = torch.tensor(model.input, dtype=torch.float64, requires_grad=True)
    params = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True)
              for name, value in model.params.items()}
    h = x
    for name, layer in zip(model.network.names, model.network.layers):
        h = torch_layer(layer)(h, {p: params[f"{name}.{p}"] for p in layer.param_names})
    loss = loss_of(h)
    loss.backward()
    return float(loss.detach()), x.grad.numpy(), {name: value.grad.numpy() for name, value in params.items()}


def assert_agrees(model, loss_of, per_example_of=None):
    from helpers.torchnet import rel_err
    import torch
    values = model.values()
    loss, dx, dparams = torch_run(model, loss_of)
    assert rel_err(values["loss"], loss) <= 1e-10
    assert rel_err(model.user("input", dx), values["grad.input"]) <= 1e-10
    for name, grad in dparams.items():
        assert rel_err(model.user(name, grad), values[f"grad.{name}"]) <= 1e-10, name
    if per_example_of is not None:
        y = torch.tensor(values["output"].reshape(model.network.batch, -1), dtype=torch.float64)
        assert rel_err(values["losses"], per_example_of(y).numpy()) <= 1e-10


SEEDS = range(6)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_cross_entropy_from_logits_with_class_indices_is_torchs(tmp_path, seed, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(seed)
    batch, classes = int(rng.integers(2, 6)), int(rng.integers(2, 5))
    labels = rng.integers(0, classes, batch)
    model = load_model(write_spec(tmp_path, fc_spec(rng, batch, f"{{cross_entropy: {{from: logits, reduction: {reduction}}}}}",
                                               flow(labels), outputs=classes)))
    index = torch.tensor(labels)
    assert_agrees(model, lambda y: F.cross_entropy(y, index, reduction=reduction),
                  lambda y: F.cross_entropy(y, index, reduction="none"))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_softmax_then_cross_entropy_over_a_batch_is_torchs_on_the_logits(tmp_path, seed, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(100 + seed)
    batch = int(rng.integers(2, 6))
    labels = rng.integers(0, 3, batch)
    text = fc_spec(rng, batch, f"{{cross_entropy: {{reduction: {reduction}}}}}", flow(labels))
    model = load_model(write_spec(tmp_path, text.replace("loss:", "  - softmax\nloss:")))
    index = torch.tensor(labels)
    # the network ends in softmax: torch's cross_entropy takes its input, the logits
    logits = lambda y: torch.log(y)   # log softmax(z) = z − logsumexp(z): cross_entropy is shift-free
    assert_agrees(model, lambda y: F.cross_entropy(logits(y), index, reduction=reduction))


@pytest.mark.parametrize("seed", SEEDS)
def test_mse_mean_is_torchs_mean_over_every_entry_and_sum_adds_the_examples_means(tmp_path, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(200 + seed)
    batch = int(rng.integers(2, 6))
    target = rng.standard_normal((batch, 3))
    t = torch.tensor(target)
    mean = load_model(write_spec(tmp_path, fc_spec(rng, batch, "{mse: {reduction: mean}}", flow(target))))
    assert_agrees(mean, lambda y: F.mse_loss(y, t, reduction="mean"),
                  lambda y: F.mse_loss(y, t, reduction="none").mean(dim=1))
    rng = np.random.default_rng(200 + seed)
    rng.integers(2, 6)
    summed = load_model(write_spec(tmp_path, fc_spec(rng, batch, "mse", flow(target)), "sum.yaml"))
    assert_agrees(summed, lambda y: F.mse_loss(y, t, reduction="sum") / 3)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_squared_error_and_binary_cross_entropy_reduce_over_the_examples(tmp_path, seed, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(300 + seed)
    batch = int(rng.integers(2, 6))
    divide = batch if reduction == "mean" else 1
    target = rng.standard_normal((batch, 3))
    t = torch.tensor(target)
    model = load_model(write_spec(tmp_path, fc_spec(rng, batch, f"{{squared_error: {{reduction: {reduction}}}}}",
                                               flow(target))))
    assert_agrees(model, lambda y: 0.5 * F.mse_loss(y, t, reduction="sum") / divide)
    probabilities = rng.uniform(0, 1, (batch, 3))
    p = torch.tensor(probabilities)
    model = load_model(write_spec(tmp_path, fc_spec(
        rng, batch, f"{{binary_cross_entropy: {{from: logits, reduction: {reduction}}}}}", flow(probabilities)),
        "bce.yaml"))
    assert_agrees(model, lambda y: F.binary_cross_entropy_with_logits(y, p, reduction="sum") / divide)


@pytest.mark.parametrize("seed", range(4))
def test_a_conv_network_over_a_batch_of_maps_is_torchs(tmp_path, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(400 + seed)
    batch = int(rng.integers(2, 5))
    labels = rng.integers(0, 3, batch)
    text = (f"batch: {batch}\ninput: {flow(rng.standard_normal((batch, 2, 6, 5)))}\nlayers:\n"
            f"  - conv: {{kernel: {flow(rng.standard_normal((3, 2, 3, 2)))}, bias: {flow(rng.standard_normal(3))}, padding: 1}}\n"
            f"  - relu\n  - pool: {{size: 2}}\n  - flatten\n"
            f"  - fc: {{weights: {flow(rng.standard_normal((3, 3 * 3 * 3)))}}}\n"
            f"loss: {{cross_entropy: {{from: logits, reduction: mean}}}}\ntarget: {flow(labels)}\n")
    model = load_model(write_spec(tmp_path, text))
    index = torch.tensor(labels)
    assert_agrees(model, lambda y: F.cross_entropy(y, index, reduction="mean"))
    assert check_model(model).passed


# --- against N separate examples ----------------------------------------------------------------

def test_a_batch_is_its_examples_summed_or_averaged(tmp_path):
    """Parameter gradients are the examples' summed (sum) or averaged (mean); each example's
    entries of the input and layer gradients are that example's own, scaled the same way."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4))
    target = rng.standard_normal((3, 3))
    for reduction, scale in (("sum", 1.0), ("mean", 1 / 3)):
        rng_net = np.random.default_rng(8)
        batch = load_model(write_spec(tmp_path, fc_spec(rng_net, 3, f"{{mse: {{reduction: {reduction}}}}}",
                                                   flow(target), x=x))).values()
        singles = []
        for n in range(3):
            rng_net = np.random.default_rng(8)
            text = fc_spec(rng_net, 1, "mse", flow(target[n:n + 1]), x=x[n:n + 1])
            singles.append(load_model(write_spec(tmp_path, text.replace("batch: 1\n", "").replace(
                f"input: {flow(x[n:n + 1])}", f"input: {flow(x[n])}").replace(
                f"target: {flow(target[n:n + 1])}", f"target: {flow(target[n])}"), f"one{n}.yaml")).values())
        losses = np.array([float(one["loss"]) for one in singles])
        assert np.allclose(batch["losses"], losses, rtol=1e-14, atol=0)
        assert np.isclose(float(batch["loss"]), losses.sum() * scale, rtol=1e-14)
        for name in ("grad.fc1.weights", "grad.fc1.bias", "grad.fc2.weights", "grad.fc2.bias"):
            assert np.allclose(batch[name], scale * sum(one[name] for one in singles), rtol=1e-13, atol=1e-15)
        for name in ("grad.input", "grad.fc1", "grad.tanh1"):
            assert np.allclose(batch[name], scale * np.stack([one[name] for one in singles]), rtol=1e-13, atol=1e-15)


# --- the checker --------------------------------------------------------------------------------

CONV_BATCH = """batch: 2
input: {random: {shape: [2, 2, 5, 5], seed: 1}}
layers:
  - conv: {kernel: {random: {shape: [2, 2, 2, 2], seed: 2}}, bias: [0.1, -0.2]}
  - relu
  - pool: {size: 2}
  - flatten
  - fc: {weights: {random: {shape: [3, 8], seed: 3}}, bias: [0.0, 0.1, 0.2]}
loss: {cross_entropy: {from: logits, reduction: REDUCTION}}
target: [1, 2]
"""


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("options", [{}, {"fast": True}, {"deltas": True},
                                     {"wrt": ("input", "conv1.kernel", "relu1")}])
def test_check_passes_a_batch_every_way(tmp_path, reduction, options):
    model = load_model(write_spec(tmp_path, CONV_BATCH.replace("REDUCTION", reduction)))
    result = check_model(model, **options)
    assert result.passed, [(q.quantity, q.status) for q in result.gradients + result.deltas]
    assert result.gradients or result.deltas
    for checked in result.gradients:
        if checked.quantity == "input":
            assert checked.shape == (2, 2, 5, 5)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_check_catches_a_gradient_reduced_the_wrong_way(tmp_path, monkeypatch, reduction):
    """A negative control: a backward pass that reduces the examples the other way (the 1/N of a
    mean forgotten, or one put into a sum) fails, and the faulty step is the loss."""
    model = load_model(write_spec(tmp_path, CONV_BATCH.replace("REDUCTION", reduction)))
    right = Network.reduction_scale

    def swapped(self):
        return 1.0 if right(self) != 1.0 else 1.0 / self.batch

    monkeypatch.setattr(Network, "reduction_scale", swapped)
    monkeypatch.setattr(Network, "objective",
                        lambda self, trace, target: self.losses(trace, target).reshape(-1, self.batch).sum(axis=1)
                        * right(self))
    result = check_model(model)
    assert not result.passed
    assert all(q.status == "failed" for q in result.gradients)
    assert result.faulty_layer == "loss"


def test_a_perturbed_input_entry_moves_only_its_own_example(tmp_path):
    """Finite differences of the input against the analytic gradient, entry by entry: an entry of
    example 1 whose gradient is 0 in example 0's rows would be caught as nonzero otherwise."""
    model = load_model(write_spec(tmp_path, CONV_BATCH.replace("REDUCTION", "sum")))
    result = check_model(model, wrt=("input",))
    entries = result.gradients[0].entries
    assert len(entries) == 2 * 2 * 5 * 5
    assert all(e.status == "ok" for e in entries)
    values = model.values()
    analytic = {tuple(e.index): e.analytic for e in entries}
    assert analytic[(1, 0, 3, 4)] == values["grad.input"][1, 0, 3, 4]


# --- expect and explain -------------------------------------------------------------------------

def test_expect_takes_whole_batch_and_per_example_entries(tmp_path):
    base = CONV_BATCH.replace("REDUCTION", "mean")
    values = load_model(write_spec(tmp_path, base)).values()
    expect = (f"expect:\n  loss: {float(values['loss']):.10f}\n  losses: {flow(np.round(values['losses'], 10))}\n"
              f"  grad.fc1[1,2]: {float(values['grad.fc1'][1, 2]):.10f}\n"
              f"  grad.input: {flow(np.round(values['grad.input'], 12))}\n")
    model = load_model(write_spec(tmp_path, base + expect, "expect.yaml"))
    result = check_model(model)
    assert result.passed and len(result.expect) == 4
    wrong = base + f"expect:\n  grad.fc1[1,2]: {2 * float(values['grad.fc1'][1, 2]):.10f}\n"
    assert not check_model(load_model(write_spec(tmp_path, wrong, "wrong.yaml"))).passed


def test_explain_a_per_example_entry_and_a_summed_parameter(tmp_path):
    model = load_model(write_spec(tmp_path, CONV_BATCH.replace("REDUCTION", "mean")))
    values = model.values()
    loss_step = explain(model, "grad.fc1[1,2]")
    assert loss_step.value == values["grad.fc1"][1, 2]
    assert np.isclose(loss_step.total, loss_step.value, rtol=1e-12)
    texts = [text for term in loss_step.terms for text, _ in term.factors]
    assert "target[1,2]" in " ".join(texts) and any("1/2" in text for text in texts)
    weight = explain(model, "grad.fc1.weights[2,5]")
    assert np.isclose(weight.total, values["grad.fc1.weights"][2, 5], rtol=1e-12)
    refs = " ".join(text for term in weight.terms for text, _ in term.factors)
    assert "grad.fc1[0,2]" in refs and "grad.fc1[1,2]" in refs
    entry = explain(model, "grad.relu1[1,0,1,1]")
    assert np.isclose(entry.total, values["grad.relu1"][1, 0, 1, 1], rtol=1e-12, atol=1e-15)
    assert all(text.startswith("grad.pool1[1,") for term in entry.terms for text, _ in term.factors
               if text.startswith("grad."))


def test_the_diagnosis_names_a_mean_taken_as_a_sum(tmp_path):
    base = CONV_BATCH.replace("REDUCTION", "mean")
    values = load_model(write_spec(tmp_path, base)).values()
    text = base + f"expect:\n  grad.fc1: {flow(np.round(2 * values['grad.fc1'], 10))}\n"
    result = check_model(load_model(write_spec(tmp_path, text, "wrong.yaml")))
    failed = result.expect[0]
    assert not failed.passed and failed.diagnosis[0].mistake == "batch-reduction-swapped"


# --- forward's per-example losses ---------------------------------------------------------------

def test_forward_shows_each_examples_loss(tmp_path):
    from cnngrad.cli import cli
    from click.testing import CliRunner
    path = write_spec(tmp_path, CONV_BATCH.replace("REDUCTION", "mean"))
    values = load_model(path).values()
    done = CliRunner().invoke(cli, ["forward", path, "--format", "json"])
    document = json.loads(done.output)
    assert document["losses"] == values["losses"].tolist()
    assert np.isclose(document["loss"], np.mean(document["losses"]), rtol=1e-15)
    table = CliRunner().invoke(cli, ["forward", path]).output
    assert "losses  2" in table and "mean of 2 examples" in table


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_one_example_batch_says_one_example_not_a_sum_of_1_examples(tmp_path, reduction):
    """With `batch: 1` sum and mean are the same number: the loss line names the one example
    (``mse, 1 example``) rather than a reduction of "1 examples"."""
    from helpers.cli import invoke
    path = write_spec(tmp_path, "batch: 1\ninput: [[1, 2, 3]]\nlayers:\n"
                 "  - fc: {weights: [[1, 0, 1], [0, 1, 0]], bias: [0, 0]}\n"
                 f"loss: {{mse: {{reduction: {reduction}}}}}\ntarget: [[1, 1]]\n")
    for command in ("forward", "backward"):
        text = invoke(command, path).output
        assert "loss (mse, 1 example) = 5" in text, text   # ((4 − 1)² + (2 − 1)²)/2 = 5


# --- what the spec must say ---------------------------------------------------------------------

@pytest.mark.parametrize("text, path, words", [
    ("batch: 3\ninput: [[1, 2], [3, 4]]\nlayers: []\nloss: mse\ntarget: [[0, 0], [0, 0]]\n",
     "input", "first axis holds the examples, but it has 2"),
    ("batch: 2\ninput: [1, 2]\nlayers: []\nloss: mse\ntarget: [0, 0]\n", "input", "not 1-D"),
    ("batch: 0\ninput: [[1, 2]]\nlayers: []\nloss: mse\ntarget: [[0, 0]]\n", "batch", "at least 1"),
    ("batch: 2\ninput: [[1, 2], [3, 4]]\nlayers: []\nloss: mse\ntarget: [0, 0]\n", "target",
     "each example's target has the output's shape 2"),
    ("batch: 2\ninput: [[1, 2], [3, 4]]\nlayers: []\nloss: mse\ntarget: [[0, 0], [0, 0], [0, 0]]\n", "target",
     "one per example, shape 2×2"),
    ("batch: 2\ninput: [[1, 2], [3, 4]]\nlayers: []\nloss: {cross_entropy: {from: logits}}\ntarget: [1, 0, 1]\n",
     "target", "a list of 2 integers"),
    ("batch: 2\ninput: [[1, 2], [3, 4]]\nlayers: []\nloss: {cross_entropy: {from: logits}}\ntarget: [1, 2]\n",
     "target", "class index 2 is out of range"),
    ("batch: 2\ninput: [[1, 2], [3, 4]]\nlayers: []\nloss: {mse: {reduction: average}}\ntarget: [[0, 0], [0, 0]]\n",
     "loss.mse.reduction", "sum, mean"),
    ("input: [1, 2]\nlayers: []\nloss: {mse: {from: logits}}\ntarget: [0, 0]\n",
     "loss.mse", "cross_entropy and binary_cross_entropy"),
    ("batch: 2\ninput: [[1, 2], [3, 4]]\nlayers: []\nloss: {none: {reduction: mean}}\nupstream_grad: [[0, 0], [0, 0]]\n",
     "loss.none", "upstream_grad is ∂E/∂(final output) itself"),
])
def test_a_batch_that_does_not_fit_is_an_error_at_its_node(tmp_path, text, path, words):
    err = spec_error(tmp_path, text)
    assert err.path == path and words in err.message and err.line is not None


def test_without_batch_a_first_axis_is_never_examples(tmp_path):
    """The same nested list without `batch:` is one 2-D example (a map), as before."""
    model = load_model(write_spec(tmp_path, "input: [[1, 2], [3, 4]]\nlayers: []\nloss: mse\ntarget: [[0, 0], [0, 0]]\n"))
    assert model.network.batch == 1 and not model.batched
    assert float(model.values()["loss"]) == (1 + 4 + 9 + 16) / 4
    batched = load_model(write_spec(tmp_path, "batch: 2\ninput: [[1, 2], [3, 4]]\nlayers: []\nloss: mse\n"
                                         "target: [[0, 0], [0, 0]]\n", "b.yaml"))
    assert float(batched.values()["loss"]) == (1 + 4) / 2 + (9 + 16) / 2


def test_the_cs231n_worked_example_in_configs_is_torchs():
    """configs/cs231n_softmax_batch_mean_l2.yaml: F.cross_entropy(reduction='mean') + reg·ΣW²."""
    torch = pytest.importorskip("torch")
    import yaml
    from helpers.torchnet import rel_err
    path = str(ROOT / "configs/cs231n_softmax_batch_mean_l2.yaml")
    written = yaml.safe_load(open(path, encoding="utf-8"))
    values = load_model(path).values()
    x = torch.tensor(written["input"], dtype=torch.float64, requires_grad=True)
    w = torch.tensor(written["layers"][0]["fc"]["weights"], dtype=torch.float64, requires_grad=True)
    scores = x @ w.T
    per_example = torch.nn.functional.cross_entropy(scores, torch.tensor(written["target"]), reduction="none")
    loss = per_example.mean() + 0.1 * (w ** 2).sum()
    loss.backward()
    reference = {"loss": float(loss.detach()), "losses": per_example.detach().numpy(), "fc1": scores.detach().numpy(),
                 "grad.fc1.weights": w.grad.numpy(), "grad.input": x.grad.numpy()}
    for name, value in reference.items():
        assert rel_err(values[name], value) <= 1e-10, name
        assert np.abs(np.array(written["expect"][name]) - value).max() <= 5e-9, name


def test_the_memory_estimate_counts_every_example(tmp_path):
    """A batch holds N times the activations: a spec within the memory limit for one example is
    refused for 64 of them, with the limit's option named."""
    from cnngrad.spec import Limits
    one = "input: {random: {shape: [1, 64, 64]}}\nlayers:\n  - conv: {kernel: {random: {shape: [8, 1, 3, 3]}}, padding: 1}\n"
    limits = Limits(max_memory_bytes=4 << 20)
    assert load_model(write_spec(tmp_path, one), limits=limits).network.batch == 1
    many = one.replace("input: {random: {shape: [1,", "batch: 64\ninput: {random: {shape: [64, 1,")
    with pytest.raises(SpecError) as info:
        load_model(write_spec(tmp_path, many, "many.yaml"), limits=limits)
    assert "--max-memory" in info.value.message


def test_wrong_per_example_losses_are_diagnosed_as_any_value(tmp_path):
    base = CONV_BATCH.replace("REDUCTION", "mean")
    values = load_model(write_spec(tmp_path, base)).values()
    text = base + f"expect:\n  losses: {flow(2 * values['losses'])}\n"
    result = check_model(load_model(write_spec(tmp_path, text, "wrong.yaml")))
    assert not result.passed and result.first_wrong == "losses"
    assert result.expect[0].diagnosis[0].mistake == "scaled"

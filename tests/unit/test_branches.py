"""Branches: ``from:``, ``add`` (residual connections) and ``concat`` (Inception-style blocks).

A value read by several layers gets the sum of what each passes back: checked by hand on a tiny
network, against PyTorch autograd on a ResNet basic block and an Inception-style block, by
finite differences (``check``), and through explain, the diagnosis and the spec's errors.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.diagnose import diagnose
from cnngrad.explain import explain
from cnngrad.gradcheck import check_model as check
from cnngrad.gradcheck.check import faulty_layer
from cnngrad.layers.join import Add, Concat
from cnngrad.spec import load_text
from cnngrad.spec.errors import SpecError
from helpers import ROOT

RESNET = """
input: {{random: {{shape: [3, 5, 5], seed: {seed}}}}}
layers:
  - conv: {{kernel: {{random: {{shape: [3, 3, 3, 3], seed: {s1}, scale: 0.4}}}}, bias: {{random: {{shape: [3], seed: {s2}}}}}, padding: 1}}
  - relu
  - conv: {{kernel: {{random: {{shape: [3, 3, 3, 3], seed: {s3}, scale: 0.4}}}}, bias: {{random: {{shape: [3], seed: {s4}}}}}, padding: 1}}
  - add: {{inputs: [conv2, input]}}
  - relu
  - global_avg_pool
  - fc: {{weights: {{random: {{shape: [4, 3], seed: {s5}}}}}, bias: {{random: {{shape: [4], seed: {s6}}}}}}}
loss: {{cross_entropy: {{from: logits}}}}
target: {target}
"""

INCEPTION = """
input: {{random: {{shape: [2, 5, 4], seed: {seed}}}}}
layers:
  - conv: {{kernel: {{random: {{shape: [2, 2, 1, 1], seed: {s1}}}}}, bias: {{random: {{shape: [2], seed: {s2}}}}}, name: b1x1}}
  - conv: {{from: input, kernel: {{random: {{shape: [3, 2, 3, 3], seed: {s3}, scale: 0.5}}}}, padding: same, name: b3x3}}
  - pool: {{from: input, type: max, size: 3, stride: 1, padding: 1, name: bpool}}
  - concat: {{inputs: [b1x1, b3x3, bpool]}}
  - relu
  - flatten
  - fc: {{weights: {{random: {{shape: [3, 140], seed: {s5}, scale: 0.2}}}}}}
  - softmax
loss: cross_entropy
target: {target}
"""


def _load(text: str, name: str = "net.yaml"):
    return load_text(text, name, ".")


def _seeded(template: str, seed: int):
    return _load(template.format(seed=seed, s1=seed + 1, s2=seed + 2, s3=seed + 3, s4=seed + 4, s5=seed + 5,
                                 s6=seed + 6, target=seed % 3))


def _torch_resnet(model, torch):
    """The block written in torch's own terms: relu(conv2(relu(conv1(x))) + x), mean, linear."""
    F = torch.nn.functional
    p = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True) for name, value in model.params.items()}
    x = torch.tensor(model.input, dtype=torch.float64, requires_grad=True)
    c1 = F.conv2d(x, p["conv1.kernel"], p["conv1.bias"], padding=1)
    c1.retain_grad()
    c2 = F.conv2d(F.relu(c1), p["conv2.kernel"], p["conv2.bias"], padding=1)
    logits = F.linear(F.relu(c2 + x).mean(dim=(2, 3)), p["fc1.weights"], p["fc1.bias"])
    loss = F.cross_entropy(logits, torch.tensor(model.target, dtype=torch.float64))
    loss.backward()
    return float(loss.detach()), x.grad.numpy(), c1.grad.numpy(), {name: t.grad.numpy() for name, t in p.items()}


def _torch_inception(model, torch):
    """Three branches of the input, concatenated along channels, as torch writes them."""
    F = torch.nn.functional
    p = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True) for name, value in model.params.items()}
    x = torch.tensor(model.input, dtype=torch.float64, requires_grad=True)
    joined = torch.cat([F.conv2d(x, p["b1x1.kernel"], p["b1x1.bias"]),
                        F.conv2d(x, p["b3x3.kernel"], p["b3x3.bias"], padding=1),
                        F.max_pool2d(x, 3, 1, 1)], dim=1)
    joined.retain_grad()
    logits = F.linear(F.relu(joined).flatten(1), p["fc1.weights"], p["fc1.bias"])
    loss = F.cross_entropy(logits, torch.tensor(model.target, dtype=torch.float64))
    loss.backward()
    return float(loss.detach()), x.grad.numpy(), joined.grad.numpy(), {name: t.grad.numpy() for name, t in p.items()}


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300))


@pytest.mark.parametrize("seed", range(0, 50, 10))
def test_resnet_basic_block_agrees_with_torch(seed):
    torch = pytest.importorskip("torch")
    model = _seeded(RESNET, seed)
    loss, d_input, d_conv1, d_params = _torch_resnet(model, torch)
    values = model.values()
    assert abs(values["loss"] - loss) <= 1e-10 * abs(loss)
    assert _rel(values["grad.input"], d_input[0]) <= 1e-10     # through conv1 and the skip, summed
    assert _rel(values["grad.conv1"], d_conv1[0]) <= 1e-10
    for name, grad in d_params.items():
        assert _rel(values[f"grad.{name}"], grad) <= 1e-10, name


@pytest.mark.parametrize("seed", range(0, 50, 10))
def test_inception_block_agrees_with_torch(seed):
    torch = pytest.importorskip("torch")
    model = _seeded(INCEPTION, seed)
    loss, d_input, d_joined, d_params = _torch_inception(model, torch)
    values = model.values()
    assert abs(values["loss"] - loss) <= 1e-10 * abs(loss)
    assert _rel(values["grad.input"], d_input[0]) <= 1e-10     # the three branches' parts, summed
    assert _rel(values["grad.concat1"], d_joined[0]) <= 1e-10
    for name, grad in d_params.items():
        assert _rel(values[f"grad.{name}"], grad) <= 1e-10, name


HAND = """
input: [2.0, -1.0]
layers:
  - fc: {weights: [[1.0, 2.0], [3.0, -1.0]], bias: [0.5, 0.0], name: a}
  - fc: {weights: [[0.5, -2.0], [1.0, 1.0]], name: f}
  - add: {inputs: [f, a]}
loss: squared_error
target: [0.0, 1.0]
"""


def test_a_value_used_twice_gets_the_sum_of_its_two_deltas():
    # a = W1 x + b1 = [2 - 2 + 0.5, 6 + 1] = [0.5, 7];  f = W2 a = [0.25 - 14, 0.5 + 7] = [-13.75, 7.5]
    # y = f + a = [-13.25, 14.5];  δy = y − t = [-13.25, 13.5] (½Σ(y − t)²)
    # δf = δy;  δa = δy (through add) + W2ᵀ δf = [-13.25, 13.5] + [0.5·-13.25 + 1·13.5, -2·-13.25 + 1·13.5]
    #    = [-13.25, 13.5] + [6.875, 40] = [-6.375, 53.5];  δx = W1ᵀ δa = [-6.375 + 160.5, -12.75 - 53.5]
    values = _load(HAND).values()
    np.testing.assert_array_equal(values["a"], [0.5, 7.0])
    np.testing.assert_array_equal(values["add1"], [-13.25, 14.5])
    np.testing.assert_array_equal(values["grad.f"], [-13.25, 13.5])
    np.testing.assert_array_equal(values["grad.a"], [-6.375, 53.5])
    np.testing.assert_array_equal(values["grad.input"], [154.125, -66.25])
    np.testing.assert_array_equal(values["grad.a.bias"], [-6.375, 53.5])


def test_explain_shows_one_term_group_per_reader():
    explained = explain(_load(HAND), "grad.a[1]")
    assert explained.value == 53.5
    texts = [[text for text, _ in term.factors] for term in explained.terms]
    # through f: Σ_k W2[k,1] δf[k] = -2·-13.25 + 1·13.5; through add1: δy[1] = 13.5
    assert texts == [["f.weights[0,1]", "grad.f[0]"], ["f.weights[1,1]", "grad.f[1]"], ["grad.add1[1]"]]
    assert [term.value for term in explained.terms] == [26.5, 13.5, 13.5]
    assert explained.total == 53.5
    groups = [note for note in explained.notes if isinstance(note[0], str) and note[0].startswith("through")]
    assert [note[0].split(" (")[0] for note in groups] == ["through f", "through add1"]
    assert [note[-1] for note in groups] == [40.0, 13.5]


def test_branched_check_passes_and_keeps_the_chain_shortcuts_only_where_exact():
    result = check(_seeded(RESNET, 3), deltas=True)
    assert result.passed
    assert {q.quantity for q in result.gradients} >= {"input", "conv1.kernel", "conv2.bias", "fc1.weights"}
    assert len(result.deltas) == 7


class _WrongAdd(Add):
    """add whose backward drops the delta of its first operand (as if the skip were not summed)."""

    def backward(self, dy, cache, params):
        return (0.5 * dy,) + tuple(dy for _ in range(cache - 1)), {}


class _WrongConcat(Concat):
    """concat whose backward hands each operand the first channels of the delta."""

    def backward(self, dy, cache, params):
        return tuple(np.array(dy[:, :channels]) for channels in cache), {}


@pytest.mark.parametrize("template, index, wrong", [(RESNET, 3, _WrongAdd), (INCEPTION, 3, _WrongConcat)])
def test_a_wrong_join_backward_is_caught_and_named(template, index, wrong):
    model = _seeded(template, 5)
    name = model.network.names[index]
    model.network.layers[index] = wrong()
    result = check(model, deltas=True)
    assert not result.passed
    assert result.faulty_layer == model.network.names[index] == name


def test_a_wrong_delta_of_a_value_two_layers_read_names_the_reader_whose_part_is_wrong():
    # the skip operand of add is the input, which conv1 reads too: each reader's part is measured
    # apart (tests/unit/test_reader_parts.py), without them no reader is named
    model = _seeded(RESNET, 5)

    class SkipWrong(Add):
        def backward(self, dy, cache, params):
            return (dy, 0.5 * dy), {}

    model.network.layers[3] = SkipWrong()
    result = check(model, deltas=True)
    assert not result.passed
    assert [q.quantity for q in result.gradients if not q.passed] == ["input"]
    assert result.faulty_layer == "add1"
    assert faulty_layer(model, result.gradients, result.deltas) is None


def test_forgotten_skip_gradient_is_diagnosed():
    model = _seeded(RESNET, 7)
    right = model.values()
    # δ(input) through conv1 alone: what a backward pass that forgets the skip connection gives
    through_conv1 = right["grad.input"] - right["grad.add1"]
    result = diagnose(model, {"grad.conv1": right["grad.conv1"], "grad.input": through_conv1})
    wrong, = [r for r in result.expect if not r.passed]
    assert wrong.origin == "introduced"
    assert wrong.diagnosis[0].mistake == "branch-delta-not-summed"
    assert wrong.diagnosis[0].layer == "conv1"
    assert result.first_wrong == "grad.input"


@pytest.mark.parametrize("layers, blamed, words", [
    ("  - relu\n  - add: {inputs: [relu1, nope]}\n", "nope", "unknown value 'nope'"),
    ("  - relu\n  - add: {inputs: [relu1, relu2]}\n  - relu\n", "relu2", "relu2 is layers[2], after this layer"),
    ("  - relu\n  - add: {inputs: [add1, relu1]}\n", "add1", "add1 cannot read its own output"),
    ("  - relu: {from: relu2}\n  - relu\n", "relu2", "relu2 is layers[1], after this layer"),
    ("  - flatten\n  - fc: {weights: [[1, 2, 3, 4]]}\n  - add: {inputs: [fc1, flatten1]}\n", "[fc1",
     "add needs operands of one shape, but fc1 is 1, flatten1 is 4"),
    ("  - pool: {size: 2, stride: 1, name: p}\n  - concat: {inputs: [p, input]}\n", "[p,",
     "their height × width must agree, but p is 1×1, input is 2×2"),
    ("  - relu\n  - add: {inputs: [relu1]}\n", "[relu1]", "inputs names at least 2 values"),
    ("  - relu\n  - relu: {from: input}\n", "relu", "relu1's output is never read"),
    ("  - add: {from: input, inputs: [input, input]}\n", "from", "unknown key 'from'"),
])
def test_bad_inputs_are_one_line_errors_saying_what_to_write(layers, blamed, words):
    text = "input: [[1.0, 2.0], [3.0, 4.0]]\nloss: none\nlayers:\n" + layers
    with pytest.raises(SpecError) as caught:
        _load(text)
    err = caught.value
    before = text[:text.index(blamed, text.index("layers:"))]
    assert (err.line, err.column) == (before.count("\n") + 1, len(before) - before.rfind("\n")), str(err)
    assert words in str(err)
    assert "\n" not in str(err)


def test_from_reads_an_earlier_value_and_concat_joins_vectors():
    model = _load("input: [1.0, -2.0]\nloss: none\nupstream_grad: [1.0, 2.0, 3.0, 4.0]\nlayers:\n"
                  "  - relu\n  - tanh: {from: input}\n  - concat: {inputs: [relu1, tanh1]}\n")
    values = model.values()
    np.testing.assert_array_equal(values["concat1"], [1.0, 0.0, np.tanh(1.0), np.tanh(-2.0)])
    # δx = relu′(x)·[1, 2] + tanh′(x)·[3, 4]
    np.testing.assert_allclose(values["grad.input"], [1.0 + 3 * (1 - np.tanh(1.0) ** 2), 4 * (1 - np.tanh(-2.0) ** 2)],
                               rtol=1e-15)


def test_resnet_config_expect_values_agree_with_torch():
    """configs/resnet_basic_block.yaml's hand-worked numbers, recomputed by PyTorch autograd."""
    torch = pytest.importorskip("torch")
    from cnngrad.spec import load_model
    F = torch.nn.functional
    model = load_model(str(ROOT / "configs/resnet_basic_block.yaml"))
    p = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True) for name, value in model.params.items()}
    x = torch.tensor(model.input, dtype=torch.float64, requires_grad=True)
    c1 = F.conv2d(x, p["conv1.kernel"], p["conv1.bias"], padding=1)
    r1 = F.relu(c1)
    c2 = F.conv2d(r1, p["conv2.kernel"], p["conv2.bias"], padding=1)
    s = c2 + x
    for t in (c1, r1, s):
        t.retain_grad()
    loss = 0.5 * ((F.relu(s) - torch.tensor(model.target, dtype=torch.float64)) ** 2).sum()
    loss.backward()
    torch_values = {"conv2": c2, "add1": s, "loss": loss, "grad.relu1": r1.grad, "grad.conv1": c1.grad,
                    "grad.input": x.grad, "grad.conv1.kernel": p["conv1.kernel"].grad,
                    "grad.conv2.bias": p["conv2.bias"].grad}
    assert {e.quantity for e in model.expect} == set(torch_values)
    for expectation in model.expect:
        value = torch_values[expectation.quantity].detach().numpy().reshape(model.user_shapes.get(
            expectation.quantity.removeprefix("grad."), ()))
        if expectation.index is not None:
            value = value[expectation.index]
        np.testing.assert_allclose(expectation.values, value, rtol=0, atol=1e-15, err_msg=expectation.label)


def test_forward_shows_what_each_branch_reads():
    from cnngrad.render import jsondoc, rows
    from cnngrad.render.reports import forward_report
    model = _seeded(INCEPTION, 1)
    report = forward_report(model, model.values(gradients=False))
    kinds = [row[1] for row in rows.summary_rows(report)]
    assert kinds[1:5] == ["conv", "conv ← input", "pool ← input", "concat ← b1x1, b3x3, bpool"]
    assert kinds[5] == "relu"
    import json
    layers = json.loads(jsondoc.forward(report))["layers"]
    assert [layer["reads"] for layer in layers[:5]] == [["input"], ["input"], ["input"], ["b1x1", "b3x3", "bpool"],
                                                        ["concat1"]]


def test_a_value_joined_with_itself_counts_twice():
    # y = x + x, E = ½Σ y²: δy = y = 2x, δx = δy + δy = 4x
    model = _load("input: [1.0, -2.0]\nlayers:\n  - add: {inputs: [input, input]}\n"
                  "loss: squared_error\ntarget: [0.0, 0.0]\n")
    values = model.values()
    np.testing.assert_array_equal(values["grad.input"], [4.0, -8.0])
    explained = explain(model, "grad.input[1]")
    assert [term.value for term in explained.terms] == [-4.0, -4.0]
    assert "add1 as operand 1, add1 as operand 2" in explained.formula
    assert check(model, deltas=True).passed


def test_a_bad_name_is_one_error_line_with_exit_code_2(tmp_path):
    from click.testing import CliRunner
    from cnngrad.cli import cli
    spec = tmp_path / "net.yaml"
    spec.write_text("input: [[1.0, 2.0], [3.0, 4.0]]\nlayers:\n  - relu\n  - add: {inputs: [relu1, inptu]}\n"
                    "loss: squared_error\ntarget: [[0, 0], [0, 0]]\n")
    for command in ("forward", "backward", "check"):
        result = CliRunner().invoke(cli, [command, str(spec)])
        assert result.exit_code == 2
        line, = [text for text in result.stderr.splitlines() if text.startswith("error:")]
        assert line == (f"error: {spec}:4:27: layers[1].add.inputs[1]: unknown value 'inptu'; name the "
                        f"input or an earlier layer (input, relu1); did you mean 'input'?")


def test_random_branched_networks_agree_with_torch_checks_and_explain():
    """Residual and Inception-style blocks drawn by tests/helpers/randomnets.py: every gradient against
    torch autograd, the check with every delta, and explain's sum for each delta's first entry."""
    torch = pytest.importorskip("torch")
    from helpers.randomnets import random_models
    from helpers.torchnet import rel_err, torch_gradients
    seen = 0
    for _, model in random_models(404, 120):
        if not model.network.branched:
            continue
        seen += 1
        loss, d_input, d_params = torch_gradients(model)
        values = model.values()
        # 1e-10 relative above a rounding floor, as tests/test_properties.py: a gradient that is
        # tiny by cancellation carries a few ulp of (largest delta × largest value) on both sides
        deltas = max(1.0, *(np.abs(v).max() for k, v in values.items() if k.startswith("grad.")))
        floor = 1e-13 * deltas * max(1.0, *(np.abs(values[k]).max() for k in ["input", *model.network.names]))
        for name, ours, theirs in [("input", values["grad.input"], d_input),
                                   *((n, values[f"grad.{n}"], g) for n, g in d_params.items())]:
            theirs = model.user(name, theirs)
            allowed = 1e-10 * max(np.linalg.norm(ours), np.linalg.norm(theirs)) + floor
            assert np.linalg.norm(ours - theirs) <= allowed, (name, rel_err(ours, theirs))
        assert check(model, deltas=True).passed
        for name in ["input", *model.network.names[:-1]]:
            text = f"grad.{name}" + (f"[{','.join('0' * len(model.user_shapes[name]))}]" if model.user_shapes[name] else "")
            explained = explain(model, text)
            assert explained.total == pytest.approx(explained.value, rel=1e-9, abs=1e-12), text
    assert seen >= 10


def test_the_chain_shortcuts_stay_for_a_chain_and_leave_a_value_read_twice():
    """A conv first layer is not re-run for input probes only when it is the input's one reader,
    and a conv kernel's copies run the channel-wise layers after it on one channel only when its
    output goes nowhere else (otherwise the other reader would see the unperturbed map)."""
    from cnngrad.gradcheck.probes import OneChannelRuns, input_probe, param_probe
    kernel = "{random: {shape: [2, 1, 2, 2], seed: 3}}"
    chain = _load(f"input: {{random: {{shape: [3, 3], seed: 1}}}}\nlayers:\n  - conv: {{kernel: {kernel}}}\n"
                  "  - relu\nloss: squared_error\ntarget: [[[0, 1], [1, 0]], [[1, 0], [0, 1]]]\n")
    joined = _load(f"input: {{random: {{shape: [3, 3], seed: 1}}}}\nlayers:\n  - conv: {{kernel: {kernel}}}\n"
                   "  - relu\n  - concat: {inputs: [relu1, conv1]}\n"
                   "loss: squared_error\ntarget: {random: {shape: [4, 2, 2], seed: 2}}\n")
    for model, linear, one_channel in ((chain, True, True), (joined, True, False)):
        trace = model.forward()
        grads = model.backward(trace)
        net = model.network
        assert (input_probe(net, trace, model.params, grads.input[0]).start == 1) == linear
        probe = param_probe(net, trace, model.params, "conv1.kernel", grads.params["conv1.kernel"])
        assert isinstance(probe.shortcut, OneChannelRuns) == one_channel
        assert check(model, deltas=True).passed
    skip = _seeded(RESNET, 2)   # the input is read by conv1 and by the addition
    trace = skip.forward()
    assert input_probe(skip.network, trace, skip.params, skip.backward(trace).input[0]).start == 0


def test_the_schema_knows_from_and_inputs():
    jsonschema = pytest.importorskip("jsonschema")
    from cnngrad.spec.schema import spec_schema
    schema = spec_schema()
    head = {"input": [[1.0, 2.0], [3.0, 4.0]], "loss": "none", "upstream_grad": [[1, 1], [1, 1]]}
    good = [["relu", {"tanh": {"from": "input"}}, {"add": {"inputs": ["relu1", "tanh1"]}}],
            ["relu", {"concat": {"inputs": ["relu1", "input", "relu1"]}, "name": "c"}]]
    bad = [[{"add": {"inputs": ["input"]}}], [{"add": {"from": "input", "inputs": ["input", "input"]}}],
           [{"concat": None}], [{"relu": {"from": 3}}]]
    for layers in good:
        jsonschema.validate({**head, "layers": layers}, schema)
    for layers in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**head, "layers": layers}, schema)

"""The faulty layer among several readers of one value: each reader's part of the value's delta,
J_jᵀ δ_j, is checked apart (the value moved as that reader alone reads it), and the reader whose
part disagrees is named.

The wrong engines are made here, independently of the checker: one layer's backward hands back
1.5 times its input delta (one operand's, for a join). The reference for the per-reader
differences is PyTorch autograd with the reader reading its own copy of the value.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.gradcheck import check_model as check
from cnngrad.gradcheck.check import check_reader_parts, faulty_layer
from cnngrad.losses import SquaredError
from cnngrad.spec import load_text

# stem → r, which c1 (the residual branch) and sum (the skip) both read
RESIDUAL = """
input: {{random: {{shape: [2, 5, 5], seed: {seed}}}}}
layers:
  - conv: {{kernel: {{random: {{shape: [3, 2, 3, 3], seed: {s1}, scale: 0.4}}}}, bias: {{random: {{shape: [3], seed: {s2}}}}}, padding: 1, name: stem}}
  - tanh: {{name: r}}
  - conv: {{kernel: {{random: {{shape: [3, 3, 3, 3], seed: {s3}, scale: 0.4}}}}, bias: {{random: {{shape: [3], seed: {s4}}}}}, padding: 1, name: c1}}
  - relu: {{name: a1}}
  - conv: {{kernel: {{random: {{shape: [3, 3, 3, 3], seed: {s5}, scale: 0.4}}}}, padding: 1, name: c2}}
  - add: {{inputs: [c2, r], name: sum}}
  - relu
  - global_avg_pool
  - fc: {{weights: {{random: {{shape: [3, 3], seed: {s6}}}}}, bias: [0.1, -0.2, 0.3]}}
loss: squared_error
target: [0.5, -1.0, 0.25]
"""

# stem → r, which three branches read, concatenated along channels
INCEPTION = """
input: {{random: {{shape: [2, 4, 5], seed: {seed}}}}}
layers:
  - conv: {{kernel: {{random: {{shape: [2, 2, 1, 1], seed: {s1}}}}}, bias: {{random: {{shape: [2], seed: {s2}}}}}, name: stem}}
  - tanh: {{name: r}}
  - conv: {{kernel: {{random: {{shape: [2, 2, 1, 1], seed: {s3}}}}}, bias: {{random: {{shape: [2], seed: {s4}}}}}, name: b1x1}}
  - conv: {{from: r, kernel: {{random: {{shape: [3, 2, 3, 3], seed: {s5}, scale: 0.5}}}}, padding: same, name: b3x3}}
  - pool: {{from: r, type: max, size: 3, stride: 1, padding: 1, name: bpool}}
  - concat: {{inputs: [b1x1, b3x3, bpool]}}
  - relu
  - flatten
  - fc: {{weights: {{random: {{shape: [3, 140], seed: {s6}, scale: 0.2}}}}}}
loss: squared_error
target: [0.5, -1.0, 0.25]
"""

# each reader of r, with the operand of r for a join
RESIDUAL_READERS = [("c1", None), ("sum", 1)]
INCEPTION_READERS = [("b1x1", None), ("b3x3", None), ("bpool", None)]


def seeded(template: str, seed: int):
    return load_text(template.format(seed=seed, s1=seed + 1, s2=seed + 2, s3=seed + 3, s4=seed + 4, s5=seed + 5,
                                     s6=seed + 6), "net.yaml", ".")


def made_wrong(model, name: str, operand: int | None = None, factor: float = 1.5) -> None:
    """Layer ``name``'s backward hands back ``factor`` times its input delta (of operand
    ``operand`` alone, for a join); its parameter gradients stay right."""
    layer = model.network.layers[model.network.names.index(name)]
    right = type(layer)

    def backward(self, dy, cache, params):
        dx, grads = right.backward(self, dy, cache, params)
        if operand is None:
            return dx * factor, grads
        return tuple(d * factor if k == operand else d for k, d in enumerate(dx)), grads

    layer.__class__ = type(f"Wrong{right.__name__}", (right,), {"backward": backward})


class WrongSquaredError(SquaredError):
    def grad(self, y, t):
        return (y - t) * 1.5


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("template, reader, operand",
                         [(RESIDUAL, *r) for r in RESIDUAL_READERS] + [(INCEPTION, *r) for r in INCEPTION_READERS])
def test_the_wrong_reader_of_a_value_several_layers_read_is_named(template, reader, operand, fast):
    model = seeded(template, 11)
    made_wrong(model, reader, operand)
    result = check(model, fast=fast)
    assert not result.passed
    # r's delta is wrong, every reader's own delta right: the readers' parts tell which is wrong
    deltas = {q.quantity: q.disagrees() for q in result.deltas}
    readers = [name for name, _ in (RESIDUAL_READERS if template is RESIDUAL else INCEPTION_READERS)]
    assert deltas["r"] and not any(deltas[name] for name in readers)
    assert result.faulty_layer == reader


@pytest.mark.parametrize("template, readers", [(RESIDUAL, RESIDUAL_READERS), (INCEPTION, INCEPTION_READERS)])
def test_each_readers_part_is_measured_apart(template, readers):
    # the wrong reader's part disagrees, every other reader's part agrees
    for wrong, operand in readers:
        model = seeded(template, 3)
        made_wrong(model, wrong, operand)
        trace = model.forward()
        grads = model.backward(trace)
        result = check(model, deltas=True)
        parts = _parts(model, trace, grads)
        assert [name for name, _ in parts] == [name for name, _ in readers]
        assert {name for name, part in parts if part.disagrees()} == {wrong}
        assert result.faulty_layer == wrong


def _parts(model, trace, grads, fast=False):
    """Each reader's part of r's delta, checked apart through check_model's own checker."""
    from cnngrad.gradcheck.check import Progress, QuantityChecker, rounding_magnitude
    from cnngrad.gradcheck.finite import Evaluator
    evaluator = Evaluator(model.network, model.params, model.target, trace,
                          magnitude=rounding_magnitude(model, trace, grads, recompute=fast))
    checker = QuantityChecker(model, evaluator, 1e-4, 1e-7, 1e-10, fast, 0)
    value = model.network.names.index("r") + 1
    return check_reader_parts(model, trace, grads, checker, Progress(None, fast), value)


@pytest.mark.parametrize("template", [RESIDUAL, INCEPTION])
def test_a_right_engine_names_no_layer_and_its_parts_agree(template):
    model = seeded(template, 5)
    result = check(model, deltas=True)
    assert result.passed and result.faulty_layer is None
    trace = model.forward()
    parts = _parts(model, trace, model.backward(trace))
    assert all(part.passed for _, part in parts) and len(parts) in (2, 3)


@pytest.mark.parametrize("template", [RESIDUAL, INCEPTION])
def test_a_wrong_loss_is_named_not_a_reader(template):
    model = seeded(template, 5)
    model.network.loss = WrongSquaredError()
    result = check(model)
    assert not result.passed and result.faulty_layer == "loss"


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("template, wrong, named", [
    (RESIDUAL, [("c1", None), ("sum", 1)], "sum"),
    (INCEPTION, [("b1x1", None), ("bpool", None)], "bpool"),
    (INCEPTION, [("b1x1", None), ("b3x3", None), ("bpool", None)], "bpool"),
])
def test_two_wrong_readers_name_the_one_nearest_the_loss(template, wrong, named, fast):
    model = seeded(template, 7)
    for reader, operand in wrong:
        made_wrong(model, reader, operand)
    result = check(model, fast=fast)
    assert not result.passed and result.faulty_layer == named


@pytest.mark.parametrize("template", [RESIDUAL, INCEPTION])
@pytest.mark.parametrize("before", ["r", "stem"])
def test_a_wrong_layer_before_the_branch_is_named_not_a_reader(template, before):
    model = seeded(template, 9)
    made_wrong(model, before)
    result = check(model)
    assert not result.passed and result.faulty_layer == before


def test_without_the_parts_no_reader_is_named():
    # faulty_layer on results alone (no parts to measure) keeps to what it can tell
    model = seeded(RESIDUAL, 11)
    made_wrong(model, "c1")
    result = check(model, deltas=True)
    assert result.faulty_layer == "c1"
    assert faulty_layer(model, result.gradients, result.deltas) is None


@pytest.mark.parametrize("template, readers", [(RESIDUAL, RESIDUAL_READERS), (INCEPTION, INCEPTION_READERS)])
def test_each_readers_differences_agree_with_torch(template, readers):
    pytest.importorskip("torch")
    from helpers.torchnet import torch_reader_part
    model = seeded(template, 13)
    trace = model.forward()
    value = model.network.names.index("r") + 1
    parts = _parts(model, trace, model.backward(trace))
    for (name, part), (reader, _) in zip(parts, readers):
        reference = torch_reader_part(model, value, model.network.names.index(reader))
        numeric = part.verdicts.numeric.reshape(reference.shape)
        scale = np.abs(reference).max()
        assert scale > 1e-3, name     # a part that moves E
        np.testing.assert_allclose(numeric, reference, rtol=0, atol=1e-8 * scale, err_msg=name)

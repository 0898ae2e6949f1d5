"""The faulty layer among several readers of one value: each reader's part of the value's delta,
J_jᵀ δ_j, is checked apart (the value moved as that reader alone reads it), and the reader whose
part disagrees is named.

The wrong engines are made here, independently of the checker: one layer's backward hands back
1.5 times its input delta (that of r alone, for a join: ``helpers.wrong``). The reference for the per-reader
differences is PyTorch autograd with the reader reading its own copy of the value.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.gradcheck import check_model as check
from cnngrad.gradcheck.check import check_reader_parts, faulty_layer
from cnngrad.losses import SquaredError
from cnngrad.spec import load_text
from helpers.wrong import made_wrong

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

RESIDUAL_READERS = ["c1", "sum"]     # the readers of r, the output of layer 1: value 2
INCEPTION_READERS = ["b1x1", "b3x3", "bpool"]
R = 2


def seeded(template: str, seed: int):
    return load_text(template.format(seed=seed, s1=seed + 1, s2=seed + 2, s3=seed + 3, s4=seed + 4, s5=seed + 5,
                                     s6=seed + 6), "net.yaml", ".")


class WrongSquaredError(SquaredError):
    def grad(self, y, t):
        return (y - t) * 1.5


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("template, reader",
                         [(RESIDUAL, r) for r in RESIDUAL_READERS] + [(INCEPTION, r) for r in INCEPTION_READERS])
def test_the_wrong_reader_of_a_value_several_layers_read_is_named(template, reader, fast):
    model = seeded(template, 11)
    made_wrong(model, reader, R)
    result = check(model, fast=fast)
    assert not result.passed
    # r's delta is wrong, every reader's own delta right: the readers' parts tell which is wrong
    deltas = {q.quantity: q.disagrees() for q in result.deltas}
    readers = RESIDUAL_READERS if template is RESIDUAL else INCEPTION_READERS
    assert deltas["r"] and not any(deltas[name] for name in readers)
    assert result.faulty_layer == reader


@pytest.mark.parametrize("template, readers", [(RESIDUAL, RESIDUAL_READERS), (INCEPTION, INCEPTION_READERS)])
def test_each_readers_part_is_measured_apart(template, readers):
    # the wrong reader's part disagrees, every other reader's part agrees
    for wrong in readers:
        model = seeded(template, 3)
        made_wrong(model, wrong, R)
        trace = model.forward()
        grads = model.backward(trace)
        result = check(model, deltas=True)
        parts = _parts(model, trace, grads)
        assert [name for name, _ in parts] == readers
        assert {name for name, part in parts if part.disagrees()} == {wrong}
        assert result.faulty_layer == wrong


def _parts(model, trace, grads, fast=False):
    """Each reader's part of r's delta, checked apart through check_model's own checker."""
    from cnngrad.gradcheck.check import Progress, QuantityChecker, rounding_magnitude
    from cnngrad.gradcheck.finite import Evaluator
    evaluator = Evaluator(model.network, model.params, model.target, trace,
                          magnitude=rounding_magnitude(model, trace, grads, recompute=fast))
    checker = QuantityChecker(model, evaluator, 1e-4, 1e-7, 1e-10, fast, 0)
    return check_reader_parts(model, trace, grads, checker, Progress(None, fast), R)


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
    (RESIDUAL, ["c1", "sum"], "sum"),
    (INCEPTION, ["b1x1", "bpool"], "bpool"),
    (INCEPTION, ["b1x1", "b3x3", "bpool"], "bpool"),
])
def test_two_wrong_readers_name_the_one_nearest_the_loss(template, wrong, named, fast):
    model = seeded(template, 7)
    for reader in wrong:
        made_wrong(model, reader, R)
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
    made_wrong(model, "c1", R)
    result = check(model, deltas=True)
    assert result.faulty_layer == "c1"
    assert faulty_layer(model, result.gradients, result.deltas) is None


@pytest.mark.parametrize("template, readers", [(RESIDUAL, RESIDUAL_READERS), (INCEPTION, INCEPTION_READERS)])
def test_each_readers_differences_agree_with_torch(template, readers):
    pytest.importorskip("torch")
    from helpers.torchnet import torch_reader_part
    model = seeded(template, 13)
    trace = model.forward()
    parts = _parts(model, trace, model.backward(trace))
    for (name, part), reader in zip(parts, readers):
        reference = torch_reader_part(model, R, model.network.names.index(reader))
        numeric = part.verdicts.numeric.reshape(reference.shape)
        scale = np.abs(reference).max()
        assert scale > 1e-3, name     # a part that moves E
        np.testing.assert_allclose(numeric, reference, rtol=0, atol=1e-8 * scale, err_msg=name)


def test_the_parts_run_only_within_max_work():
    # max_work that the per-layer deltas exactly fit leaves no room for the readers' parts
    from cnngrad.gradcheck.work import check_work
    model = seeded(RESIDUAL, 11)
    made_wrong(model, "c1", R)
    fits = check_work(model.network, (), False, True)
    assert check(model, max_work=fits).faulty_layer is None
    each = check_work(model.network, ["r"], False)
    assert check(model, max_work=fits + len(RESIDUAL_READERS) * each).faulty_layer == "c1"

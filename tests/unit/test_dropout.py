"""``dropout``: inverted dropout with a written 0/1 mask or one drawn from a seed,
y = x ⊙ m / (1 − p), ∂E/∂x = ∂E/∂y ⊙ m / (1 − p); the mask is no parameter (nothing to check).

PyTorch reference: the same mask applied as ``x * mask / (1 - p)`` (what F.dropout computes with
the mask it draws itself), differentiated by autograd.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad import SpecError, loads
from cnngrad.explain import explain
from cnngrad.gradcheck import check_model
from cnngrad.layers.dropout import Dropout

torch = pytest.importorskip("torch")

from test_gradcheck import by_name, hand_model  # noqa: E402
from test_layers_torch import CASES, compare_layer  # noqa: E402
from test_explain import assert_every_entry_explained  # noqa: E402


def test_matches_torch_with_the_same_mask():
    rng = np.random.default_rng(2014)
    for _ in range(CASES * 2):
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 6))) if rng.random() < 0.5 else \
            (int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        p = float(rng.choice([0.0, 0.2, 0.5, 0.9]))
        mask = (rng.random(shape[1:]) >= p).astype(float)
        x = rng.standard_normal(shape)
        compare_layer(Dropout(p, mask), x, {}, lambda tx, q: tx * torch.from_numpy(mask) / (1 - p), rng, (p, shape))


def test_the_seeded_mask_is_numpys_default_rng_kept_where_the_draw_is_at_least_p():
    """seed 3, p = 0.5 over a 2×4 input: default_rng(3).random((2, 4)) ≥ 0.5, in C order."""
    model = loads("input: [[1, 2, 3, 4], [5, 6, 7, 8]]\nlayers:\n  - dropout: {p: 0.5, seed: 3}\n"
                  "upstream_grad: [[1, 1, 1, 1], [1, 1, 1, 1]]\n")
    mask = (np.random.default_rng(3).random((2, 4)) >= 0.5).astype(float)
    assert 0 < mask.sum() < 8          # this seed keeps some and drops some
    values = model.values()
    np.testing.assert_array_equal(values["dropout1"], np.arange(1.0, 9.0).reshape(2, 4) * mask * 2)
    np.testing.assert_array_equal(values["grad.input"], mask * 2)
    kept = int(mask.sum())
    note, = model.notes
    assert note.startswith(f"dropout1 keeps {kept} of 8 entries of input") and "default_rng(3)" in note
    assert str(mask.astype(int).tolist()).replace(" ", "") in note.replace(" ", "")


SPEC = """\
input: [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]
layers:
  - dropout: {p: 0.25, mask: [[1, 0, 1], [1, 1, 0]]}
  - flatten
  - fc: {weights: [[0.2, -0.4, 0.6, 0.1, 0.3, -0.5]], bias: [0.1]}
loss: squared_error
target: [0.5]
"""


def test_a_written_mask_scales_kept_entries_by_one_over_one_minus_p():
    """Kept entries times 1/(1 − 0.25) = 4/3, dropped ones 0; the gradient routes back the same."""
    values = loads(SPEC).values()
    mask = np.array([[1, 0, 1], [1, 1, 0]])
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    np.testing.assert_allclose(values["dropout1"], x * mask * 4 / 3, rtol=1e-15)
    np.testing.assert_allclose(values["grad.input"], values["grad.dropout1"] * mask * 4 / 3, rtol=1e-15)
    assert set(loads(SPEC).params) == {"fc1.weights", "fc1.bias"}        # the mask is no parameter


@pytest.mark.parametrize("settings, words", [
    ("{p: 0.5}", "mask"), ("{p: 0.5, seed: 1, mask: [[1, 0, 1], [1, 1, 0]]}", "not both"),
    ("{p: 1, seed: 1}", "p"), ("{p: -0.1, seed: 1}", "p"), ("{p: 0.5, mask: [[1, 0], [1, 1]]}", "shape"),
    ("{p: 0.5, mask: [[1, 0.5, 1], [1, 1, 0]]}", "0 (dropped) or 1"), ("{p: 0.5, seed: 1.5}", "whole number")])
def test_bad_settings_are_one_error_at_the_setting(settings, words):
    with pytest.raises(SpecError) as err:
        loads(SPEC.replace("{p: 0.25, mask: [[1, 0, 1], [1, 1, 0]]}", settings))
    assert words in err.value.message and err.value.path.startswith("layers[0]")


def test_check_passes_and_a_backward_without_the_scale_fails():
    assert check_model(loads(SPEC)).passed

    class Unscaled(Dropout):
        def backward(self, dy, cache, params):
            return dy * self.mask, {}

    mask = np.array([[[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]])
    from cnngrad.layers.flatten import Flatten
    from cnngrad.layers.fc import FC
    bad = hand_model([[[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]],
                     [("dropout1", Unscaled(0.25, mask)), ("flatten1", Flatten()), ("fc1", FC((1, 6)))],
                     "squared_error", [0.5])
    result = check_model(bad)
    assert not result.passed and by_name(result)["input"].status == "failed"


def test_explain_shows_the_mask_and_the_scale():
    model = loads(SPEC)
    kept = explain(model, "grad.input[0,0]")
    assert [text for text, _ in kept.terms[0].factors][1] == "m/(1 − p) = 1/(1 − 0.25)"
    dropped = explain(model, "grad.input[0,1]")
    assert dropped.terms == [] and dropped.zeros == 1
    assert_every_entry_explained(model)


def test_the_schema_declares_p_mask_and_seed():
    from cnngrad.spec.schema import spec_schema
    kinds = spec_schema()["properties"]["layers"]["items"]["anyOf"][1:]
    entry, = [k["properties"]["dropout"] for k in kinds if "dropout" in k["properties"]]
    settings = entry["anyOf"][1]["properties"]
    assert settings["seed"]["type"] == "integer" and settings["p"] == {"type": "number"}
    assert set(settings) == {"p", "mask", "seed", "name"}

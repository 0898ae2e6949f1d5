"""Pool options ``ceil_mode``, ``count_include_pad`` (average) and ``dilation`` (max) against PyTorch.

The torch side is ``F.avg_pool2d(..., ceil_mode, count_include_pad)`` and ``F.max_pool2d(...,
dilation, ceil_mode)`` with the padding handed over in torch's symmetric form, so torch's own
rules decide the output size (the last window must start inside the input or its left padding)
and each window's divisor; hand-worked examples pin down the asymmetric cases torch cannot take.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.layers.pooling import Pool
from cnngrad import SpecError, loads
from helpers import ROOT

torch = pytest.importorskip("torch")
F = torch.nn.functional

from test_layers_torch import CASES, compare_layer  # noqa: E402


def draw(rng, pool_type):
    """Random symmetric settings torch accepts: padding at most half the window."""
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    stride = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
    padding = [int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))]
    dilation = [int(rng.integers(1, 4)), int(rng.integers(1, 4))] if pool_type == "max" else [1, 1]
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    height = int(rng.integers(max(1, span[0] - 2 * padding[0]), span[0] + 7))
    width = int(rng.integers(max(1, span[1] - 2 * padding[1]), span[1] + 7))
    return dict(size=[kh, kw], stride=stride, padding=padding, dilation=dilation,
                ceil_mode=bool(rng.integers(0, 2)), count_include_pad=bool(rng.integers(0, 2)),
                shape=(int(rng.integers(1, 3)), int(rng.integers(1, 4)), height, width))


def torch_reference(pool_type, cfg):
    def run(x, p):
        if pool_type == "avg":
            return F.avg_pool2d(x, cfg["size"], cfg["stride"], cfg["padding"], ceil_mode=cfg["ceil_mode"],
                                count_include_pad=cfg["count_include_pad"])
        return F.max_pool2d(x, cfg["size"], cfg["stride"], cfg["padding"], dilation=cfg["dilation"],
                            ceil_mode=cfg["ceil_mode"])
    return run


def engine(pool_type, cfg):
    options = {"count_include_pad": cfg["count_include_pad"]} if pool_type == "avg" else \
        {"dilation": cfg["dilation"]}
    return Pool(pool_type, size=cfg["size"], stride=cfg["stride"], padding=cfg["padding"],
                ceil_mode=cfg["ceil_mode"], **options)


def reads_input(pool_type, cfg, in_shape):
    """Whether every window of these settings reads at least one input entry (torch gives −inf or
    0/0 for one that reads only padding; cnngrad refuses it at build)."""
    try:
        return engine(pool_type, cfg).empty_window(in_shape) is None
    except ValueError:
        return False


@pytest.mark.parametrize("pool_type", ["avg", "max"])
def test_pool_options_match_torch(pool_type):
    rng = np.random.default_rng({"avg": 161, "max": 162}[pool_type])
    seen = set()
    compared = 0
    while compared < CASES * 3:
        cfg = draw(rng, pool_type)
        in_shape = cfg["shape"][1:]
        if not reads_input(pool_type, cfg, in_shape):
            continue
        layer = engine(pool_type, cfg)
        x = rng.standard_normal(cfg["shape"])
        y, _, _ = compare_layer(layer, x, {}, torch_reference(pool_type, cfg), rng, cfg)
        assert y.shape[1:] == layer.output_shape(in_shape)
        seen.add((cfg["ceil_mode"], cfg["count_include_pad"] if pool_type == "avg" else max(cfg["dilation"]) > 1))
        compared += 1
    assert len(seen) == 4      # every combination of the options was drawn


def test_ceil_mode_extra_window_and_the_start_rule():
    """A 5-wide row, window 2, stride 2: floor gives 2 windows, ceil 3 (the last reads x[4] alone,
    so its average divides by 1 — the overhang beyond the input is not counted, as torch). With
    padding 1 and stride 2 on 5 entries, ceil would add a 4th window starting at 6 = 5 + 1 (past the
    input and left padding): torch's rule drops it."""
    x = np.array([[[[1.0, 2.0, 3.0, 4.0, 5.0]]]])
    y, _ = Pool("avg", size=[1, 2], ceil_mode=True).forward(x, {})
    np.testing.assert_array_equal(y[0, 0, 0], [1.5, 3.5, 5.0])
    assert Pool("avg", size=[1, 2]).output_shape((1, 1, 5)) == (1, 1, 2)
    layer = Pool("avg", size=[1, 2], stride=[1, 2], padding=[0, 1], ceil_mode=True)
    assert layer.output_shape((1, 1, 5)) == (1, 1, 3)    # ⌈(5 + 2 − 2) / 2⌉ + 1 = 4, and the 4th dropped
    ref = F.avg_pool2d(torch.ones(1, 1, 1, 5, dtype=torch.float64), (1, 2), (1, 2), (0, 1), ceil_mode=True)
    assert tuple(ref.shape[2:]) == (1, 3)


def test_count_include_pad_false_divides_by_the_input_entries_read():
    """3×3 window, padding 1 on a 2×2 map of ones and twos: every window reads the whole map, but
    counting padding divides by 9 and excluding it by 4."""
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    with_pad, _ = Pool("avg", size=3, stride=1, padding=1).forward(x, {})
    without, cache = Pool("avg", size=3, stride=1, padding=1, count_include_pad=False).forward(x, {})
    np.testing.assert_allclose(with_pad[0, 0], np.full((2, 2), 10 / 9), rtol=1e-15)
    np.testing.assert_allclose(without[0, 0], np.full((2, 2), 10 / 4), rtol=1e-15)
    # asymmetric padding (torch has no such argument): [[1, 0], [0, 0]] around one 1×2 row, 2×2 windows
    layer = Pool("avg", size=2, stride=1, padding=[[1, 0], [0, 0]], count_include_pad=False)
    y, cache = layer.forward(np.array([[[[2.0, 6.0]]]]), {})
    np.testing.assert_array_equal(y[0, 0], [[4.0]])           # (2 + 6) / 2, not / 4
    dx, _ = layer.backward(np.ones_like(y), cache, {})
    np.testing.assert_array_equal(dx[0, 0], [[0.5, 0.5]])


def test_max_dilation_reads_every_other_entry():
    """Window 2, dilation 2, stride 1 on [5, 1, 2, 7, 3]: windows {x0, x2}, {x1, x3}, {x2, x4}."""
    x = np.array([[[[5.0, 1.0, 2.0, 7.0, 3.0]]]])
    layer = Pool("max", size=[1, 2], stride=1, dilation=[1, 2])
    y, cache = layer.forward(x, {})
    np.testing.assert_array_equal(y[0, 0, 0], [5.0, 7.0, 3.0])
    dx, _ = layer.backward(np.ones_like(y), cache, {})
    np.testing.assert_array_equal(dx[0, 0, 0], [1.0, 0.0, 0.0, 1.0, 1.0])


SPEC = """\
input: [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13, 14, 15]]
layers:
  - pool: {POOL}
upstream_grad: {GRAD}
"""


def test_a_window_of_padding_only_is_refused():
    """Max pooling with dilation 2 and padding 1 on a 1-wide column: the window at −1 reads −1
    and 1, both padding: −∞ in torch, an error here naming the setting to change."""
    text = "input: [[1], [2]]\nlayers:\n  - pool: {size: [2, 1], stride: 1, padding: [1, 0], dilation: [3, 1]}\n"
    with pytest.raises(SpecError) as err:
        loads(text + "upstream_grad: [[1], [1], [1]]\n")
    assert "reads only padding" in err.value.message and err.value.path == "layers[0]"


def test_settings_are_read_and_limited_to_their_type():
    model = loads(SPEC.replace("{POOL}", "{type: avg, size: 2, ceil_mode: true, count_include_pad: false, "
                                         "padding: 1}").replace("{GRAD}", "[[1, 1, 1], [1, 1, 1]]"))
    layer = model.network.layers[0]
    assert (layer.ceil_mode, layer.count_include_pad) == (True, False)
    for wrong in ("{type: max, size: 2, count_include_pad: false}", "{type: avg, size: 2, dilation: 2}",
                  "{size: 2, ceil_mode: 1}"):
        with pytest.raises(SpecError):
            loads(SPEC.replace("{POOL}", wrong).replace("{GRAD}", "[[1, 1], [1, 1]]"))


def test_dropped_note_follows_ceil_mode():
    """A 2×2 window at stride 2 on 3×5: floor drops the last row and column; ceil reads them."""
    floor = loads(SPEC.replace("{POOL}", "{size: 2}").replace("{GRAD}", "[[1, 1]]"))
    assert floor.notes == ["pool1 drops the last row and column of input: no 2×2 window at stride 2 reads them"]
    ceil = loads(SPEC.replace("{POOL}", "{size: 2, ceil_mode: true}").replace("{GRAD}", "[[1, 1, 1], [1, 1, 1]]"))
    assert ceil.notes == []
    dilated = loads(SPEC.replace("{POOL}", "{size: [1, 2], stride: [1, 3], dilation: [1, 2], ceil_mode: true}")
                    .replace("{GRAD}", "[[1, 1], [1, 1], [1, 1]]"))
    # windows at columns 0 and 3 read {0, 2} and {3, 5→overhang}: column 1 and 4 are never read
    assert dilated.notes == ["pool1 drops columns 1 and 4 of input: no 1×2 (dilation 1×2) window at stride "
                             "1×3 reads them"]


# --------------------------------------------------------------------------- explain and check

from cnngrad.explain import explain  # noqa: E402
from cnngrad.gradcheck import check_model  # noqa: E402
from test_explain import assert_every_entry_explained  # noqa: E402
from test_gradcheck import by_name, hand_model  # noqa: E402
from cnngrad.layers.flatten import Flatten  # noqa: E402
from cnngrad.layers.fc import FC  # noqa: E402

EXPLAINED = """\
input: [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13, 14, 15]]
layers:
  - pool: {type: avg, size: 2, padding: 1, ceil_mode: true, count_include_pad: false}
  - pool: {type: max, size: 2, stride: 1, dilation: [1, 2], padding: [0, 1], name: dilated}
  - flatten
  - fc: {weights: [[0.5, -1, 0.25]]}
loss: squared_error
target: [1]
"""


def test_explain_shows_the_divisor_average_pooling_really_uses():
    """Input 3×5, 2×2 windows at stride 2 with padding 1, padding not counted: window (0, 0) reads
    x[0,0] alone (n = 1), window (0, 1) x[0,1] and x[0,2] (n = 2), window (1, 1) a 2×2 block (n = 4)."""
    model = loads(EXPLAINED)
    values = model.values()
    # windows at rows −1, 1 and columns −1, 1, 3: 1/1, (2 + 3)/2, (4 + 5)/2; (6 + 11)/2, (7 + 8 + 12 + 13)/4, …
    np.testing.assert_allclose(values["pool1"], [[1, 2.5, 4.5], [8.5, 10, 12]], rtol=1e-15)
    assert_every_entry_explained(model)
    model = loads(EXPLAINED.replace("  - pool: {type: max, size: 2, stride: 1, dilation: [1, 2], padding: [0, 1], "
                                    "name: dilated}\n", "").replace("[[0.5, -1, 0.25]]", "[[1, 2, 3, 4, 5, 6]]"))
    corner = explain(model, "grad.input[0,0]")
    assert [text for text, _ in corner.terms[0].factors][1:] == ["1/1"]
    inner = explain(model, "grad.input[1,1]")
    assert [text for text, _ in inner.terms[0].factors][1:] == ["1/4"]
    assert "n(i,j) the window's entries of the input" in inner.formula
    assert any("n = 4" in part for note in inner.notes for part in note if isinstance(part, str))


def test_check_passes_the_options_and_fails_a_wrong_divisor():
    """The finite differences agree with the real divisor; a backward dividing by kh·kw (the
    padding counted) is caught."""
    model = loads(EXPLAINED)
    assert check_model(model).passed

    class CountsPadding(Pool):
        def routing(self, cache):
            return np.full(cache[0].shape, 1.0 / (self.size[0] * self.size[1]))

    wrong = CountsPadding("avg", size=2, padding=1, ceil_mode=True, count_include_pad=False)
    x = np.arange(1.0, 16.0).reshape(3, 5)
    bad = hand_model(x[None], [("pool1", wrong), ("flatten1", Flatten()), ("fc1", FC((1, 6)))],
                     "squared_error", [1.0])
    result = check_model(bad)
    assert not result.passed and by_name(result)["input"].status == "failed"


def test_dilated_max_kinks_are_reported_and_a_wrong_route_fails():
    """Integer inputs tie inside dilated windows: those entries are kinks, judged by their
    one-sided quotients; routing the delta to the undilated neighbour fails."""
    x = np.array([[[3.0, 1.0, 3.0, 0.0, 2.0], [1.0, 2.0, 0.0, 2.0, 1.0], [0.0, 3.0, 1.0, 3.0, 2.0]]])
    layers = [("pool1", Pool("max", size=2, stride=1, dilation=[1, 2], ceil_mode=True)),
              ("flatten1", Flatten()), ("fc1", FC((1, 6)))]
    model = hand_model(x, layers, "squared_error", [0.5])
    result = check_model(model)
    assert result.passed and by_name(result)["input"].kinks > 0

    class Undilated(Pool):
        def backward(self, dy, cache, params):
            weights = self.routing(cache)
            dwin = (dy[..., None] * weights).reshape(weights.shape[:4] + self.size)
            from cnngrad.layers.base import crop_map, scatter_windows
            return crop_map(scatter_windows(dwin, cache[3], self.stride), cache[5]), {}

    layers[0] = ("pool1", Undilated("max", size=2, stride=1, dilation=[1, 2], ceil_mode=True))
    rng = np.random.default_rng(3)
    bad = hand_model(rng.standard_normal((1, 3, 5)), layers, "squared_error", [0.5])
    assert not check_model(bad).passed


@pytest.mark.parametrize("path, padding, ceil_mode", [("configs/onnx_averagepool_2d_ceil.yaml", 0, True),
                                                      ("configs/onnx_averagepool_2d_same_upper.yaml", 1, False)])
def test_the_onnx_examples_expect_what_torch_computes(path, padding, ceil_mode):
    """The worked examples' expect values are torch's F.avg_pool2d(count_include_pad=False) and its
    input gradient for δ = 1, within their written decimals."""
    from cnngrad import load
    model = load(str(ROOT / path))
    x = torch.tensor(model.input, requires_grad=True)
    y = F.avg_pool2d(x, 3, 2, padding, ceil_mode=ceil_mode, count_include_pad=False)
    y.sum().backward()
    written = {e.quantity: e.values for e in model.expect}
    np.testing.assert_allclose(written["pool1"], y.detach().numpy()[0, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(written["grad.input"], x.grad.numpy()[0, 0], rtol=0, atol=5e-7)


def test_the_schema_declares_the_options():
    """The JSON Schema derives them from the Setting declarations: flags are booleans, dilation a pair."""
    from cnngrad.spec.schema import spec_schema
    kinds = spec_schema()["properties"]["layers"]["items"]["anyOf"][1:]
    pool, = [k["properties"]["pool"] for k in kinds if "pool" in k["properties"]]
    settings = pool["properties"]
    assert settings["ceil_mode"]["type"] == settings["count_include_pad"]["type"] == "boolean"
    assert settings["dilation"]["anyOf"][0] == {"type": "integer", "minimum": 1}

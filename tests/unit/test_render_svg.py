"""``--format svg``: a well-formed SVG document (read back with the standard library's XML parser)
with the network as boxes, every map and gradient as coloured cells with their values, and the
spec's text escaped."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from cnngrad.cli import main
from cnngrad.render import heatmap

NS = "{http://www.w3.org/2000/svg}"
BLUE, RED = "#468cff", "#e63c3c"      # full heat: (70, 140, 255) and (230, 60, 60)


def run(capsys, *args) -> ET.Element:
    with pytest.raises(SystemExit) as done:
        main([*args, "--format", "svg"])
    assert done.value.code in (0, 1)
    out = capsys.readouterr().out
    assert out.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<svg')
    return ET.fromstring(out)


def texts(root) -> list[str]:
    return [element.text for element in root.iter(f"{NS}text")]


def cells(root) -> dict[str, str]:
    """Each value written in a cell → the fill of its cell (the rect drawn just before it)."""
    found = {}
    for group in root.iter(f"{NS}g"):
        children = list(group)
        for rect, text in zip(children, children[1:]):
            if rect.tag == f"{NS}rect" and text.tag == f"{NS}text" and "value" in text.get("class", ""):
                found[text.text] = rect.get("fill")
    return found


def fill(share: float, full) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(round(255 + (c - 255) * share) for c in full))


def test_backward_draws_the_network_and_every_gradient_with_its_values(capsys):
    root = run(capsys, "backward", "configs/seed001_fc_sigmoid_deltas.yaml")
    words = texts(root)
    for box in (["input", "2×2"], ["sigmoid1", "2×2"], ["flatten1", "4"], ["fc1", "2", "weights 2×4", "bias 2"]):
        start = words.index(box[0])
        assert [w for w in words[start:start + 6] if w][:len(box)] == box       # a box: name, shape, parameters
    values = cells(root)
    # ∂E/∂W = δ aᵀ with δ = (0.25, −0.15), a = (0.58, 0.57, 0.65, 0.55); largest |entry| 0.1625
    assert values["0.1625"] == BLUE
    assert values["-0.0975"] == fill(0.0975 / 0.1625, heatmap.HEAT[-1])
    assert values["0.036418"] == fill(0.0364182 / 0.068628, heatmap.HEAT[1])     # grad.input
    assert values["-0.2755"] == fill(0.2755 / 0.28, heatmap.HEAT[-1])            # grad.flatten1
    assert "grad.fc1.weights" in words and "loss: none (upstream_grad is ∂E/∂output)" in words


def test_forward_draws_layer_kinds_shapes_and_maps(capsys):
    root = run(capsys, "forward", "configs/seed000_conv_relu_pool_fc_softmax.yaml")
    words = texts(root)
    assert ["conv1", "conv", "4×4", "5 params"] == words[words.index("conv1"):words.index("conv1") + 4]
    assert "loss" in words and "cross_entropy" in words
    assert {"#e63c3c", BLUE} & {rect.get("fill") for rect in root.iter(f"{NS}rect")}
    width, height = int(root.get("width")), int(root.get("height"))
    assert root.get("viewBox") == f"0 0 {width} {height}"


def test_a_large_grid_is_bare_cells_and_a_huge_one_is_cut_short_with_a_note(capsys, tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text("input: {random: {shape: [120, 100], seed: 3}}\nlayers: []\n")
    root = run(capsys, "forward", str(spec))
    rects = [rect for rect in root.iter(f"{NS}rect") if rect.get("shape-rendering") == "crispEdges"]
    assert len(rects) == heatmap.CELLS_UP_TO                           # 100 of 120 rows, 100 columns
    x = np.random.default_rng(3).normal(size=(120, 100))
    colours = heatmap.rgb(x[:100], np.abs(x).max())
    assert [rect.get("fill") for rect in rects] == [heatmap.hex_colour(c) for c in colours.reshape(-1, 3)]
    assert not cells(root)                                             # no numbers written
    assert any(t and t.startswith("input: 100×100 of 120×100 drawn (12,000 entries") for t in texts(root))


def test_check_and_explain_are_tables_with_coloured_verdicts(capsys):
    root = run(capsys, "check", "tests/errata/seed001_kernel_gradient_truncated_deltas.yaml")
    failed = [t for t in root.iter(f"{NS}text") if t.text == "FAILED"]
    assert failed and all(t.get("class") == "bad" for t in failed)
    assert "grad.conv1.kernel[0,1]: expected 0.094061, computed 0.0941186865" in texts(root)
    root = run(capsys, "explain", "configs/seed001_kernel_gradient_corrected.yaml", "grad.conv1.kernel[0,1]")
    assert "grad.conv1.kernel[0,1] = 0.094119" in texts(root)


def test_the_spec_s_text_is_escaped(capsys, tmp_path):
    name = '<script>alert("x")</script> & </svg>'
    spec = tmp_path / "a<&>b.yaml"
    spec.write_text(f"name: '{name}'\ninput: [[1, -2]]\nlayers: [relu]\nloss: squared_error\ntarget: [[0, 1]]\n")
    for command in ("forward", "backward"):
        root = run(capsys, command, str(spec))       # parses: nothing broke out of its element
        assert f"{spec} — {name}" in texts(root) and root.find(f"{NS}title").text == f"{spec} — {name}"
        assert root.find(f".//{NS}script") is None


def test_control_characters_of_the_spec_s_text_are_escapes_so_the_svg_stays_xml(capsys, tmp_path):
    """XML 1.0 cannot hold ESC: a name with a terminal escape made the picture an XML error.
    Written as escapes, as in tables (``\\x1b``, and ``\\u202e`` for a bidi override)."""
    spec = tmp_path / "net.yaml"
    spec.write_text('name: "red \\x1b[31m flip \\u202e end"\ninput: [[1, -2]]\nlayers: [relu]\n'
                    "loss: squared_error\ntarget: [[0, 1]]\n")
    root = run(capsys, "backward", str(spec))
    assert root.find(f"{NS}title").text == f"{spec} — red \\x1b[31m flip \\u202e end"

"""HTML output (notebooks' ``_repr_html_`` and ``--format html``), read back with the standard
library's HTML parser: table structure, cell values, heatmap colours, escaping of the spec's text."""
from __future__ import annotations

import math
from html.parser import HTMLParser

import numpy as np
import pytest

from cnngrad.cli import main
from cnngrad.explain import explain
from cnngrad.gradcheck import check_model
from cnngrad.gradcheck.results import EntryResult, QuantityResult, SpecResult
from cnngrad.render import heatmap, html, table
from cnngrad.render.reports import backward_report, forward_report
from cnngrad.spec import load_model

FC_SPEC = "configs/seed001_fc_sigmoid_deltas.yaml"
BLUE, RED = "#468cff", "#e63c3c"      # full heat: (70, 140, 255) and (230, 60, 60)


class Page(HTMLParser):
    """Tables of an HTML text, each under the last heading before it: ``tables[i]`` is
    ``(heading, rows)``, a row a list of ``(text, style dict, attributes)``; ``tags`` every tag opened."""

    def __init__(self, text: str):
        super().__init__()
        self.tables, self.tags, self.texts, self.heading = [], [], [], None
        self._cell = self._in_heading = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag in ("h3", "h4"):
            self._in_heading = []
        elif tag == "table":
            self.tables.append((self.heading, []))
        elif tag == "tr":
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            style = dict(part.split(":", 1) for part in attrs.get("style", "").split(";") if ":" in part)
            self._cell = ["", style, attrs]

    def handle_endtag(self, tag):
        if tag in ("h3", "h4") and self._in_heading is not None:
            self.heading, self._in_heading = "".join(self._in_heading).strip(), None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][1][-1].append(tuple(self._cell))
            self._cell = None

    def handle_data(self, data):
        self.texts.append(data)
        if self._in_heading is not None:
            self._in_heading.append(data)
        if self._cell is not None:
            self._cell[0] += data

    def grid(self, heading: str) -> list[list[tuple]]:
        """The rows of the first table under ``heading`` (its title and shape)."""
        return next(rows for title, rows in self.tables if title == heading)

    def texts_of(self, heading: str) -> list[list[str]]:
        return [[text for text, *_ in row] for row in self.grid(heading)]


def fill(share: float, full) -> str:
    """White faded towards ``full`` by ``share``, as the heatmap rule says."""
    return "#{:02x}{:02x}{:02x}".format(*(round(255 + (c - 255) * share) for c in full))


@pytest.fixture(scope="module")
def fc_model():
    return load_model(FC_SPEC)


def test_forward_shows_the_summary_and_every_map_with_its_values(fc_model):
    page = Page(forward_report(fc_model, fc_model.values(gradients=False))._repr_html_())
    summary = next(rows for _, rows in page.tables if rows[0][0][0] == "layer")
    assert [[text for text, *_ in row] for row in summary] == [
        ["layer", "kind", "output shape", "params"], ["input", "", "2×2", "0"], ["sigmoid1", "sigmoid", "2×2", "0"],
        ["flatten1", "flatten", "4", "0"], ["fc1", "fc", "2", "10"], ["total", "", "", "10"]]
    # the spec's logits are those of 0.58, 0.57, 0.65, 0.55; fc1 = W·a by hand
    assert page.texts_of("sigmoid1 2×2") == [["", "0", "1"], ["0", "0.58", "0.57"], ["1", "0.65", "0.55"]]
    assert page.texts_of("flatten1 4") == [["0", "1", "2", "3"], ["0.58", "0.57", "0.65", "0.55"]]
    fc1 = 0.61 * 0.58 + 0.82 * 0.57 + 0.96 * 0.65 - 1.00 * 0.55, 0.02 * 0.58 - 0.50 * 0.57 + 0.23 * 0.65 + 0.17 * 0.55
    assert page.texts_of("fc1 2")[1] == [f"{fc1[0]:.4f}", f"{fc1[1]:.4f}"]
    assert "loss: none (upstream_grad is ∂E/∂output)" in page.texts


def test_cells_are_coloured_red_below_zero_blue_above_by_magnitude(fc_model):
    page = Page(backward_report(fc_model, fc_model.values())._repr_html_())
    cells = {text: style for row in page.grid("grad.fc1.weights 2×4")[1:] for text, style, _ in row[1:]}
    # ∂E/∂W = δ aᵀ with δ = (0.25, −0.15), a = (0.58, 0.57, 0.65, 0.55); largest |entry| 0.1625
    assert cells["0.1625"]["background"] == BLUE
    assert cells["0.1375"]["background"] == fill(0.1375 / 0.1625, heatmap.HEAT[1])
    assert cells["-0.0975"]["background"] == fill(0.0975 / 0.1625, heatmap.HEAT[-1])
    assert cells["0.1625"]["color"] == "#fff" and cells["-0.0870"]["color"] == "#222"   # white on dark fills only
    vector = page.grid("grad.fc1 2")
    assert [text for text, *_ in vector[1]] == ["0.25", "-0.15"]
    assert vector[1][1][1]["background"] == fill(0.6, heatmap.HEAT[-1])


def test_a_slice_of_a_3d_map_is_its_own_table_on_the_quantitys_scale():
    report = forward_report(model := load_model("configs/seed004_multichannel_3x32x32_six_filters.yaml"),
                            model.values(gradients=False))
    page = Page(html.forward_fragment(report, 6))
    pooled = [rows for title, rows in page.tables if title == "pool1 6×1×1"]
    assert len(pooled) == 6
    values = report.layers[1].output.reshape(-1)
    largest = np.abs(values).max()
    for rows, value in zip(pooled, values):
        text, style, _ = rows[1][1]
        assert float(text) == pytest.approx(value, abs=1e-6)
        assert style["background"] == fill(abs(value) / largest, heatmap.HEAT[int(np.sign(value))])


def test_a_large_grid_is_bare_cells_with_tooltips_and_a_huge_one_is_cut_short(tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text("input: {random: {shape: [120, 100], seed: 3}}\nlayers: []\n")
    model = load_model(str(spec))
    page = Page(html.forward_fragment(forward_report(model, model.values(gradients=False)), 6))
    rows = page.grid("input 120×100")
    assert len(rows) == heatmap.CELLS_UP_TO // 100 and len(rows[0]) == 100     # 100 of 120 rows drawn
    assert all(text == "" for row in rows for text, *_ in row)                 # no numbers in the cells
    x = np.random.default_rng(3).normal(size=(120, 100))
    assert float(rows[7][42][2]["title"]) == pytest.approx(x[7, 42], abs=1e-6)  # the value as a tooltip
    assert any("input: 100×100 of 120×100 drawn (12,000 entries" in text for text in page.texts)


def test_check_results_colour_their_status_words():
    entries = [EntryResult((0, 1), 0.25, 0.26, 1e-2, "fail"), EntryResult((1, 0), 0.0, 0.5, 0.5, "kink", 0.0, 1.0, notable=True)]
    result = SpecResult("net.yaml", None, False, [QuantityResult("conv1.kernel", (2, 2), False, 0.5, 1.0, 1, entries)])
    page = Page(result._repr_html_())
    gradients, listed = (rows for _, rows in page.tables)
    assert [text for text, *_ in gradients[1]] == ["conv1.kernel", "2×2", "5.00e-01", "1.00e+00", "—", "1", "FAILED"]
    assert gradients[1][-1][1]["color"] == "#c62828"
    assert [row[4][0] for row in listed[1:]] == ["fail", "kink"]
    assert listed[1][4][1]["color"] == "#c62828" and listed[2][4][1]["color"] == "#a07000"
    assert "net.yaml: FAILED (1 of 1 gradients failed)" in page.texts


def test_a_passing_check_of_a_real_spec(fc_model):
    page = Page(check_model(fc_model)._repr_html_())
    expect = next(rows for _, rows in page.tables if rows[0][0][0] == "expect")
    assert [row[0][0] for row in expect[1:]] == ["sigmoid1", "fc1", "grad.flatten1", "grad.sigmoid1",
                                                 "grad.input", "grad.fc1.weights", "grad.fc1.bias"]
    assert all(row[-1][0] == "passed" and row[-1][1]["color"] == "#1a7f37" for row in expect[1:])


def test_explain_colours_each_term_and_the_total():
    explained = explain(load_model("configs/seed001_kernel_gradient_corrected.yaml"), "grad.conv1.kernel[0,1]")
    page = Page(explained._repr_html_())
    (rows,) = (rows for _, rows in page.tables)
    # seed 001: the four nonzero deltas times the inputs they meet (README, explain)
    terms = [0.068628 * 0.84, 0.0364182 * 0.22, 0.04675125 * 0.74, -0.06818625 * 0.09]
    total = sum(terms)
    assert [float(row[-1][0]) for row in rows[1:5]] == pytest.approx(terms, abs=1e-6)
    assert rows[-1][-1][0] == "0.094119" and rows[-1][-1][1]["background"] == BLUE   # the largest: full
    assert rows[4][-1][1]["background"] == fill(-terms[3] / total, heatmap.HEAT[-1])
    assert "background" not in rows[5][-1][1]           # "… and 12 terms that are 0"
    assert "grad.conv1.kernel[0,1] = 0.094119" in page.texts


def test_a_spec_s_own_text_is_escaped(tmp_path):
    name = '<script>alert("x")</script> & <b>bold</b>'
    spec = tmp_path / "a<i>&b.yaml"
    spec.write_text(f"name: '{name}'\ninput: [[1, -2]]\nlayers: [relu]\nloss: squared_error\ntarget: [[0, 1]]\n")
    model = load_model(str(spec))
    fragments = [html.forward(forward_report(model, model.values(gradients=False)), 4),
                 html.backward(backward_report(model, model.values()), 4),
                 html.check([check_model(model)]),
                 html.explain(explain(model, "grad.input[0,1]"), 4)]
    for text in fragments:
        page = Page(text)
        assert {tag for tag, _ in page.tags} <= {"html", "head", "meta", "title", "body", "div", "h3", "h4",
                                                 "span", "p", "code", "table", "tr", "th", "td", "img"}
        assert f"{spec} — {name}" in page.texts                       # title and heading, literally
        assert "<script>" not in text and "a<i>&b" not in text


def test_repr_pretty_is_the_table_text(fc_model):
    class Printer:
        def text(self, text):
            self.out = text
    report, printer = backward_report(fc_model, fc_model.values()), Printer()
    report._repr_pretty_(printer, False)
    assert printer.out == table.backward(report, 6).rstrip("\n")
    assert "grad.fc1.weights  2×4" in printer.out


def test_format_html_writes_a_self_contained_page(capsys):
    with pytest.raises(SystemExit) as done:
        main(["backward", FC_SPEC, "--format", "html"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
    page = Page(out)
    assert page.texts_of("grad.input 2×2")[1] == ["0", "0.036418", "0.068628"]
    sources = [attrs["src"] for tag, attrs in page.tags if tag in ("img", "script", "link") and "src" in attrs]
    assert sources and all(src.startswith("data:image/svg+xml;base64,") for src in sources)   # nothing fetched
    assert not any(tag in ("script", "link") for tag, _ in page.tags)


def test_non_finite_values_are_magenta():
    colours = heatmap.rgb([math.inf, -math.inf, math.nan, 0.0, -2.0], 2.0)
    assert [tuple(c) for c in colours] == [heatmap.NON_FINITE] * 3 + [heatmap.PAPER, heatmap.HEAT[-1]]


def test_control_characters_of_the_spec_s_text_are_written_as_escapes(tmp_path):
    """A bidi override (U+202E) would flip the text after it on the page, as ESC is noise: both
    are shown as escapes, as in the tables."""
    spec = tmp_path / "net.yaml"
    spec.write_text('name: "red \\x1b[31m flip \\u202e end"\ninput: [[1, -2]]\nlayers: [relu]\n'
                    "loss: squared_error\ntarget: [[0, 1]]\n")
    model = load_model(str(spec))
    text = html.backward(backward_report(model, model.values()), 4)
    assert "\x1b" not in text and "\u202e" not in text
    assert f"{spec} — red \\x1b[31m flip \\u202e end" in Page(text).texts

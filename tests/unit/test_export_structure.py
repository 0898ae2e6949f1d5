"""Markdown and LaTeX exports parse as what they claim: pipe tables with one cell count per table,
balanced bmatrix grids with one & count per row, tabular rows that a \\\\ cannot swallow; and the
LaTeX compiles (when pdflatex is installed)."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from cnngrad.render import latex
from cnngrad.render.grid import format_array
from helpers.cli import invoke

EXAMPLES = [("forward", "configs/seed004_multichannel_3x32x32_six_filters.yaml"),
            ("backward", "configs/seed000_conv_relu_pool_fc_softmax.yaml"),
            ("backward", "configs/seed004_multichannel_3x32x32_six_filters.yaml"),
            ("check", "tests/errata/seed001_kernel_gradient_truncated_deltas.yaml"),
            ("explain", "configs/seed001_kernel_gradient_corrected.yaml", "grad.conv1.kernel[0,1]")]
NUMBER = re.compile(r"-?\d+(\.\d+)?(\\times10\^\{-?\d+\})?|\\mathrm\{NaN\}|-?\\infty")


def export(fmt: str, command: str, *args) -> str:
    result = invoke(command, *args, "--format", fmt)
    assert result.exit_code in (0, 1), result.output
    return result.output


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e[0])
def test_latex_matrices_and_tables_are_well_formed(example):
    text = export("latex", *example)
    assert text.isascii() or example[0] != "explain"
    assert text.count(r"\begin{bmatrix}") == text.count(r"\end{bmatrix}")
    for body in re.findall(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}", text, flags=re.S):
        assert r"\begin{bmatrix}" not in body
        rows = [row.strip() for row in body.split(r"\\")]
        assert len({row.count("&") for row in rows}) == 1
        assert all(NUMBER.fullmatch(cell.strip()) for row in rows for cell in row.split("&"))
    assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}")
    for spec, body in re.findall(r"\\begin\{tabular\}\{([lr]+)\}\n(.*?)\n\\end\{tabular\}", text, flags=re.S):
        for line in body.split("\n"):
            assert line.endswith(r"\\") or line.endswith(r"\\ \hline")
            assert len(re.findall(r"(?<!\\)&", line)) == len(spec) - 1
            assert not line.startswith("[")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e[0])
def test_markdown_tables_have_one_cell_count_and_an_alignment_row(example):
    text = export("markdown", *example)
    tables = [block.split("\n") for block in text.strip().split("\n\n") if block.startswith("|")]
    assert tables
    for lines in tables:
        counts = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
        assert len(counts) == 1
        assert re.fullmatch(r"(\| (---|--:) )+\|", lines[1])


def test_a_latex_row_starting_with_an_index_is_not_read_as_a_length():
    from cnngrad.gradcheck.results import EntryResult, QuantityResult, SpecResult
    entries = [EntryResult((0, 1), 0.25, 0.26, 1e-2, "fail"), EntryResult((1, 0), 0.0, 0.5, 0.5, "kink", 0.0, 1.0)]
    result = SpecResult("net.yaml", None, False, [QuantityResult("conv1.kernel", (2, 2), False, 0.5, 1.0, 1, entries)])
    lines = latex.check([result]).split("\n")
    assert r"{}[0,1] & 0.25 & 0.26 & $1.00\times10^{-2}$ & fail &  &  \\" in lines
    assert not any(line.startswith("[") for line in lines)


NEEDS_PDFLATEX = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")


def compile_latex(fragment: str, folder) -> subprocess.CompletedProcess:
    """pdflatex on ``fragment`` \\input into an article with amsmath, as its header asks."""
    (folder / "fragment.tex").write_text(fragment, encoding="utf-8")
    (folder / "notes.tex").write_text("\\documentclass{article}\n\\usepackage{amsmath}\n"
                                      "\\begin{document}\n\\input{fragment}\n\\end{document}\n")
    return subprocess.run(["pdflatex", "-halt-on-error", "-interaction=nonstopmode", "notes.tex"],
                          cwd=folder, capture_output=True, text=True, errors="replace", timeout=120)


@NEEDS_PDFLATEX
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e[0])
def test_latex_compiles_in_a_minimal_document(example, tmp_path):
    """Every command's LaTeX compiles; no title or table runs into the text next to it (a run-in
    heading such as \\paragraph would)."""
    text = export("latex", *example)
    assert r"\paragraph" not in text
    done = compile_latex(text, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "notes.pdf").stat().st_size > 0


@NEEDS_PDFLATEX
def test_a_large_latex_matrix_compiles_one_row_per_line(tmp_path):
    """84×120 entries in scientific notation (LeNet-5's fc2 weights) are ~236,000 characters: more
    than TeX reads in one line, so each row has its own."""
    values = np.random.default_rng(0).standard_normal((84, 120)) * 1e-5
    fragment = "\n\n".join([latex.HEADER, *latex._quantity(r"\texttt{w}", "w", values, 6)])
    assert max(map(len, fragment.splitlines())) < 5000
    done = compile_latex(fragment, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]


@NEEDS_PDFLATEX
def test_every_escaped_character_compiles(tmp_path):
    """Each special or non-ASCII character the text escapes know (a spec's name may hold any) is
    typeset without an error, once on its own and once in a title; so are control characters."""
    every = "".join(latex._TEXT_ESCAPES) + "\x1b]0;title\x07\x00\x7f\x9b\u202e\u2066\n"
    fragment = "\n\n".join([latex.HEADER, latex._title("net.yaml", f"FC 9->1 | a<b {every}"),
                            latex._line(every)])
    done = compile_latex(fragment, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]


# wide and tall matrices: blocks that fit a page

def reassemble(blocks: list[str], shape) -> np.ndarray:
    """The grid a list of block displays shows, from each block's slice label and its cells."""
    out = np.full(shape, None, dtype=object)
    for block in blocks:
        cells = [[cell.strip() for cell in row.split("&")] for row in
                 re.search(r"\\begin\{bmatrix\}\n(.*?)\n\\end\{bmatrix\}", block, re.S).group(1).split(r" \\" + "\n")]
        place = re.search(r"\[(\d+)\{:\}(\d+)(?:,\\,(\d+)\{:\}(\d+))?\] =", block)
        if place is None:                                  # the whole grid in one display
            rows, columns = slice(None), slice(None)
        elif place.group(3) is None:                       # a block of a vector, as a column
            rows, columns = slice(int(place.group(1)), int(place.group(2))), 0
        else:
            rows = slice(int(place.group(1)), int(place.group(2)))
            columns = slice(int(place.group(3)), int(place.group(4)))
        target = out.reshape(-1, 1) if len(shape) == 1 else out
        assert all(entry is None for entry in np.ravel(target[rows, columns]))       # each entry once
        target[rows, columns] = np.array(cells, dtype=object).reshape(target[rows, columns].shape)
    return out


@pytest.mark.parametrize("shape, scale", [((84, 120), 1e-5), ((32, 32), 1.0), ((400,), 1.0), ((10,), 1.0),
                                          ((3, 4), 1.0), ((3, 7), 1.0), ((45, 3), 1e9)])
def test_a_large_grid_is_split_into_blocks_that_hold_every_entry_once(shape, scale):
    values = np.random.default_rng(1).standard_normal(shape) * scale
    blocks = latex._quantity(latex._partial("fc2.weights"), "fc2.weights", values, 6)[1:]
    expected = np.array([latex._number(text) for text in format_array(values, 6).ravel()]).reshape(shape)
    assert (reassemble(blocks, shape) == expected).all()
    for block in blocks:
        body = re.search(r"\\begin\{bmatrix\}\n(.*?)\n\\end\{bmatrix\}", block, re.S).group(1)
        assert body.count(r"\\") + 1 <= latex.PAGE_ROWS
    if shape in ((3, 4), (10,)):                           # small enough: one display, no slice label
        assert len(blocks) == 1 and "{:}" not in blocks[0]


@NEEDS_PDFLATEX
def test_wide_and_tall_matrices_stay_on_the_page(tmp_path):
    """LeNet-5's grids, wide vectors and long labels: nothing runs off the right edge or the
    bottom of a page (TeX reports an overfull box for either)."""
    rng = np.random.default_rng(2)
    grids = [("fc1.weights", rng.standard_normal((120, 400)) * 1e-3), ("conv1", rng.standard_normal((6, 28, 28))),
             ("flatten1", rng.standard_normal(400)), ("a_long_layer_name.weights", rng.standard_normal((50, 30)) * 1e6),
             ("y", np.array([[np.inf, -np.inf, np.nan] * 8]))]
    fragment = [latex.HEADER]
    for name, values in grids:
        for symbol in (latex._name(name), latex._partial(name), rf"{latex._name(name)} - \eta\,{latex._partial(name)}"):
            fragment += latex._quantity(symbol, name, values, 6)
    done = compile_latex("\n\n".join(fragment), tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    log = (tmp_path / "notes.log").read_text(errors="replace")
    assert "Overfull" not in log, log[log.find("Overfull"):][:500]


# explain: the formula as maths

def test_explain_latex_writes_its_formula_as_maths():
    text = export("latex", *EXAMPLES[-1])
    assert r"\[ \frac{\partial E}{\partial\,\texttt{conv1.kernel}}[0,1] = 0.094119 \]" in text
    assert r"$\partial E/\partial K[d,c,m,n] = \sum_{i,j} \delta [d,i,j] \cdot x[c, s\cdot i + r\cdot m, s\cdot j + r\cdot n]$" in text
    assert "(the input correlated with the deltas)" in text and r"$\delta$ is \texttt{grad.conv1}" in text
    assert "$-0.068186$" in text and r"$\Sigma$" not in text and r"\_\{" not in text


@NEEDS_PDFLATEX
@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext is not installed")
def test_explain_latex_reads_as_maths_in_the_pdf(tmp_path):
    """The PDF's text (pdftotext) has ∂, δ, a true minus sign, and no TeX source left over."""
    result = invoke("explain", EXAMPLES[-1][1], EXAMPLES[-1][2], "--format", "latex", "--precision", "10")
    assert compile_latex(result.output, tmp_path).returncode == 0
    text = subprocess.run(["pdftotext", "notes.pdf", "-"], cwd=tmp_path, capture_output=True, text=True).stdout
    assert "∂E/∂K[d, c, m, n]" in text and "δ[d, i, j]" in text
    assert "−0.06818625" in text and "−0.0061367625" in text        # U+2212, not a hyphen
    assert "\\" not in text and "{i,j}" not in text and "$" not in text


@NEEDS_PDFLATEX
def test_every_layer_and_loss_formula_compiles(tmp_path):
    """One entry of every gradient of networks that hold every layer kind and loss, explained in
    LaTeX, in one document."""
    from test_explain import NETWORKS

    from cnngrad.explain import explain
    from cnngrad.spec import load_model
    fragments = []
    for name, text in NETWORKS.items():
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(text)
        model = load_model(str(spec))
        for quantity, value in model.values().items():
            if quantity.startswith("grad."):
                index = (0,) * np.ndim(value)
                entry = f"{quantity}[{','.join(map(str, index))}]" if index else quantity
                fragments.append(latex.explain(explain(model, entry), 6))
    formulas = [line for fragment in fragments for line in fragment.splitlines() if r"\noindent $\partial E/" in line]
    assert len(formulas) == len(fragments)
    assert all(r"$\Sigma$" not in line and r"\_\{" not in line and "−" not in line for line in formulas)
    done = compile_latex("\n".join(fragments), tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]


@NEEDS_PDFLATEX
def test_the_course_layers_explanations_compile(tmp_path):
    """x̂ of the norms (a combining circumflex) and x₁ + x₂ of add, explained in LaTeX: every
    gradient's first entry of the configs that hold them, in one document."""
    from cnngrad.explain import explain
    from cnngrad.spec import load_model
    from helpers import ROOT
    fragments = []
    for name in ("d2l_layer_norm", "batchnorm_backward_closed_form", "resnet_basic_block"):
        model = load_model(str(ROOT / "configs" / f"{name}.yaml"))
        for quantity, value in model.values().items():
            if quantity.startswith("grad."):
                index = (0,) * np.ndim(value)
                entry = f"{quantity}[{','.join(map(str, index))}]" if index else quantity
                fragments.append(latex.explain(explain(model, entry), 6))
    text = "\n".join(fragments)
    assert r"\hat{x}" in text and "_1" in text and "\u0302" not in text and "₁" not in text
    done = compile_latex(text, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]

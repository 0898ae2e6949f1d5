"""Markdown and LaTeX exports parse as what they claim: pipe tables with one cell count per table,
balanced bmatrix grids with one & count per row, tabular rows that a \\\\ cannot swallow; and the
LaTeX compiles (when pdflatex is installed)."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from cnngrad.cli import cli
from cnngrad.render import latex

EXAMPLES = [("forward", "configs/seed004_multichannel_3x32x32_six_filters.yaml"),
            ("backward", "configs/seed000_conv_relu_pool_fc_softmax.yaml"),
            ("backward", "configs/seed004_multichannel_3x32x32_six_filters.yaml"),
            ("check", "tests/errata/seed001_kernel_gradient_truncated_deltas.yaml"),
            ("explain", "configs/seed001_kernel_gradient_corrected.yaml", "grad.conv1.kernel[0,1]")]
NUMBER = re.compile(r"-?\d+(\.\d+)?(\\times10\^\{-?\d+\})?|\\mathrm\{NaN\}|-?\\infty")


def export(fmt: str, command: str, *args) -> str:
    result = CliRunner().invoke(cli, [command, *args, "--format", fmt])
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
    assert "{}[0,1] & 0.25 & 0.26 & 1.00e-02 & fail &  &  \\\\" in lines
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

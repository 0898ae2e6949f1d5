"""Markdown and LaTeX exports parse as what they claim: pipe tables with one cell count per table,
balanced bmatrix grids with one & count per row, tabular rows that a \\\\ cannot swallow."""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from cnngrad.cli import cli

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
    from cnngrad.render import latex
    entries = [EntryResult((0, 1), 0.25, 0.26, 1e-2, "fail"), EntryResult((1, 0), 0.0, 0.5, 0.5, "kink", 0.0, 1.0)]
    result = SpecResult("net.yaml", None, False, [QuantityResult("conv1.kernel", (2, 2), False, 0.5, 1.0, 1, entries)])
    lines = latex.check([result]).split("\n")
    assert "{}[0,1] & 0.25 & 0.26 & 1.00e-02 & fail &  &  \\\\" in lines
    assert not any(line.startswith("[") for line in lines)

"""On a terminal, grids are a heatmap (red below 0, blue above, stronger with |value|) and check rows
that failed or sit on a kink are highlighted; piped, none of it (tests/cli/test_cli.py checks the bytes)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from cnngrad.gradcheck.results import EntryResult, QuantityResult, SpecResult
from cnngrad.render import table
from cnngrad.render.reports import backward_report
from cnngrad.spec import load_model


@pytest.fixture
def terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLORTERM", "truecolor")


def coloured(text: str) -> dict[str, tuple[int, int, int]]:
    """Each number printed in a 24-bit colour, with that colour."""
    return {number: tuple(map(int, rgb)) for *rgb, number in
            re.findall(r"\x1b\[38;2;(\d+);(\d+);(\d+)m\s*(-?[\d.]+)\x1b\[0m", text)}


def test_grids_are_red_below_zero_blue_above_and_stronger_when_larger(terminal):
    model = load_model("configs/seed001_fc_sigmoid_deltas.yaml")
    colours = coloured(table.backward(backward_report(model, model.values()), 4))
    largest, smaller, negative = colours["0.1625"], colours["0.1375"], colours["-0.0975"]
    assert largest == table.HEAT[1]                       # the largest |value| of its grid: full blue
    assert largest[2] > smaller[2] and largest[0] < smaller[0]
    assert negative[0] > negative[2]                      # red
    assert colours["0.2800"] == table.HEAT[1] and colours["-0.2755"][0] > 225   # grad.flatten1: near its largest


def test_heat_fades_to_grey_and_leaves_zero_plain():
    assert table._heat(0.0, 2.0) == ""
    assert table._heat(1e-12, 2.0) == "rgb({},{},{})".format(*table.HEAT_FLOOR)
    assert table._heat(-2.0, 2.0) == "rgb({},{},{})".format(*table.HEAT[-1])
    assert table._heat(np.inf, 2.0) == "bold magenta" == table._heat(np.nan, 0.0)


def test_check_rows_that_fail_or_sit_on_a_kink_are_highlighted(terminal):
    entries = [EntryResult((0, 1), 0.25, 0.26, 1e-2, "fail"), EntryResult((1, 0), 0.0, 0.5, 0.5, "kink", 0.0, 1.0, notable=True)]
    result = SpecResult("net.yaml", None, False, [QuantityResult("conv1.kernel", (2, 2), False, 0.5, 1.0, 1, entries)])
    lines = table.check([result]).splitlines()
    failed = next(line for line in lines if "[0,1]" in line)
    kink = next(line for line in lines if "[1,0]" in line)
    assert re.search(r"\x1b\[31m\[0,1\].*\x1b\[31m +0\.25", failed)      # the whole row red
    assert re.search(r"\x1b\[33m\[1,0\].*\x1b\[33m +0\.5", kink)         # the whole row yellow

"""Large grids: formatted fast and exactly as one number at a time would be, elided on a terminal
to its width and height (first and last rows and columns, ``…`` between), whole with ``--full``."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

from cnngrad.render import fit, plain, table
from cnngrad.render.grid import FORMAT_CHUNK, format_array
from helpers.cli import invoke as run

WIDE = "configs/seed004_multichannel_3x32x32_six_filters.yaml"
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def reference_format(values, precision):
    """The documented rule, one entry at a time: fixed unless a nonzero |entry| < 1e-4 or ≥ 1e8,
    the fewest decimals (at least 1, at most ``precision``) that every finite entry needs."""
    values = [float(v) + 0.0 for v in np.ravel(values)]
    finite = [abs(v) for v in values if np.isfinite(v)]
    nonzero = [v for v in finite if v > 0]
    code = "e" if nonzero and (min(nonzero) < 1e-4 or max(nonzero) >= 1e8) else "f"
    needed = 0
    for v in finite:
        mantissa = f"{v:.{precision}{code}}".split("e")[0]
        if "." in mantissa:
            needed = max(needed, len(mantissa.rstrip("0").split(".")[1]))
    digits = min(max(needed, 1), precision)
    out = []
    for v in values:
        if np.isnan(v):
            out.append("nan")
        elif np.isinf(v):
            out.append("inf (overflow)" if v > 0 else "-inf (overflow)")
        else:
            text = f"{v:.{digits}{code}}"
            out.append(text[1:] if text.startswith("-") and float(text) == 0 else text)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_grid_format_is_the_entry_by_entry_rule(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 3 * FORMAT_CHUNK)) if seed % 4 == 0 else int(rng.integers(1, 40))
    values = [rng.standard_normal(size), rng.standard_normal(size) * 10.0 ** rng.integers(-9, 10, size),
              np.round(rng.standard_normal(size), int(rng.integers(0, 7))),
              -rng.random(size) * 10.0 ** -rng.integers(0, 7, size)][seed % 4]
    if seed % 3 == 0:
        values[rng.integers(0, size)] = [np.nan, np.inf, -np.inf, -0.0][seed % 4]
    if seed % 5 == 0:
        values[-1] = 0.123456789                   # the only entry that needs every decimal, last
    for precision in (0, 1, 3, 6, 10, 17):
        assert format_array(values, precision).tolist() == reference_format(values, precision)


def terminal(columns=80, lines=24):
    """A terminal of that size, with 24-bit colour (rich keeps the codes of a style from the first
    colour system it met, so every in-process test uses the same one)."""
    return {"TTY_COMPATIBLE": "1", "FORCE_COLOR": "1", "COLORTERM": "truecolor", "COLUMNS": str(columns),
            "LINES": str(lines)}


@pytest.mark.parametrize("columns, lines", [(80, 24), (60, 40), (132, 50)])
def test_on_a_terminal_wide_and_tall_grids_fit_it(columns, lines):
    result = run("forward", WIDE, env=terminal(columns, lines))
    assert result.exit_code == 0
    text = COLOUR.sub("", result.stdout).splitlines()
    assert max(len(line) for line in text[1:] if "not shown" not in line) <= columns   # [0]: the title
    assert any("--full shows every entry" in line for line in text)
    start = text.index("input[0]")
    grid = text[start + 1:text.index("input[1]")]
    assert len(grid) <= lines
    assert grid[0].split()[:2] == ["0", "1"] and grid[0].split()[-1] == "31" and "…" in grid[0].split()


def test_full_shows_every_entry_on_a_terminal():
    text = COLOUR.sub("", run("forward", WIDE, "--full", env=terminal()).stdout)
    assert "…" not in text and "not shown" not in text
    header = text.splitlines()[text.splitlines().index("input[0]") + 1]
    assert header.split() == [str(j) for j in range(32)]


def test_the_elided_grid_shows_the_right_entries_in_the_right_places():
    values = np.add.outer(np.arange(40.0), np.arange(30.0) / 1000)       # entry [i, j] = i.0jj
    parts = table._quantity("x", "x", values, 3, fit.Budget(60, 20))
    grid = next(part for part in parts if getattr(part, "is_grid", False))
    lines = plain.render([grid]).splitlines()
    header = lines[0].split()
    assert header[:2] == ["0", "1"] and header[-2:] == ["28", "29"] and "…" in header
    for line in lines[2:]:
        cells = line.split()
        if cells[0] == "…":
            assert set(cells) == {"…"}
            continue
        i = int(cells[0])
        expected = [f"{i + j / 1000:.3f}" if title != "…" else "…" for title, j in
                    zip(header, [int(t) if t != "…" else -1 for t in header])]
        assert cells[1:] == expected
    shown = [int(line.split()[0]) for line in lines[2:] if line.split()[0] != "…"]
    assert shown == list(range(7)) + list(range(34, 40))      # 20 lines − 6 for the titles − the … row
    note = next(part for part in parts if not part.is_table and "not shown" in part.spans[0][0])
    assert note.spans[0][0] == "rows 7–33 and columns 3–26 not shown (--full shows every entry)"
    assert max(map(len, lines)) == 60                          # 6 columns of 6 fit 60, 7 would not


def test_a_terminal_shows_the_first_and_last_grids_of_many(tmp_path):
    spec = tmp_path / "bank.yaml"
    spec.write_text("input: {random: {shape: [6, 8, 8], seed: 1}}\nlayers:\n"
                    "  - conv: {kernel: {random: {shape: [16, 6, 3, 3], seed: 2}}, bias: 0}\n"
                    "loss: none\nupstream_grad: {random: {shape: [16, 6, 6], seed: 3}}\n")
    text = COLOUR.sub("", run("backward", str(spec), env=terminal(200, 60)).stdout).splitlines()
    titles = [line for line in text if line.startswith("grad.conv1.kernel[")]
    assert titles == [f"grad.conv1.kernel[{d},{c}]" for d, c in [(0, 0), (0, 1), (0, 2), (15, 3), (15, 4), (15, 5)]]
    assert "… 90 more grids, grad.conv1.kernel[0,3] to grad.conv1.kernel[15,2] (--full shows them)" in text
    assert len([line for line in COLOUR.sub("", run("backward", str(spec), "--full", env=terminal()).stdout)
                .splitlines() if line.startswith("grad.conv1.kernel[")]) == 96
    piped = run("backward", str(spec)).stdout                # piped: small grids stay whole
    assert "…" not in piped and piped.count("grad.conv1.kernel[") == 96


def test_piped_output_is_whole_up_to_ten_thousand_entries_per_grid(tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text("input: {random: {shape: [101, 100], seed: 1}}\nlayers: [relu]\n"
                    "loss: none\nupstream_grad: {random: {shape: [101, 100], seed: 2}}\n")
    text = run("forward", str(spec)).stdout
    assert "rows 9–92 and columns 2–97 not shown (--full shows every entry)" in text
    assert max(map(len, text.splitlines()[1:])) <= 80
    whole = run("forward", str(spec), "--full").stdout
    assert "…" not in whole and len(whole.splitlines()) > 300
    spec.write_text(spec.read_text().replace("101", "100"))
    assert "…" not in run("forward", str(spec)).stdout


def test_the_heatmap_colours_an_elided_grid_from_its_whole_range():
    values = np.zeros((40, 40))
    values[20, 20] = 10.0                                     # hidden by the elision, yet the largest
    values[0, 0], values[39, 39] = 5.0, -10.0
    grid = next(p for p in table._quantity("x", "x", values, 1, fit.Budget(60, 20)) if getattr(p, "is_grid", False))
    heats = table._heats(grid.values, grid.largest)
    assert heats[0] == "rgb({},{},{})".format(*np.rint((np.array(table.HEAT_FLOOR) + table.HEAT[1]) / 2).astype(int))
    assert heats[-1] == "rgb({},{},{})".format(*table.HEAT[-1])
    assert "" in heats                                      # zeros stay uncoloured
    cells = [cell for column in table._rich_grid(grid).columns for cell in column._cells]
    assert [cell for cell in cells if str(cell) == "…"] == ["…"] * (len(grid.header) + len(grid.index))
    assert all(type(cell) is str for cell in cells if str(cell) == "…")         # nor do the … cells


@pytest.mark.parametrize("seed", range(60))
def test_number_grids_lay_out_as_rich_lays_them_out(seed):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(tuple(rng.integers(1, 12, 2))) * 10.0 ** rng.integers(-3, 4)
    if seed % 2:
        values = values[:1].ravel()
    room = fit.Budget(int(rng.integers(20, 120)), int(rng.integers(8, 30))) if seed % 3 else None
    parts = table._quantity("x", "x", values, int(rng.integers(0, 8)), room)
    assert plain.render(parts) == table._render_with_rich(parts)


@pytest.mark.slow
def test_a_million_entry_grid_prints_in_seconds(tmp_path):
    """A 1000×1000 forward took 36 s (40 µs an entry); whole (--full) it is now a few seconds."""
    spec = tmp_path / "million.yaml"
    spec.write_text("input: {random: {shape: [1000, 1000], seed: 1}}\nlayers: [relu]\n"
                    "loss: none\nupstream_grad: {random: {shape: [1000, 1000], seed: 2}}\n")
    started = time.process_time()
    result = run("forward", str(spec), "--full")
    assert result.exit_code == 0
    assert time.process_time() - started < 12
    assert len(result.stdout.splitlines()) > 3000

"""Every failing entry of an ``expect:`` value: the table lists up to 10, JSON all of them."""
from __future__ import annotations

import json

import numpy as np

from helpers.cli import invoke

# one 4×4 input through relu: grad.input = upstream_grad where the input is positive, else 0
INPUT = np.arange(16.0).reshape(4, 4) - 0.5     # only [0,0] is negative
UPSTREAM = np.arange(1.0, 17.0).reshape(4, 4)


def spec(expected: np.ndarray) -> str:
    return (f"input: {INPUT.tolist()}\nlayers: [relu]\nloss: none\nupstream_grad: {UPSTREAM.tolist()}\n"
            f"expect:\n  tolerance: 1e-9\n  grad.input: {expected.tolist()}\n")


def run(tmp_path, text: str, *options):
    path = tmp_path / "net.yaml"
    path.write_text(text)
    return invoke("check", str(path), *options)


def test_the_table_lists_ten_failing_entries_then_counts_the_rest(tmp_path):
    expected = UPSTREAM.copy()
    expected[0, 0] = 0.0                       # the true value there
    wrong = expected + 0.25                    # every entry off by 0.25: 16 failing
    result = run(tmp_path, spec(wrong))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    start = lines.index("failing entries of grad.input")
    rows = [line.split() for line in lines[start:] if line.startswith("[")]
    assert len(rows) == 10
    assert rows[0] == ["[0,0]", "0.25", "0", "0.25"]
    assert rows[1] == ["[0,1]", "2.25", "2", "0.25"]
    assert "… and 6 more" in result.stdout


def test_json_lists_every_failing_entry_with_expected_computed_and_difference(tmp_path):
    wrong = UPSTREAM.copy()
    wrong[0, 0] = 0.0
    wrong[1, 2] += 1e-3
    wrong[3, 3] -= 2.0
    doc = json.loads(run(tmp_path, spec(wrong), "--format", "json").stdout)
    (entry,) = doc["specs"][0]["expect"]
    assert entry["failing"] == [
        {"index": [1, 2], "expected": 7.001, "computed": 7.0, "difference": 7.001 - 7.0},
        {"index": [3, 3], "expected": 14.0, "computed": 16.0, "difference": -2.0}]


def test_a_passing_value_has_no_failing_entries(tmp_path):
    right = UPSTREAM.copy()
    right[0, 0] = 0.0
    result = run(tmp_path, spec(right), "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["specs"][0]["expect"][0]["failing"] == []


def test_an_indexed_entry_is_indexed_within_its_quantity(tmp_path):
    text = spec(UPSTREAM).replace("grad.input: ", "grad.input[0,0]: 3\n  unused: ").split("  unused")[0]
    doc = json.loads(run(tmp_path, text, "--format", "json").stdout)
    assert doc["specs"][0]["expect"][0]["failing"] == [
        {"index": [0, 0], "expected": 3.0, "computed": 0.0, "difference": 3.0}]

"""Peak memory of a large check (issue 18): the JSON document is written in pieces as it is made,
so a million entries (165 MB of text) cost about what the check itself costs, not five times it.
Measured as the maximum resident set size of the installed command in a fresh process."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

MiB = 1 << 20
FC_MILLION = """name: fc 1000-1000-10
input: {random: {shape: [1000], distribution: uniform, scale: 1.0, seed: 1}}
layers:
  - fc: {weights: {random: {shape: [1000, 1000], scale: 0.045, seed: 2}}, bias: {random: {shape: [1000], seed: 3}}}
  - relu
  - fc: {weights: {random: {shape: [10, 1000], scale: 0.045, seed: 4}}, bias: {random: {shape: [10], seed: 5}}}
  - softmax
loss: cross_entropy
target: 3
"""


def peak_memory(args, out) -> tuple[int, int]:
    """Exit code and maximum resident set size (bytes) of ``python -m cnngrad ARGS`` writing to ``out``."""
    child = subprocess.Popen([sys.executable, "-m", "cnngrad", *args], stdout=out, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024


@pytest.mark.slow
def test_json_of_a_million_entries_costs_what_the_table_costs(tmp_path):
    spec = tmp_path / "fc.yaml"
    spec.write_text(FC_MILLION)
    with open(tmp_path / "out.txt", "wb") as out:
        code, table = peak_memory(["check", str(spec), "--max-work", "1e15"], out)
    assert code == 0
    with open(tmp_path / "out.json", "wb") as out:
        code, document = peak_memory(["check", str(spec), "--max-work", "1e15", "--format", "json"], out)
    text = (tmp_path / "out.json").read_bytes()
    assert code == 0 and text.startswith(b'{"passed": true, "specs": [') and text.endswith(b"}]}\n")
    assert text.count(b'"status": "ok"') == 1_000_000 + 1000 + 10_000 + 10 + 1000
    assert len(text) > 150 * MiB and document < table + 100 * MiB < 512 * MiB   # was 1.2 GiB


@pytest.mark.slow
def test_a_table_of_many_large_specs_keeps_no_entries_of_those_printed(tmp_path):
    """Each spec's table is printed as soon as it is checked; its 2M entries' verdicts (54 MB) are
    not kept for the total line, so five such specs peak as two do (the second adds what the
    allocator keeps of the first's freed arrays)."""
    spec = FC_MILLION.replace("[1000, 1000]", "[2000, 1000]").replace("[1000], seed: 3", "[2000], seed: 3") \
                     .replace("[10, 1000]", "[10, 2000]")
    peaks = []
    for count in (2, 5):
        folder = tmp_path / str(count)
        folder.mkdir()
        for k in range(count):
            (folder / f"fc{k}.yaml").write_text(spec)
        with open(os.devnull, "wb") as out:
            code, peak = peak_memory(["check", str(folder), "--max-work", "1e15", "-j", "1"], out)
        assert code == 0
        peaks.append(peak)
    assert peaks[1] < peaks[0] + 20 * MiB      # each spec kept its verdicts: + 160 MiB

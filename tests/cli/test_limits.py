"""Resource limits through the command line: each is a clear one-line error (exit 2, naming the
file, the place and the option that raises it), and --max-entries / --max-file-size /
--max-yaml-nodes change them for forward, backward, check and explain. Every run is under
tests/helpers/cli.py's hang guard."""
from __future__ import annotations

import pytest

from helpers import cli
from helpers.cli import run_text

VECTOR_NET = """\
input: [1, 2, 3, 4]
layers:
  - fc: {weights: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], bias: [0, 0, 0, 0]}
  - fc: {weights: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], bias: [0, 0, 0, 0]}
  - fc: {weights: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], bias: [0, 0, 0, 0]}
loss: none
upstream_grad: [1, 1, 1, 1]
"""   # 68 entries in all (4 + 3·(16 + 4) + 4), none in an array larger than 16
COMMANDS = [["forward"], ["backward"], ["check", "--fast"], ["explain", "grad.input[0]"]]


def error_line(outcome) -> str:
    assert outcome.exit_code == 2, outcome.stdout
    (line,) = outcome.stderr.splitlines()
    return line


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_max_entries_sets_the_array_limit_and_four_times_it_for_all_values(tmp_path, command):
    assert run_text(tmp_path, VECTOR_NET, command).exit_code == 0                    # the defaults
    line = error_line(run_text(tmp_path, VECTOR_NET, command, "--max-entries", "15"))
    assert "net.yaml:3:19: layers[0].fc.weights: an array of shape 4×4 has 16 entries, more than " \
           "the limit of 15" in line and "--max-entries" in line
    # every array fits 16, but 68 entries in all exceed 4·16: blamed at the value that tips it
    line = error_line(run_text(tmp_path, VECTOR_NET, command, "--max-entries", "16"))
    assert "net.yaml:7:16: upstream_grad: the spec's values have more than 64 entries in all" in line
    assert run_text(tmp_path, VECTOR_NET, command, "--max-entries", "17").exit_code == 0


def test_a_layer_output_over_max_entries_names_the_layer(tmp_path):
    spec = "input: [[1, 2], [3, 4]]\nlayers:\n  - conv: {kernel: [[1]], padding: 10}\n" \
           "loss: none\nupstream_grad: {random: {shape: [22, 22]}}\n"     # conv1 is 22×22 = 484
    assert run_text(tmp_path, spec, ["forward"], "--max-entries", "484").exit_code == 0
    line = error_line(run_text(tmp_path, spec, ["forward"], "--max-entries", "483"))
    assert "net.yaml:3:" in line and "layers[0]" in line and "--max-entries" in line


def test_a_random_shape_beyond_the_default_is_refused_before_allocating(tmp_path):
    spec = "input: {random: {shape: [1000000, 1000000]}}\nlayers: [relu]\nloss: none\nupstream_grad: 1\n"
    for command in COMMANDS[:3]:
        line = error_line(run_text(tmp_path, spec, command))
        assert "input.random.shape" in line and "1000000000000 entries" in line
        assert "limit of 5000000" in line and "--max-entries" in line


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_max_file_size_refuses_and_admits_a_large_file(tmp_path, command):
    big = VECTOR_NET + "description: '" + "x" * (1 << 20) + "'\n"      # just over 1 MiB
    line = error_line(run_text(tmp_path, big, command))
    assert f"net.yaml: the file has {len(big)} bytes, larger than 1048576 bytes" in line
    assert "--max-file-size" in line
    assert run_text(tmp_path, big, command, "--max-file-size", str(2 << 20)).exit_code == 0
    line = error_line(run_text(tmp_path, VECTOR_NET, command, "--max-file-size", "100"))
    assert "larger than 100 bytes" in line


def test_an_alias_bomb_is_refused_and_a_larger_file_size_does_not_let_it_through(tmp_path):
    bomb = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = "\n".join(bomb) + "\ninput: *a8\nlayers: [relu]\n"           # 10^9 numbers once expanded
    for options in ([], ["--max-file-size", str(2 << 20)], ["--max-file-size", str(10 ** 10)]):
        line = error_line(run_text(tmp_path, text, ["forward"], *options))
        assert "expands to more than 1000000 YAML nodes" in line and "--max-yaml-nodes" in line


def _nested_bomb(levels: int) -> str:
    """A literal whose every level is ten copies (one anchored, nine aliases) of the level below:
    10**(levels + 1) numbers from a text of about 30·levels characters."""
    text = "&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"
    for i in range(1, levels + 1):
        text = f"&a{i} [{text}, {', '.join([f'*a{i - 1}'] * 9)}]"
    return f"input: {text}\nlayers: [relu]\n"


@pytest.mark.parametrize("command", COMMANDS[:3], ids=lambda c: c[0])
def test_max_yaml_nodes_sets_the_node_budget_alone(tmp_path, command):
    line = error_line(run_text(tmp_path, VECTOR_NET, command, "--max-yaml-nodes", "20"))
    assert "net.yaml:3:" in line and "expands to more than 20 YAML nodes" in line and "--max-yaml-nodes" in line
    assert run_text(tmp_path, VECTOR_NET, command, "--max-yaml-nodes", "200").exit_code == 0


def test_a_raised_node_budget_still_stops_an_alias_bomb_at_the_entry_limit(tmp_path):
    """10^8 numbers with nodes allowed: copying the aliases stops at --max-entries, not in swap."""
    line = error_line(run_text(tmp_path, _nested_bomb(7), ["forward"], "--max-yaml-nodes", str(10 ** 9),
                               "--max-file-size", str(10 ** 10)))
    assert "net.yaml:1:" in line and "input" in line and "more than 5000000 entries" in line
    assert "--max-entries" in line


def test_nesting_beyond_64_levels_is_refused(tmp_path):
    deep = "input: " + "[" * 100 + "1" + "]" * 100 + "\nlayers: [relu]\n"
    line = error_line(run_text(tmp_path, deep, ["forward"]))
    assert "net.yaml:1:" in line and "nested more than 64 levels deep" in line


def test_the_options_reject_nonsense():
    for value in ("0", "-5", "lots"):
        outcome = cli.run_in_process(["forward", "x.yaml", "--max-entries", value])
        assert outcome.exit_code == 2 and "--max-entries" in outcome.stderr

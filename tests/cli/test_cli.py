"""The command line through click's CliRunner and through the installed ``cnngrad`` entry point.

The forward/backward numbers are seed 001's hand-worked values.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from cnngrad import __version__
from helpers.cli import cnngrad_script, invoke as run

KERNEL_SPEC = """\
name: seed 001 kernel example
input:
  - [0.51, 0.90, 0.88, 0.84, 0.05]
  - [0.40, 0.62, 0.22, 0.59, 0.10]
  - [0.11, 0.20, 0.74, 0.33, 0.14]
  - [0.47, 0.01, 0.85, 0.70, 0.09]
  - [0.76, 0.19, 0.72, 0.17, 0.57]
layers:
  - conv:
      kernel: [[-0.13, 0.15], [0.24, 0.12]]
      bias: 0
loss: none
upstream_grad:
  - [0, 0, 0.0686, 0]
  - [0, 0.0364, 0, 0]
  - [0, 0.0467, 0, 0]
  - [0, 0, 0, -0.0681]
"""
LOGITS = [repr(math.log(p / (1 - p))) for p in (0.58, 0.57, 0.65, 0.55)]
FC_SPEC = f"""\
input: [[{LOGITS[0]}, {LOGITS[1]}], [{LOGITS[2]}, {LOGITS[3]}]]
layers:
  - sigmoid
  - flatten
  - fc:
      weights: [[0.61, 0.82, 0.96, -1.0], [0.02, -0.5, 0.23, 0.17]]
loss: none
upstream_grad: [0.25, -0.15]
"""
INPUT = [[0.51, 0.9, 0.88, 0.84, 0.05], [0.4, 0.62, 0.22, 0.59, 0.1], [0.11, 0.2, 0.74, 0.33, 0.14],
         [0.47, 0.01, 0.85, 0.7, 0.09], [0.76, 0.19, 0.72, 0.17, 0.57]]
KERNEL = [[-0.13, 0.15], [0.24, 0.12]]
KERNEL_GRAD = [[0.044606, 0.094061], [0.011262, 0.068288]]
FC_INPUT_GRAD = [[0.0364182, 0.068628], [0.04675125, -0.06818625]]


@pytest.fixture
def specs(tmp_path):
    """The two seed examples as files, and an invalid one."""
    (tmp_path / "kernel.yaml").write_text(KERNEL_SPEC)
    (tmp_path / "fc.yaml").write_text(FC_SPEC)
    (tmp_path / "bad.yaml").write_text(KERNEL_SPEC.replace("[-0.13, 0.15]", "[-0.13, 0.15, 0.2]"))
    return tmp_path


def run_installed(*args, env=None):
    """The real entry point in a subprocess, stdout and stderr piped."""
    environment = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    environment.update(env or {})
    return subprocess.run([cnngrad_script(), *map(str, args)], capture_output=True, text=True, env=environment)


def conv_valid(x, k):
    """Reference cross-correlation for the test, written as plainly as possible."""
    x, k = np.array(x), np.array(k)
    rows, cols = x.shape[0] - k.shape[0] + 1, x.shape[1] - k.shape[1] + 1
    return [[float((x[i:i + 2, j:j + 2] * k).sum()) for j in range(cols)] for i in range(rows)]


# version and help

def test_version():
    assert run("--version").output == f"cnngrad, version {__version__}\n"
    done = run_installed("--version")
    assert (done.returncode, done.stdout) == (0, f"cnngrad, version {__version__}\n")


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["check", "--help"]])
def test_help_and_version_import_neither_numpy_nor_rich(args):
    code = ("import sys\nfrom cnngrad.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "print('numpy' in sys.modules, 'rich' in sys.modules, file=sys.stderr)" % args)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stderr.strip().splitlines()[-1] == "False False"


def test_check_imports_no_dataclasses(specs):
    """Data classes compile their methods at import, ~10% of a small check; cnngrad.record instead."""
    code = ("import sys\nfrom cnngrad.cli import main\ntry:\n    main(['check', %r])\nexcept SystemExit:\n"
            "    pass\nprint('dataclasses' in sys.modules, file=sys.stderr)" % str(specs / "kernel.yaml"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "passed" in done.stdout and done.stderr.strip().splitlines()[-1] == "False"


def test_check_help_names_the_richardson_differences_the_checker_uses():
    text = " ".join(run("check", "--help").output.split())
    assert "Richardson" in text


def test_check_help_states_the_checker_defaults():
    from cnngrad.gradcheck import DEFAULT_ATOL, DEFAULT_EPS, DEFAULT_RTOL
    text = " ".join(run("check", "--help").output.split())
    stated = {option: float(value) for option, value in
              re.findall(r"--(eps|rtol|atol) \w+ .*?\[default: ([\d.e+-]+)\]", text)}
    assert stated == {"eps": DEFAULT_EPS, "rtol": DEFAULT_RTOL, "atol": DEFAULT_ATOL}


# forward and backward JSON against the hand numbers

def test_forward_json_of_the_kernel_example(specs):
    result = run("forward", specs / "kernel.yaml", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["spec"].endswith("kernel.yaml") and doc["name"] == "seed 001 kernel example"
    assert doc["loss"] is None
    (layer,) = doc["layers"]
    assert (layer["name"], layer["type"], layer["shape"]) == ("conv1", "conv", [4, 4])
    np.testing.assert_allclose(layer["output"], conv_valid(INPUT, KERNEL), atol=1e-15)
    assert layer["output"][0][0] == pytest.approx(0.2391)
    assert doc["output"] == layer["output"]


def test_backward_json_of_the_kernel_example(specs):
    result = run("backward", specs / "kernel.yaml", "--format", "json")
    assert result.exit_code == 0, result.output
    gradients = json.loads(result.stdout)["gradients"]
    assert list(gradients) == ["grad.conv1", "grad.conv1.kernel", "grad.conv1.bias", "grad.input"]
    np.testing.assert_allclose(gradients["grad.conv1.kernel"], KERNEL_GRAD, atol=1e-15)
    assert gradients["grad.conv1.bias"] == pytest.approx(0.0836, abs=1e-15)
    np.testing.assert_allclose(gradients["grad.conv1"], [[0, 0, 0.0686, 0], [0, 0.0364, 0, 0],
                                                    [0, 0.0467, 0, 0], [0, 0, 0, -0.0681]])


def test_backward_json_of_the_fc_example_through_the_installed_command(specs):
    done = run_installed("backward", specs / "fc.yaml", "--format", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    np.testing.assert_allclose(doc["gradients"]["grad.input"], FC_INPUT_GRAD, atol=1e-12)
    np.testing.assert_allclose(doc["gradients"]["grad.fc1"], [0.25, -0.15])
    assert done.stderr == ""


def test_forward_json_of_the_fc_example_restores_the_sigmoid_outputs(specs):
    doc = json.loads(run("forward", specs / "fc.yaml", "--format", "json").stdout)
    assert [layer["name"] for layer in doc["layers"]] == ["sigmoid1", "flatten1", "fc1"]
    np.testing.assert_allclose(doc["layers"][1]["output"], [0.58, 0.57, 0.65, 0.55], atol=1e-15)


def test_lr_adds_the_sgd_step(specs):
    doc = json.loads(run("backward", specs / "kernel.yaml", "--format", "json", "--lr", "0.1").stdout)
    assert doc["lr"] == 0.1
    np.testing.assert_allclose(doc["updated"]["conv1.kernel"],
                               np.array(KERNEL) - 0.1 * np.array(KERNEL_GRAD))
    text = run("backward", specs / "kernel.yaml", "--lr", "0.1").stdout
    assert "conv1.kernel − 0.1·grad.conv1.kernel  2×2" in text


def test_spec_from_standard_input():
    result = run("backward", "-", "--format", "json", input=KERNEL_SPEC)
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(json.loads(result.stdout)["gradients"]["grad.conv1.kernel"], KERNEL_GRAD)


# tables, markdown, latex

def test_forward_table_shows_summary_grids_and_loss(specs):
    text = run("forward", specs / "kernel.yaml").stdout
    assert re.search(r"conv1\s+conv\s+4×4\s+5", text)
    assert re.search(r"^conv1  4×4$", text, re.M)
    assert re.search(r"^0\s+0\.2391\s+0\.1902\s+0\.1352\s+0\.0519$", text, re.M)
    assert "loss: none" in text


def test_backward_table_titles_use_quantity_names(specs):
    text = run("backward", specs / "kernel.yaml", "--precision", "3").stdout
    assert [line.split()[0] for line in text.splitlines() if line.startswith("grad.")] == [
        "grad.conv1", "grad.conv1.kernel", "grad.conv1.bias", "grad.input"]
    assert re.search(r"^0\s+0\.045\s+0\.094$", text, re.M)


@pytest.mark.parametrize("command", ["forward", "backward"])
def test_markdown_and_latex(specs, command):
    md = run(command, specs / "fc.yaml", "--format", "markdown").stdout
    assert "| **0** |" in md and md.startswith("# ")
    tex = run(command, specs / "fc.yaml", "--format", "latex").stdout
    assert r"\begin{bmatrix}" in tex and "\x1b" not in tex


@pytest.mark.parametrize("env", [{}, {"NO_COLOR": "1"}])
@pytest.mark.parametrize("command", ["forward", "backward", "check"])
def test_piped_table_output_has_no_escape_codes(specs, command, env):
    done = run_installed(command, specs / "kernel.yaml", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout and "\x1b" not in done.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.parametrize("no_color", [False, True])
def test_a_terminal_gets_colour_unless_no_color_is_set(specs, no_color):
    import pty
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    env["TERM"] = "xterm-256color"
    if no_color:
        env["NO_COLOR"] = "1"
    leader, follower = pty.openpty()
    process = subprocess.Popen([cnngrad_script(), "check", str(specs / "kernel.yaml")],
                               stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait()
    os.close(leader)
    text = b"".join(chunks).decode()
    colours = [p for code in re.findall(r"\x1b\[([\d;]*)m", text) for p in code.split(";")
               if p and (30 <= int(p) <= 38 or 90 <= int(p) <= 97)]
    assert bool(colours) is not no_color
    if no_color:                                # NO_COLOR: plain text, no bold or dim either
        assert "\x1b" not in text and "passed" in text


# errors

def test_an_invalid_spec_is_one_error_line_and_exit_2(specs):
    result = run("forward", specs / "bad.yaml")
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert re.match(r"error: .*bad\.yaml:\d+:\d+: layers\[0\]\.conv\.kernel: ", line)
    done = run_installed("backward", specs / "bad.yaml")
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_missing_file_is_exit_2(tmp_path):
    result = run("forward", tmp_path / "missing.yaml")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "missing.yaml" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_bad_option_is_exit_2(specs):
    assert run("forward", specs / "kernel.yaml", "--format", "yaml").exit_code == 2
    assert run("forward", specs / "kernel.yaml", "--precision", "-1").exit_code == 2
    assert run("check", specs / "kernel.yaml", "--eps", "0").exit_code == 2
    assert run("frobnicate").exit_code == 2


def test_debug_shows_the_traceback(specs):
    done = run_installed("--debug", "forward", specs / "bad.yaml")
    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr and "SpecError" in done.stderr


def test_python_dash_m_runs_the_same_command():
    done = subprocess.run([sys.executable, "-m", "cnngrad", "--version"], capture_output=True, text=True)
    assert done.stdout == f"cnngrad, version {__version__}\n"


# usage errors, options anywhere, messages

@pytest.mark.parametrize("args, named", [
    (["forward", "{kernel}", "--formt", "json"], ["--formt", "--format"]),
    (["forward", "{kernel}", "--format", "yaml"], ["--format", "yaml"]),
    (["forward", "{kernel}", "--precision", "-1"], ["--precision"]),
    (["forward"], ["SPEC"]),
    (["frobnicate"], ["frobnicate"]),
    (["chek", "{kernel}"], ["chek", "check"]),
    (["explain", "{kernel}"], ["QUANTITY"]),
    (["check", "{kernel}", "--eps"], ["--eps"]),
    (["--frobnicate"], ["--frobnicate"]),
])
def test_a_usage_error_is_one_error_line_naming_what_is_wrong(specs, args, named):
    result = run(*(a.format(kernel=specs / "kernel.yaml") for a in args))
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "Usage:" not in line
    assert all(word in line for word in named), line
    assert "--help" in line                      # where to read what to write


@pytest.mark.parametrize("option", ["--max-file-size", "--max-entries", "--precision"])
@pytest.mark.parametrize("value", ["99999999999999999999999", "-99999999999999999999999", "1e3", "0x10"])
def test_a_huge_or_malformed_integer_option_is_a_usage_error(specs, option, value):
    result = run("forward", specs / "kernel.yaml", option, value)
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and option in line and "internal error" not in line


@pytest.mark.parametrize("command, option", [("check", "--eps"), ("check", "--rtol"), ("check", "--atol"),
                                             ("backward", "--lr")])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "-1e400"])
def test_a_non_finite_number_option_is_one_error_line_naming_it(specs, command, option, value):
    result = run(command, specs / "kernel.yaml", option, value)
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and option in line


def test_help_is_still_the_full_help(specs):
    result = run("forward", "--help")
    assert result.exit_code == 0 and result.stdout.startswith("Usage: ") and "--precision" in result.stdout


@pytest.mark.parametrize("args", [["forward", "{bad}", "--debug"], ["forward", "--debug", "{bad}"],
                                  ["--debug", "forward", "{bad}"]])
def test_debug_is_accepted_anywhere(specs, args):
    done = run_installed(*(a.format(bad=specs / "bad.yaml") for a in args))
    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr and "SpecError" in done.stderr


def test_debug_after_a_separator_is_an_argument(specs):
    result = run("forward", "--", "--debug")
    assert result.exit_code == 2
    assert "--debug: file not found" in result.stderr


def test_init_into_a_folder_says_it_is_a_folder_and_what_to_write(tmp_path):
    result = run("init", tmp_path)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "is a folder" in line and str(tmp_path / "net.yaml") in line
    assert list(tmp_path.iterdir()) == []


def test_an_internal_error_names_the_spec_file(specs, monkeypatch):
    from cnngrad.model import Model

    def broken(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(Model, "values", broken)
    result = run("forward", specs / "kernel.yaml")
    assert result.exit_code == 2
    assert result.stderr == (f"error: {specs / 'kernel.yaml'}: internal error: RuntimeError: boom "
                             "(run with --debug for the traceback)\n")
    result = run("forward", "-", input=KERNEL_SPEC)
    assert result.stderr.startswith("error: <stdin>: internal error: RuntimeError: boom")


def test_a_shape_error_prints_the_shape_table_under_the_one_error_line(tmp_path):
    (tmp_path / "net.yaml").write_text(
        "input: {random: {shape: [2, 3, 3]}}\nlayers:\n  - conv: {kernel: {random: {shape: [2, 2, 2, 2]}}}\n"
        "  - pool: {size: 2}\n  - flatten\n  - fc:\n      weights: {random: {shape: [1, 5]}}\n"
        "loss: none\nupstream_grad: [1]\n")
    for command in ("forward", "check"):
        result = run(command, tmp_path / "net.yaml")
        assert result.exit_code == 2 and "Traceback" not in result.stderr
        assert result.stderr.splitlines() == [
            f"error: {tmp_path / 'net.yaml'}:7:16: layers[3].fc.weights: the weights have 5 columns but "
            "its input has 2 values (flatten1)",
            "  input     2×3×3", "  conv1     2×2×2", "  pool1     2×1×1", "  flatten1  2"]


@pytest.mark.parametrize("command", ["forward", "backward", "check", "explain"])
def test_help_cites_sections_of_the_reference_in_the_repository(command):
    """`--help` said "json (SPEC §4 …)", a contract not in the repository whose §4 is not the
    reference's JSON section; a cited section is docs/reference.md's, by its number and title."""
    from pathlib import Path
    reference = (Path(__file__).resolve().parents[2] / "docs" / "reference.md").read_text(encoding="utf-8")
    text = " ".join(run(command, "--help").output.split())
    assert "SPEC §" not in text
    for number in re.findall(r"docs/reference\.md §(\d+)", text):
        assert re.search(rf"^## {number}\. ", reference, re.M), number
    if command == "forward":                       # its --format json names the JSON section
        assert "docs/reference.md §6" in text and re.search(r"^## 6\. JSON output", reference, re.M)

"""CI output of ``check``: GitHub annotations and step summary, JUnit XML, and ``--update-expect``."""
from __future__ import annotations

import json
import math
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cnngrad.gradcheck import check_model
from cnngrad.gradcheck.results import EntryResult, QuantityResult, SpecResult
from cnngrad.render import github
from cnngrad.spec import load_model
from helpers.cli import invoke

ERRATUM = Path("tests/errata/seed001_kernel_gradient_truncated_deltas.yaml")
ANNOTATION = re.compile(r"::(?P<kind>\w+) (?P<properties>[^:]*)::(?P<message>.*)")
INVALID = """\
input: [[0.5, -0.2], [0.3, 0.8]]
layers:
  - conv: {kernel: [[0.1]]}
  - tanhh
loss: none
upstream_grad: [[1, 1], [1, 1]]
"""


@pytest.fixture(autouse=True)
def _outside_github(monkeypatch):
    """Each test says itself whether it runs under GitHub Actions."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def run(*args, **env):
    return invoke("check", *args, env=env or None)


def annotations(output: str) -> list[dict[str, str]]:
    """The workflow commands in ``output``, properties unescaped as GitHub's runner does."""
    found = []
    for line in output.splitlines():
        match = ANNOTATION.fullmatch(line)
        if match:
            properties = dict(item.split("=", 1) for item in match["properties"].split(","))
            properties = {k: _unescape(v) for k, v in properties.items()}
            found.append({"kind": match["kind"], **properties, "message": _unescape(match["message"])})
    return found


def _unescape(text: str) -> str:
    for escaped, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(escaped, char)
    return text


def where(path: Path, written: str) -> tuple[int, int]:
    """1-based line and column of the first ``written`` in the file, found by plain text search."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if written in line and not line.lstrip().startswith("#"):
            return number, line.index(written) + 1
    raise AssertionError(f"{written!r} not in {path}")


# --- GitHub annotations -------------------------------------------------------------------------

def test_a_failing_expect_entry_is_annotated_at_its_own_line():
    result = run(ERRATUM, "--format", "github")
    assert result.exit_code == 1
    found = annotations(result.stdout)
    line, column = where(ERRATUM, "grad.conv1.kernel:")
    assert len(found) == 1
    assert found[0]["kind"] == "error" and found[0]["file"] == str(ERRATUM)
    assert (int(found[0]["line"]), int(found[0]["col"])) == (line, column) == (28, 3)
    # the answer's 0.094061 against the hand-derived 0.0941186865 (the erratum's comment)
    assert "grad.conv1.kernel[0,1]: expected 0.094061, computed 0.0941186865" in found[0]["message"]
    assert "FAILED" in result.stdout           # the plain report follows for the log


def test_json_gives_where_each_expect_entry_and_gradient_is_written():
    spec = json.loads(run(ERRATUM, "--format", "json").stdout)["specs"][0]
    assert [(e["quantity"], e["line"], e["column"]) for e in spec["expect"]] == \
        [("grad.conv1.kernel", *where(ERRATUM, "grad.conv1.kernel:"))]
    assert {g["quantity"]: (g["line"], g["column"]) for g in spec["gradients"]}["grad.conv1.kernel"] == \
        where(ERRATUM, "[[-0.13")


def test_github_is_the_default_under_github_actions_and_an_explicit_format_wins():
    assert annotations(run(ERRATUM, GITHUB_ACTIONS="true").stdout)
    assert not annotations(run(ERRATUM).stdout)
    assert not annotations(run(ERRATUM, GITHUB_ACTIONS="false").stdout)
    explicit = run(ERRATUM, "--format", "json", GITHUB_ACTIONS="true")
    assert explicit.stdout.startswith("{") and not annotations(explicit.stdout)


def test_a_passing_spec_has_no_annotation():
    result = run("configs/seed001_fc_sigmoid_deltas.yaml", "--format", "github")
    assert result.exit_code == 0 and annotations(result.stdout) == []


def test_an_invalid_spec_is_annotated_at_the_node_its_error_names(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(INVALID)
    result = run(spec, tmp_path / "missing.yaml", "--format", "github")
    assert result.exit_code == 2
    bad, missing = annotations(result.stdout)
    assert bad["file"] == str(spec)
    assert (int(bad["line"]), int(bad["col"])) == where(spec, "tanhh") == (4, 5)
    assert bad["message"].startswith("layers[1]: ") and "tanhh" in bad["message"]
    assert missing["file"] == str(tmp_path / "missing.yaml") and "line" not in missing
    assert missing["message"] == "file not found"


def test_a_failing_gradient_is_annotated_at_its_value_in_the_spec():
    """The checker records where each checked quantity is written; the annotation uses it."""
    model = load_model(str(ERRATUM))
    checked = {q.quantity: q for q in check_model(model).gradients}
    assert (checked["conv1.kernel"].line, checked["conv1.kernel"].column) == where(ERRATUM, "[[-0.13")
    assert (checked["input"].line, checked["input"].column) == where(ERRATUM, "- [0.51, 0.90")
    assert checked["conv1.bias"].line == where(ERRATUM, "conv:")[0]         # not written: its layer
    wrong = QuantityResult("conv1.kernel", (2, 2), False, 0.5, 0.5, 0, line=19, column=15, entries=[
        EntryResult((0, 0), 1.0, 1.0, 0.0, "ok"), EntryResult((0, 1), 2.0, 1.5, 0.5, "fail")])
    result = SpecResult("net.yaml", None, False, gradients=[wrong], faulty_layer="conv1")
    (found,) = annotations("\n".join(github.annotations(result)))
    assert (found["file"], found["line"], found["col"]) == ("net.yaml", "19", "15")
    assert found["message"] == ("grad.conv1.kernel: 1 of 2 entries disagree with finite differences; "
                                "worst at [0,1]: analytic 2, numeric 1.5 (faulty layer: conv1)")


def test_escaping_follows_githubs_rules():
    assert github.escape_data("50% off\r\nnext") == "50%25 off%0D%0Anext"
    assert github.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    line = github.command("error", "dir,1/x:y.yaml", 3, 4, "t", "m: 100%")
    assert line == "::error file=dir%2C1/x%3Ay.yaml,line=3,col=4,title=t::m: 100%25"


def test_the_step_summary_gets_the_markdown_report_appended(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    result = run(ERRATUM, "configs/seed001_fc_sigmoid_deltas.yaml", GITHUB_ACTIONS="true",
                 GITHUB_STEP_SUMMARY=str(summary))
    text = summary.read_text()
    assert text.startswith("earlier step\n")
    assert "| grad.conv1.kernel | 5.77e-05 | 5.00e-07 | FAILED |" in text
    assert text.rstrip().endswith("**2 specs: 1 passed, 1 failed**")
    assert result.exit_code == 1


def test_the_step_summary_lists_a_spec_that_could_not_run(tmp_path):
    summary, spec = tmp_path / "summary.md", tmp_path / "flat.yaml"
    spec.write_text("input: [[1.0, 2.0], [3.0, 4.0]]\nlayers:\n  - fc: {weights: [[1, 1, 1, 1]]}\n"
                    "loss: none\nupstream_grad: [1]\n")
    assert run(spec, "--format", "github", GITHUB_STEP_SUMMARY=str(summary)).exit_code == 2
    (error,) = [line for line in summary.read_text().splitlines() if line.startswith("- ")]
    assert error.startswith(f"- `` {spec}:3:") and error.endswith("add `- flatten` before it ``")


# --- JUnit XML ----------------------------------------------------------------------------------

def test_junit_xml_has_a_testcase_per_spec_with_failures_and_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(INVALID)
    report = tmp_path / "report.xml"
    result = run("configs", ERRATUM, bad, "--junit-xml", report)
    assert result.exit_code == 2
    configs = sorted(Path("configs").glob("*.yaml"))
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    total = len(configs) + 2
    for element in (root, suite):
        assert (element.get("tests"), element.get("failures"), element.get("errors")) == (str(total), "1", "1")
    assert len(cases) == total
    by_file = {case.get("file"): case for case in cases}
    for spec in configs:
        case = by_file[str(spec)]
        assert (case.get("classname"), case.get("name")) == ("configs", spec.name)
        assert list(case) == []                      # passed: no failure, no error
    failed = by_file[str(ERRATUM)]
    assert failed.get("classname") == "tests.errata"
    (failure,) = failed
    assert failure.tag == "failure" and "FAILED" in failure.get("message")
    assert "grad.conv1.kernel[0,1]: expected 0.094061, computed 0.0941186865" in failure.text
    (error,) = by_file[str(bad)]
    assert error.tag == "error" and "tanhh" in error.get("message")


def test_junit_xml_stays_well_formed_with_a_control_character_in_a_spec_name(tmp_path):
    spec = tmp_path / "odd.yaml"
    spec.write_text(re.sub("(?m)^name: .*$", r'name: "odd \\x01 name"', ERRATUM.read_text()))
    report = tmp_path / "report.xml"
    assert run(spec, "--junit-xml", report).exit_code == 1
    (failure,) = ET.parse(report).getroot().iter("failure")
    assert "odd \\x01 name" in failure.text      # shown as an escape, as on a terminal


# --- --update-expect ----------------------------------------------------------------------------

def test_update_leaves_every_passing_config_byte_for_byte_unchanged(tmp_path):
    copy = tmp_path / "configs"
    shutil.copytree("configs", copy)
    result = run(copy, "--update-expect")
    assert result.exit_code == 0, result.output
    for spec in Path("configs").rglob("*"):
        if spec.is_file():
            assert (copy / spec.relative_to("configs")).read_bytes() == spec.read_bytes(), spec
    assert "updated" not in result.stderr


def test_update_fixes_the_erratum_and_keeps_every_other_byte(tmp_path):
    spec = tmp_path / ERRATUM.name
    shutil.copy(ERRATUM, spec)
    result = run(spec, "--update-expect")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"updated {spec}: 4 expect numbers\n"
    before, after = ERRATUM.read_text().splitlines(True), spec.read_text().splitlines(True)
    changed = [(old, new) for old, new in zip(before, after) if old != new]
    assert len(before) == len(after) and len(changed) == 1
    # the hand-derived gradient of the erratum's comment, rounded to the 6 decimals written
    true = [[0.044591799, 0.0941186865], [0.01125765, 0.068312388]]
    assert [round(v, 6) for row in true for v in row] == [0.044592, 0.094119, 0.011258, 0.068312]
    assert changed[0][1] == ("  grad.conv1.kernel: [[0.044592, 0.094119], [0.011258, 0.068312]]"
                             "   # as printed in the answer\n")
    assert run(spec).exit_code == 0


SPEC_WITH_COMMENTS = """\
# A hand-worked fc layer: y = W x + b, E's upstream gradient 3
input: [1.0, 2.0]            # x
layers:
  - fc:
      weights: [[0.5, -0.25]]
      bias: [0.1]
loss: none
upstream_grad: [3.0]
expect:
  # my (partly wrong) working:
  fc1: [0.7]                 # W x + b
  fc1[0]: 1                  # an exact value, wrong
  grad.input:                # Wᵀ · 3
    - 9.999                  # wrong
    - -0.75                  # right, kept as written
  grad.fc1.weights: [[2.5e+0, 7.00E-0]]   # 3 · xᵀ, in exponent notation
  grad.fc1.bias: [2]         # an exact integer, wrong
"""


def test_update_rewrites_wrong_values_as_written_and_keeps_comments(tmp_path):
    """By hand: y = 0.5·1 − 0.25·2 + 0.1 = 0.1, ∂E/∂x = 3·Wᵀ = [1.5, −0.75], ∂E/∂W = 3·xᵀ = [[3, 6]],
    ∂E/∂b = 3."""
    spec = tmp_path / "fc.yaml"
    spec.write_text(SPEC_WITH_COMMENTS)
    assert run(spec).exit_code == 1
    result = run(spec, "--update-expect")
    assert result.exit_code == 0, result.output
    assert spec.read_text() == SPEC_WITH_COMMENTS \
        .replace("fc1: [0.7]", "fc1: [0.1]") \
        .replace("fc1[0]: 1 ", "fc1[0]: 0.1000000000 ") \
        .replace("- 9.999", "- 1.500") \
        .replace("[[2.5e+0, 7.00E-0]]", "[[3.0e+0, 6.00E-0]]") \
        .replace("grad.fc1.bias: [2]", "grad.fc1.bias: [3]")
    assert run(spec).exit_code == 0


def test_update_under_a_numeric_tolerance_writes_the_fewest_decimals_within_it(tmp_path):
    """sigmoid(0.5) = 1/(1 + e^-0.5) = 0.6224593312…; written 0.6 under tolerance 1e-9."""
    spec = tmp_path / "sigmoid.yaml"
    spec.write_text("input: [0.5]\nlayers: [sigmoid]\nloss: none\nupstream_grad: [1]\n"
                    "expect:\n  tolerance: 1e-9\n  sigmoid1: [0.6]  # about 0.6\n")
    assert run(spec, "--update-expect").exit_code == 0
    written = re.search(r"sigmoid1: \[(\S+)\]  # about 0.6\n", spec.read_text())[1]
    exact = 1 / (1 + math.exp(-0.5))
    decimals = len(written.split(".")[1])
    assert abs(float(written) - exact) <= 1e-9 * (1 + 1e-9) + 1e-9 * exact
    assert abs(round(exact, decimals - 1) - exact) > 1e-9 * (1 + 1e-9) + 1e-9 * exact   # no fewer do
    assert run(spec).exit_code == 0


def test_update_refuses_standard_input_and_aliases_cleanly(tmp_path):
    result = invoke("check", "-", "--update-expect", input=INVALID)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: <stdin>: --update-expect rewrites spec files; standard input cannot be updated "
        "(give the file's path)"]
    spec = tmp_path / "alias.yaml"
    text = "input: &x [1.0, 2.0]\nlayers: [relu]\nloss: none\nupstream_grad: [1, 1]\nexpect:\n  grad.input: *x\n"
    spec.write_text(text)
    result = run(spec, "--update-expect")
    assert result.exit_code == 2 and spec.read_text() == text
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {spec}:1:17: expect.grad.input: --update-expect cannot rewrite '2.0'")


def test_update_keeps_a_byte_order_mark_crlf_line_ends_and_other_scripts(tmp_path):
    spec = tmp_path / "crlf.yaml"
    text = ("\ufeff# café — δ\r\ninput: [1.0, 2.0]\r\nlayers: [relu]\r\nloss: none\r\n"
            "upstream_grad: [1, 1]\r\nexpect:\r\n  grad.input: [0.5, 0.50]  # δ\r\n")
    spec.write_bytes(text.encode("utf-8"))
    assert run(spec, "--update-expect").exit_code == 0
    assert spec.read_bytes() == text.replace("[0.5, 0.50]", "[1.0, 1.00]").encode("utf-8")


@pytest.mark.parametrize("written, value, tolerance, new", [
    ("0.0365", 0.0364182, None, "0.0364"),          # as many decimals as written
    ("+0.50", 0.123, None, "+0.12"),                # sign and decimals kept
    ("2.", 1.541, None, "2."),                      # the point kept: still ±0.5
    ("2.5e-3", 0.0123456, None, "12.3e-3"),         # the exponent kept
    ("1.5E2", 321.7, None, "3.2E+2"),               # its sign added: YAML reads 3.2E2 as a string
    ("-0.5", -0.00001, None, "0.0"),                # no "-0.0"
    ("7", 3.0, None, "3"),                          # exact and whole
    ("2", 1.541, None, "1.541000000"),              # exact: 10 significant digits
    ("1e-3", 0.0123456, None, "0.01234560000"),
    ("2", 1.541, 0.01, "1.54"),                     # fewest decimals within the tolerance
    ("0.1", 0.123456, 1e-4, "0.1235"),
])
def test_update_writes_each_number_in_the_form_it_was_written(written, value, tolerance, new):
    from cnngrad.spec.update import _rewritten
    assert _rewritten(written, value, tolerance, abs(value)) == new


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("how", ["junit", "summary"])
def test_a_report_file_that_cannot_be_written_is_an_error_naming_it(how):
    """A full disk under --junit-xml or $GITHUB_STEP_SUMMARY was "internal error: OSError" naming
    the spec; it is the report file that could not be written."""
    spec = "configs/seed001_fc_sigmoid_deltas.yaml"
    if how == "junit":
        result = run(spec, "--junit-xml", "/dev/full")
    else:
        result = run(spec, "--format", "github", GITHUB_STEP_SUMMARY="/dev/full")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: /dev/full: No space left on device"]

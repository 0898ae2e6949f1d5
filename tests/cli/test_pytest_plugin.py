"""cnngrad's pytest plugin, run by pytest itself (pytester): opt-in collection of spec folders, a
check's table on failure, errata as xfail, -k, kinks passing; and this project's own set-up."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy.random  # noqa: F401  (imported here, so pytester's in-process runs never re-import them)
import pytest

import cnngrad.api  # noqa: F401
import cnngrad.gradcheck  # noqa: F401
import cnngrad.render.table  # noqa: F401

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

# fc: y = 1·0.5 + 2·(−1) + 0 = −1.5 (hand-worked); relu(0) sits on a kink
GOOD = """\
input: [0.0, 0.5, -1.0]
layers:
  - relu
  - fc: {weights: [[1, 1, 2]], bias: [0]}
loss: none
upstream_grad: [1]
expect:
  fc1: [0.5]
"""
WRONG = GOOD.replace("fc1: [0.5]", "fc1: [0.6]")
BROKEN = GOOD.replace("[[1, 1, 2]]", "[[1, 1], [2]]")


@pytest.fixture
def specs(pytester):
    pytester.mkdir("specs")
    (pytester.path / "specs" / "good.yaml").write_text(GOOD)
    (pytester.path / "specs" / "wrong.yml").write_text(WRONG)
    pytester.mkdir("other")
    (pytester.path / "other" / "unrelated.yaml").write_text("key: value\n")
    return pytester


def test_nothing_is_collected_without_opting_in(specs):
    result = specs.runpytest("-q")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_the_ini_option_makes_each_spec_an_item_named_by_its_path(specs):
    specs.makeini("[pytest]\ncnngrad_specs = specs\n")
    result = specs.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["specs/good.yaml::check", "specs/wrong.yml::check"])
    assert "unrelated" not in result.stdout.str()


def test_a_passing_spec_passes_and_a_failing_one_shows_the_checks_table(specs):
    specs.makeini("[pytest]\ncnngrad_specs = specs\n")
    result = specs.runpytest("-q")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*expect*max abs error*tolerance*status*",
        "fc1*1.00e-01*5.00e-02*FAILED*",
        "specs/wrong.yml: FAILED (1 of 1 expect values failed)*",
    ])
    assert "Traceback" not in result.stdout.str()


def test_a_kink_is_not_a_failure(specs):
    # relu at 0: the analytic 0 lies between the one-sided slopes 0 and 1
    import cnngrad
    checked = cnngrad.check(str(specs.path / "specs" / "good.yaml"))
    assert checked.passed and checked.result.gradients[0].kinks == 1
    result = specs.runpytest("-q", "--cnngrad", "specs", "-k", "good")
    result.assert_outcomes(passed=1)


def test_k_selects_specs_by_their_path(specs):
    specs.makeini("[pytest]\ncnngrad_specs = specs\n")
    result = specs.runpytest("-q", "-k", "wrong")
    result.assert_outcomes(failed=1, deselected=1)
    result = specs.runpytest("-q", "-k", "not wrong")
    result.assert_outcomes(passed=1, deselected=1)


def test_the_command_line_flag_opts_in_without_an_ini(specs):
    result = specs.runpytest("-q", "--cnngrad", "specs")
    result.assert_outcomes(passed=1, failed=1)
    result = specs.runpytest("-q", "--cnngrad", "nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_a_misspelt_ini_folder_is_a_usage_error_not_silence(specs):
    specs.makeini("[pytest]\ncnngrad_specs = spces\n")
    result = specs.runpytest("-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cnngrad_specs: */spces is not a folder*"])


def test_an_expected_failure_is_xfail_with_its_reason(specs):
    specs.makeini("[pytest]\ncnngrad_specs = specs\ncnngrad_xfail =\n    specs/wrong.*: a published typo\n")
    result = specs.runpytest("-q", "-rx")
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["XFAIL specs/wrong.yml::check - a published typo"])


def test_an_expected_failure_that_passes_or_cannot_run_fails(specs):
    (specs.path / "specs" / "broken.yaml").write_text(BROKEN)
    specs.makeini("[pytest]\ncnngrad_specs = specs\ncnngrad_xfail =\n    specs/*: kept on purpose\n")
    result = specs.runpytest("-q")
    result.assert_outcomes(failed=2, xfailed=1)      # good passes unexpectedly (strict); broken is broken
    result.stdout.fnmatch_lines(["error: specs/broken.yaml:4:28: layers[1].fc.weights: rows have different lengths (2 and 1)",
                                 "*XPASS(strict)*kept on purpose*"])


def test_importing_the_plugin_imports_no_numpy():
    code = ("import sys, cnngrad.pytest_plugin; "
            "print(sorted(m for m in ('numpy', 'yaml', 'cnngrad.api') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_this_project_checks_configs_and_keeps_its_errata_as_xfail():
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rx", "-p", "no:cacheprovider",
                          "configs", "tests/errata"], cwd=ROOT, capture_output=True, text=True)
    configs = sorted(ROOT.glob("configs/*.yaml"))
    errata = sorted(ROOT.glob("tests/errata/*.yaml"))
    assert f"{len(configs)} passed, {len(errata)} xfailed" in run.stdout, run.stdout
    for erratum in errata:
        assert f"XFAIL tests/errata/{erratum.name}::check" in run.stdout

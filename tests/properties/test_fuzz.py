"""Spec fuzzing in CI: mutants of every spec in configs/ through forward, backward and check.

A bounded run (tests/properties/fuzz.py has the mutations, tests/helpers/cli.py the rules; ``python tests/properties/fuzz.py --count
20000`` is the long run): every outcome must be exit 0/1 with valid output or exit 2 with one
``error:`` line naming the file — never a traceback, an internal error, a silent nan, or a hang.
"""
from __future__ import annotations

import numpy as np
import pytest

import fuzz
import helpers.cli

CI_MUTANTS = 400


def _show(report):
    problem, names, mutant, outcome = report.findings[0]
    return (f"{report.summary()}\nfirst finding: {problem}\nmutations: {names}\n"
            f"command: {outcome.command}\nstderr: {outcome.stderr}\n--- mutant ---\n{mutant}")


def test_mutants_in_process(tmp_path):
    report = fuzz.fuzz(CI_MUTANTS, seed=20240611, workdir=tmp_path)
    assert report.mutants == CI_MUTANTS and report.runs == 3 * CI_MUTANTS
    assert not report.findings, _show(report)
    # the mutants really exercise both sides: runs that succeed and clean refusals
    assert report.outcomes.get(0, 0) > CI_MUTANTS // 10
    assert report.outcomes.get(2, 0) > CI_MUTANTS // 10


def test_mutants_through_the_installed_entry_point(tmp_path):
    report = fuzz.fuzz(4, seed=5, workdir=tmp_path, subprocess_every=1)
    assert report.runs == 12
    assert not report.findings, _show(report)


def test_file_source_attacks_show_nothing_planted(tmp_path):
    """Values read through symlinks to /proc and devices, FIFOs, folders, absolute paths and ..,
    with and without --allow-dir: one clean error line each, and no planted content shown."""
    report = fuzz.fuzz(60, seed=17, workdir=tmp_path, mutations=fuzz.FILE_MUTATIONS)
    assert report.runs == 3 * 60
    assert not report.findings, _show(report)
    assert report.outcomes.get(2, 0) > 150


def test_every_mutation_changes_the_text_and_the_mutants_differ():
    rng = np.random.default_rng(0)
    text = fuzz.CONFIGS[0].read_text()
    for mutation in fuzz.MUTATIONS + fuzz.FILE_MUTATIONS:
        changed = sum(mutation(text, rng) != text for _ in range(20))
        assert changed >= 10, mutation.__name__
    assert len({fuzz.mutate(text, rng)[0] for _ in range(50)}) >= 45


@pytest.mark.parametrize("outcome, allowed", [
    (fuzz.Outcome(["forward", "a.yaml"], 2, "", "error: a.yaml:3:1: layers: bad\n"), True),
    (fuzz.Outcome(["forward", "a.yaml"], 2, "", "error: a.yaml:3:1: bad\nerror: again\n"), False),
    (fuzz.Outcome(["forward", "a.yaml"], 2, "", "error: a.yaml:3:1: layers[1]: bad\n  input  3×3\n  conv1  2×2\n"),
     True),
    (fuzz.Outcome(["forward", "a.yaml"], 2, "", "error: a.yaml:3:1: bad\nmore to say\n"), False),
    (fuzz.Outcome(["forward", "a.yaml"], 2, "", "error: elsewhere.yaml: bad\n"), False),
    (fuzz.Outcome(["forward", "a.yaml"], 2, "", "error: internal error: KeyError: 'x' (run with --debug)\n"), False),
    (fuzz.Outcome(["forward", "a.yaml"], 2, "", "Traceback (most recent call last):\n"), False),
    (fuzz.Outcome(["forward", "a.yaml", "--format", "json"], 0, '{"loss": 1}\n', ""), True),
    (fuzz.Outcome(["forward", "a.yaml", "--format", "json"], 0, '{"loss": 1}{', ""), False),
    (fuzz.Outcome(["backward", "a.yaml"], 0, "grad.input\n0   nan\n", ""), False),
    (fuzz.Outcome(["backward", "a.yaml"], 0, "grad.fc1\n0   -inf (overflow)\n", ""), True),
    (fuzz.Outcome(["backward", "a.yaml"], 0, "a.yaml — Seed NaN\ngrad.input\n0   1.0\n", ""), True),
    (fuzz.Outcome(["backward", "a.yaml"], 1, "grad.input\n0   1.0\n", ""), False),
    (fuzz.Outcome(["check", "a.yaml"], 1, "conv1 FAILED\n", ""), True),
    (fuzz.Outcome(["check", "a.yaml"], 0, "ok\n", "RuntimeWarning: overflow\n"), False),
    (fuzz.Outcome(["check", "a.yaml"], None, "", "", "hang: no result within 20 s"), False),
    (fuzz.Outcome(["forward", "a.yaml"], 2, "", f"error: a.yaml:1:8: input.file: {fuzz.MARKER}\n"), False),
    (fuzz.Outcome(["forward", "a.yaml", "--format", "svg"], 0, "<svg><title>a</title></svg>\n", ""), True),
    (fuzz.Outcome(["forward", "a.yaml", "--format", "svg"], 0, "<svg><title>\x1b[31m</title></svg>\n", ""), False),
])
def test_the_judge_allows_only_what_the_spec_allows(outcome, allowed):
    assert (fuzz.judge(outcome, "a.yaml") is None) == allowed


def test_the_hang_guard_stops_a_command_that_never_returns(monkeypatch):
    import time

    from cnngrad.model import Model

    monkeypatch.setattr(helpers.cli, "GUARD_SECONDS", 0.5)
    monkeypatch.setattr(Model, "values", lambda self, *a, **k: time.sleep(60))
    outcome = fuzz.run_in_process(["forward", str(fuzz.CONFIGS[0])])
    assert outcome.problem and outcome.problem.startswith("hang")


OVERFLOWED_DIFFERENCE = """\
input: [[0.2, 0.7, 0.1], [0.9, 0.3, 0.6], [0.5, 0.8, 0.2]]
layers:
  - conv: {kernel: [[0.4, -0.3], [0.2, 0.1]], bias: 0.5}
loss: none
upstream_grad: [[1e308, -0.2], [0.4, 0.05]]
"""


def test_check_does_not_pass_a_gradient_whose_difference_overflowed(tmp_path):
    path = tmp_path / "overflow.yaml"
    path.write_text(OVERFLOWED_DIFFERENCE)
    for args in (["check", str(path)], ["check", "--fast", str(path)]):
        outcome = fuzz.run_in_process(args)
        assert fuzz.judge(outcome, str(path)) is None, fuzz.judge(outcome, str(path))
        assert outcome.exit_code != 0        # no verdict 'passed' on an inf error


def test_option_values_and_odd_standard_streams():
    """nan, inf, huge, negative and malformed values for every number option, and closed, full or
    non-UTF-8 standard streams: exit 0, 1 or 2 by the rules, never a traceback."""
    report = fuzz.fuzz_options(160, seed=20261129, stdio_every=8)
    assert report.runs == 160
    assert not report.findings, _show(report)
    assert report.outcomes.get(0, 0) > 10 and report.outcomes.get(2, 0) > 80


@pytest.mark.parametrize("outcome, stdio, allowed", [
    (fuzz.Outcome(["check", "a.yaml", "--eps", "nan"], 2, "", "error: cnngrad check: --eps nan: bad\n"), None, True),
    (fuzz.Outcome(["check", "a.yaml", "--eps", "nan", "--format", "json"], 2, "{}",
                  "error: cnngrad check: --eps nan: bad\n"), None, False),
    (fuzz.Outcome(["check", "a.yaml", "--eps", "nan"], 2, "", "error: something else\n"), None, False),
    (fuzz.Outcome(["forward", "a.yaml"], 0, "", ""), "closed stdout", False),
    (fuzz.Outcome(["forward", "a.yaml"], 2, "", "error: standard output is closed\n"), "closed stdout", True),
    (fuzz.Outcome(["forward", "a.yaml"], 2, "", "Traceback (most recent call last):\n"), "full stdout", False),
    (fuzz.Outcome(["check", "a.yaml"], 2, "", "error: a.yaml: bad\nerror: cannot write\n"), "full stdout", True),
    (fuzz.Outcome(["forward", "a.yaml"], 2, "", "error: a.yaml: bad\nerror: cannot write\n"), "full stdout", False),
    (fuzz.Outcome(["forward", "a.yaml"], 1, "", ""), "closed stderr", False),
    (fuzz.Outcome(["check", "a.yaml"], 1, "", ""), "closed stderr", True),
    (fuzz.Outcome(["forward", "a.yaml"], 0, "x\n", "", "output not in the ascii encoding"), "ascii", False),
])
def test_the_option_judge(outcome, stdio, allowed):
    assert (fuzz.judge_stdio(outcome, "a.yaml", stdio) is None) == allowed

"""``cnngrad check``: exit codes, folders, specs that cannot run, and every output format."""
from __future__ import annotations

import errno
import json
import os
import re
import subprocess

import pytest

from helpers.cli import invoke

PASSING = """\
input: [[0.5, -0.2, 0.1], [0.3, 0.8, -0.6], [0.9, 0.4, 0.2]]
layers:
  - conv: {kernel: [[0.1, -0.2], [0.3, 0.4]], bias: 0.05}
  - tanh
  - flatten
  - fc: {weights: [[0.2, -0.1, 0.4, 0.3]]}
  - sigmoid
loss: binary_cross_entropy
target: [1]
expect:
  grad.conv1.bias: 0.1
  tolerance: 10
"""
FAILING = PASSING.replace("tolerance: 10", "tolerance: 1e-9")
INVALID = PASSING.replace("- tanh", "- tanhh")


@pytest.fixture
def folder(tmp_path):
    """configs/ with a passing spec, a nested passing .yml, and a file that is not a spec."""
    (tmp_path / "configs" / "nested").mkdir(parents=True)
    (tmp_path / "configs" / "b.yaml").write_text(PASSING)
    (tmp_path / "configs" / "nested" / "a.yml").write_text(PASSING)
    (tmp_path / "configs" / "notes.txt").write_text("not a spec")
    (tmp_path / "failing.yaml").write_text(FAILING)
    (tmp_path / "invalid.yaml").write_text(INVALID)
    (tmp_path / "empty").mkdir()
    return tmp_path


def run(*args):
    return invoke("check", *args)


def test_everything_passing_is_exit_0(folder):
    result = run(folder / "configs")
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().endswith("2 specs: 2 passed, 0 failed")
    assert result.stderr == ""


def test_a_folder_gives_every_yaml_and_yml_below_it_sorted(folder):
    doc = json.loads(run(folder / "configs", "--format", "json").stdout)
    assert [s["spec"][len(str(folder)) + 1:] for s in doc["specs"]] == ["configs/b.yaml", "configs/nested/a.yml"]


def test_a_failure_is_exit_1_with_what_failed(folder):
    result = run(folder / "failing.yaml")
    assert result.exit_code == 1
    assert "FAILED (1 of 1 expect values failed)" in result.stdout
    assert "grad.conv1.bias: expected 0.1, computed" in result.stdout


def test_a_spec_that_cannot_run_is_reported_and_the_others_still_run(folder):
    result = run(folder / "invalid.yaml", folder / "failing.yaml", folder / "configs")
    assert result.exit_code == 2                       # 2 beats 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "invalid.yaml:" in line and "tanhh" in line
    assert result.stdout.rstrip().endswith(f"4 specs: 2 passed, 1 failed, 1 could not run ({folder / 'invalid.yaml'})")


def test_a_missing_path_or_empty_folder_cannot_run(folder):
    result = run(folder / "missing.yaml", folder / "empty", folder / "configs")
    assert result.exit_code == 2
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors)
    assert "missing.yaml" in errors[0] and "no *.yaml or *.yml files" in errors[1]


def test_json_is_one_document_with_every_spec(folder):
    result = run(folder / "configs", folder / "failing.yaml", folder / "invalid.yaml", "--format", "json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["passed"] is False
    assert [s["passed"] for s in doc["specs"]] == [True, True, False, False]
    assert "tanhh" in doc["specs"][3]["error"]
    gradient = doc["specs"][0]["gradients"][0]
    assert set(gradient) >= {"quantity", "shape", "passed", "max_abs_error", "max_rel_error", "kinks", "entries"}
    assert set(gradient["entries"][0]) >= {"index", "analytic", "numeric", "abs_error", "status"}
    assert set(doc["specs"][0]["expect"][0]) >= {"quantity", "passed", "max_abs_error", "tolerance"}
    dumped = json.dumps(doc, ensure_ascii=False, allow_nan=False) + "\n"    # written piece by piece,
    assert result.stdout == dumped                                          # as json.dumps writes it whole


def test_wrt_picks_gradients_and_an_unknown_name_cannot_run(folder):
    doc = json.loads(run(folder / "configs" / "b.yaml", "--wrt", "fc1.weights", "--format", "json").stdout)
    assert [g["quantity"] for g in doc["specs"][0]["gradients"]] == ["grad.fc1.weights"]
    result = run(folder / "configs" / "b.yaml", "--wrt", "nope")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "nope" in result.stderr
    assert "internal error" not in result.stderr


def test_fast_and_deltas(folder):
    result = run(folder / "configs" / "b.yaml", "--fast", "--deltas")
    assert result.exit_code == 0, result.output
    assert "(directional)" in result.stdout and "layer deltas" in result.stdout


OVERFLOWING = "input: [[1e308, 1e308], [1e308, 1e308]]\nlayers:\n  - pool: {type: avg, size: 2}\nloss: none\nupstream_grad: [[1]]\n"
SMOOTH = "input: [[0.5, 0.2], [0.1, 0.3]]\nlayers:\n  - sigmoid\nloss: none\nupstream_grad: [[1, 1], [1, 1]]\n"


@pytest.mark.parametrize("spec, options, why", [
    # E sums 1e308s (the average's sum overflows), so no rounding allowance can be computed
    (OVERFLOWING, [], re.escape("the sums behind E exceed float64, so the rounding of its finite "
                                "differences is beyond measure")),
    # a step of 1e-15 on entries ≈ 0.5 leaves differences of a few ulps: far coarser than 1e-2
    (SMOOTH, ["--eps", "1e-15"], r"its finite differences resolve no relative error below \d\.\d\de\+\d\d "
                                 + re.escape("(a check must resolve 1e-02); give a larger --eps (default 1e-4)")),
])
def test_an_unverified_gradient_says_why_under_the_table(tmp_path, spec, options, why):
    (tmp_path / "net.yaml").write_text(spec)
    result = run(tmp_path / "net.yaml", *options)
    assert result.exit_code == 1
    assert re.search(r"^input: unverified: " + why + "$", result.stdout, re.M), result.stdout


@pytest.mark.parametrize("fmt, marker", [("markdown", "| gradient | shape |"), ("latex", r"\begin{tabular}")])
def test_markdown_and_latex(folder, fmt, marker):
    result = run(folder / "failing.yaml", "--format", fmt)
    assert result.exit_code == 1
    assert marker in result.stdout and "1 spec: 0 passed, 1 failed" in result.stdout


def test_wrt_suggests_the_nearest_quantity(folder):
    result = run(folder / "configs" / "b.yaml", "--wrt", "fc1.weight")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "did you mean 'fc1.weights'" in line and str(folder / "configs" / "b.yaml") in line


def test_an_unreadable_sub_folder_cannot_run_and_is_named(folder, monkeypatch):
    locked = folder / "configs" / "locked"
    locked.mkdir()
    (locked / "hidden.yaml").write_text(FAILING)
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):      # root reads anything: refuse as the kernel would refuse others
            real = os.scandir

            def scandir(path="."):
                if os.fspath(path) == str(locked):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(locked))
                return real(path)
            monkeypatch.setattr(os, "scandir", scandir)
        result = run(folder / "configs")
    finally:
        locked.chmod(0o755)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {locked}: ") and "cannot read" in line
    assert result.stdout.rstrip().endswith(f"3 specs: 2 passed, 0 failed, 1 could not run ({locked})")


def test_a_crash_in_a_folder_check_names_the_spec(folder, monkeypatch):
    import cnngrad.gradcheck as gradcheck
    real = gradcheck.check_model

    def check_model(model, **options):
        if model.path.endswith("a.yml"):
            raise ZeroDivisionError("boom")
        return real(model, **options)
    monkeypatch.setattr(gradcheck, "check_model", check_model)
    result = run(folder / "configs")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {folder / 'configs' / 'nested' / 'a.yml'}: internal error: ZeroDivisionError")


def test_with_stderr_on_stdout_each_error_line_sits_where_its_spec_is(folder):
    from helpers.cli import cnngrad_script
    (folder / "configs" / "c.yaml").write_text(INVALID)
    (folder / "configs" / "d.yaml").write_text(PASSING)
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR",)}
    done = subprocess.run([cnngrad_script(), "check", str(folder / "configs")], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, timeout=120)
    assert done.returncode == 2
    lines = done.stdout.splitlines()
    where = [next(i for i, line in enumerate(lines) if text in line) for text in
             ("b.yaml: passed", "error: " + str(folder / "configs" / "c.yaml"), "d.yaml: passed", "a.yml: passed",
              "4 specs:")]
    assert where == sorted(where), done.stdout

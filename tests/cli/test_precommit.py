"""The pre-commit hook ``cnngrad-check`` (.pre-commit-hooks.yaml), run by the real pre-commit on a
temporary git repository with a good and a wrong spec. pre-commit installs this repository into a
virtual environment of its own (pip, from PyPI: a minute or more), hence ``slow``; it skips without
pre-commit (``pip install pre-commit``) or git, or when this checkout is not a git repository."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = (ROOT / "configs" / "seed001_fc_sigmoid_deltas.yaml").read_text()
WRONG = GOOD.replace("fc1: [0.8952, -0.0304]", "fc1: [0.8952, -0.0305]")

pytestmark = pytest.mark.slow


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture
def repo(tmp_path):
    pytest.importorskip("pre_commit")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=ROOT, capture_output=True, text=True)
    if inside.stdout.strip() != "true":
        pytest.skip("this checkout is not a git repository (pre-commit try-repo clones it)")
    work = tmp_path / "work"
    (work / "specs").mkdir(parents=True)
    (work / "specs" / "good.yaml").write_text(GOOD)
    (work / "specs" / "wrong.yaml").write_text(WRONG)
    (work / "notes.yaml").write_text("not: a spec\n")
    _git("init", "-q", cwd=work)
    _git("add", "-A", cwd=work)
    return work


def _try_repo(work: Path, *files: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PRE_COMMIT_HOME=str(work.parent / "pre-commit-home"), NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "cnngrad-check",
                           "--color", "never", "--files", *files],
                          cwd=work, env=env, capture_output=True, text=True, timeout=900)


def test_the_hook_passes_a_good_spec_and_fails_a_wrong_one(repo):
    assert "fc1: [0.8952, -0.0305]" in WRONG
    good = _try_repo(repo, "specs/good.yaml")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "cnngrad check" in good.stdout and "Passed" in good.stdout

    both = _try_repo(repo, "specs/good.yaml", "specs/wrong.yaml")
    assert both.returncode == 1, both.stdout + both.stderr
    assert "Failed" in both.stdout
    assert "specs/wrong.yaml: FAILED (1 of 7 expect values failed)" in both.stdout
    assert "specs/good.yaml: passed" in both.stdout
    assert "fc1[1]: expected -0.0305, computed -0.0304" in both.stdout


def test_a_config_limits_the_hook_to_a_folder_with_files(repo):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {ROOT}\n    rev: {head}\n    hooks:\n      - id: cnngrad-check\n"
        "        files: ^specs/\n")
    _git("add", "-A", cwd=repo)
    env = dict(os.environ, PRE_COMMIT_HOME=str(repo.parent / "pre-commit-home"), NO_COLOR="1")
    run = subprocess.run([sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never"],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "specs/wrong.yaml: FAILED" in run.stdout and "specs/good.yaml: passed" in run.stdout
    assert "notes.yaml" not in run.stdout and ".pre-commit-config.yaml" not in run.stdout
    assert "2 specs: 1 passed, 1 failed" in run.stdout

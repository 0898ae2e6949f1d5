"""The worked examples in configs/ pass `cnngrad check`; the errata in tests/errata/ fail it.

Both go through the installed `cnngrad` script in a real subprocess, as a user or CI would run it.

Each erratum spec quotes a source's wrong value in its `expect:` section (and nothing else), on a
network whose analytic gradients are right: `check` must exit 1, name the wrong quantity in its
report, and pass every finite-difference comparison (the error is the source's, not the engine's).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers.cli import cnngrad_script

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
ERRATA = sorted((ROOT / "tests" / "errata").glob("*.yaml"))


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run([cnngrad_script(), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def expected_quantities(spec: Path) -> list[str]:
    """The quantities an erratum spec expects (its `expect:` keys, without `tolerance`)."""
    expect = yaml.safe_load(spec.read_text(encoding="utf-8")).get("expect") or {}
    return [key for key in expect if key != "tolerance"]


def test_every_config_passes_check():
    assert sorted(CONFIGS.glob("*.yaml")), "configs/ holds no specs"
    result = run("check", "configs/")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_errata_folder_is_not_empty():
    assert ERRATA, "tests/errata holds no specs"


@pytest.mark.parametrize("spec", ERRATA, ids=lambda path: path.stem)
def test_erratum_fails_check_and_names_the_wrong_quantity(spec: Path):
    quantities = expected_quantities(spec)
    assert quantities, f"{spec.name} has nothing in expect:"
    relative = str(spec.relative_to(ROOT))

    result = run("check", relative)
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    report = result.stdout + result.stderr
    for quantity in quantities:
        assert quantity in report, f"the report does not name {quantity}:\n{report[-4000:]}"

    result = run("check", "--format", "json", relative)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["passed"] is False
    (checked,) = document["specs"]
    failed = {entry["quantity"] for entry in checked["expect"] if not entry["passed"]}
    assert failed == set(quantities), f"failed expects {failed}, erratum is about {quantities}"
    # the network itself is sound: only the quoted value is wrong
    assert all(gradient["passed"] for gradient in checked["gradients"])

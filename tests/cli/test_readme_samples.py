"""The outputs the README shows for its worked example are what the commands print."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers.cli import invoke

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def shown_after(command: str) -> str:
    """The fenced block that follows the README's line "`COMMAND`:" (the sample of its output)."""
    match = re.search(re.escape(f"`{command}`") + r"[^`]*?:\n\n```\n(.*?)```", README, re.S)
    assert match, command
    return match.group(1)


def lines(text: str) -> list[str]:
    """Lines without trailing blanks (a table pads its last column; the README does not)."""
    return [line.rstrip() for line in text.splitlines()]


@pytest.mark.parametrize("command", ["forward", "backward", "check"])
def test_the_worked_example_prints_what_the_readme_shows(command):
    spec = "configs/seed001_fc_sigmoid_deltas.yaml"
    shown = shown_after(f"cnngrad {command} {spec}")
    result = invoke(command, spec)
    assert lines(result.output) == lines(shown)


@pytest.mark.parametrize("command, tail", [
    ("cnngrad check tests/errata/seed001_kernel_gradient_truncated_deltas.yaml", "expect "),
    ("cnngrad check tests/diagnose/seed002_student.yaml --against tests/diagnose/seed002_student_values.yaml",
     "diagnosis "),
])
def test_the_readme_tails_of_check_samples_are_the_real_output(command, tail):
    """The samples show a report from one table on (after `...`): that part is printed as shown."""
    block = re.search(r"```\n\$ " + re.escape(command) + r"\n(.*?)```", README, re.S).group(1)
    shown = lines(block[block.index(tail):])
    result = invoke(*command.split()[1:])
    printed = lines(result.output)
    start = next(k for k, line in enumerate(printed) if line.startswith(tail))
    assert printed[start:start + len(shown)] == shown

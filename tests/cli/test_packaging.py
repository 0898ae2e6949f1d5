"""The pins CI installs (constraints.txt) cover every dependency and lie within setup.cfg's ranges."""
from __future__ import annotations

import configparser
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _requirements() -> list[Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines() + cfg["options.extras_require"]["test"].splitlines()
    return [Requirement(line) for line in lines if line.strip()]


def test_every_dependency_is_pinned_within_its_range():
    pins = _pins()
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement}"


def test_readme_commands_install_the_pins():
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    commands = block.strip().splitlines()
    assert len(commands) == 2
    assert all("-c constraints.txt" in command for command in commands)


def test_no_merge_leftovers_in_the_package():
    """A merge's ``cli.py.orig`` (a stale copy of the command line) was committed into cnngrad/."""
    leftovers = [path for pattern in ("*.orig", "*.rej", "*.BACKUP.*", "*.LOCAL.*", "*.REMOTE.*", "*.BASE.*")
                 for path in (ROOT / "cnngrad").rglob(pattern)]
    assert leftovers == []

"""Running ``cnngrad`` and judging the outcome by docs/reference.md §7, shared by every test group.

An outcome is allowed when it is exit 0 or 1 with valid output (one JSON document with ``--format
json``, one well-formed SVG document with ``--format svg``, no ``nan`` or ``inf`` printed where a
number should be), or exit 2 with exactly one ``error:`` line naming the spec file and only indented
detail lines under it; never a traceback, an ``internal error``, a warning or a hang (every run is
under a time guard, ``GUARD_SECONDS``; the guard only catches hangs, it times nothing).
``invoke`` runs through click's CliRunner and returns click's result unjudged,
``run_in_process`` runs through it under the guard, ``run_subprocess`` the installed entry point,
``run_text`` a spec text written to a file and judged.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

GUARD_SECONDS = 20.0           # a hang guard, far above the ~0.3 s a command takes
MARKER = "CNNGRAD-PLANTED-SECRET-5d1e"     # in files whose content no output may show
NAN_INF = re.compile(r"(?<![\w.])-?(?:nan|inf)(?![\w.]| \(overflow\))", re.I)   # a marked overflow is allowed


class Hang(BaseException):
    """Raised by the guard's alarm; a BaseException so no ``except Exception`` swallows it."""


@dataclass
class Outcome:
    command: list[str]
    exit_code: int | None
    stdout: str
    stderr: str
    problem: str | None = None


def _alarm(signum, frame):
    raise Hang()


def invoke(*args, input=None, env=None):
    """``cnngrad ARGS`` through click's CliRunner, each argument as a string, unjudged: the click
    Result (exit_code, stdout, stderr, output) for a test that reads what the command printed."""
    from click.testing import CliRunner
    from cnngrad.cli import cli
    return CliRunner().invoke(cli, [str(arg) for arg in args], input=input, env=env)


def run_in_process(args: list[str], spec_text: str | None = None) -> Outcome:
    """``cnngrad ARGS`` through click's CliRunner, stdout and stderr apart, under the hang guard."""
    from click.testing import CliRunner
    from cnngrad.cli import cli
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, GUARD_SECONDS)
    try:
        with warnings.catch_warnings(record=True) as caught:
            # a warning would reach a user's stderr; under pytest it would not reach ours
            warnings.simplefilter("always")
            result = CliRunner().invoke(cli, args, input=spec_text, env={"NO_COLOR": "1"}, prog_name="cnngrad")
        outcome = Outcome(args, result.exit_code, result.stdout, result.stderr)
        if caught:
            first = caught[0]
            outcome.problem = (f"a warning on stderr: {first.category.__name__}: {first.message} "
                               f"({Path(first.filename).name}:{first.lineno})")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            import traceback
            outcome.problem = "exception escaped: " + "".join(
                traceback.format_exception(type(result.exception), result.exception,
                                           result.exception.__traceback__))
        return outcome
    except Hang:
        return Outcome(args, None, "", "", f"hang: no result within {GUARD_SECONDS} s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_text(tmp_path: Path, text: str | bytes, command: str | list[str], *options: str) -> Outcome:
    """Write TEXT to tmp_path/'net.yaml', run ``cnngrad COMMAND net.yaml OPTIONS`` in process and
    assert the outcome passes the judge. COMMAND is a word or a list (the word, then arguments
    that follow the path, as ``["explain", "grad.input[0]"]``)."""
    command = [command] if isinstance(command, str) else list(command)
    path = tmp_path / "net.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    outcome = run_in_process([command[0], str(path), *command[1:], *options])
    assert judge(outcome, str(path)) is None, judge(outcome, str(path))
    return outcome


def cnngrad_script() -> str:
    """The console script installed next to this interpreter (venv/bin/cnngrad)."""
    folder = Path(sys.executable).parent
    for name in ("cnngrad", "cnngrad.exe"):
        if (folder / name).exists():
            return str(folder / name)
    import pytest
    pytest.skip(f"no cnngrad script next to {sys.executable}; install the project first")


def run_subprocess(args: list[str], spec_text: str | None = None) -> Outcome:
    """The installed entry point in a real process, killed by the guard if it hangs."""
    exe = cnngrad_script()
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR",)}
    env["NO_COLOR"] = "1"
    try:
        done = subprocess.run([exe, *args], input=spec_text, capture_output=True, text=True,
                              timeout=GUARD_SECONDS, env=env)
    except subprocess.TimeoutExpired:
        return Outcome(args, None, "", "", f"hang: no result within {GUARD_SECONDS} s")
    return Outcome(args, done.returncode, done.stdout, done.stderr)


def judge(outcome: Outcome, spec_name: str, options=()) -> str | None:
    """None when the outcome is one docs/reference.md §7 allows; otherwise what is wrong with it. An error
    line may name one of ``options`` (given on the command line) instead of the spec file."""
    if outcome.problem:
        return outcome.problem
    text = outcome.stdout + outcome.stderr
    if MARKER in text:
        return "the content of a planted file was printed"
    if "Traceback" in text:
        return "a traceback was printed"
    if "internal error" in text:
        return "an internal error: " + outcome.stderr.strip()[:300]
    fmt_json = "json" in outcome.command
    command = outcome.command[0]
    if outcome.exit_code in (0, 1):
        if outcome.exit_code == 1 and command != "check":
            return f"{command} exited 1 (only check may)"
        if outcome.stderr.strip():
            return f"exit {outcome.exit_code} with stderr: {outcome.stderr.strip()[:300]}"
        if fmt_json:
            try:
                json.loads(outcome.stdout)
            except ValueError as err:
                return f"stdout is not one JSON document: {err}"
        elif "svg" in outcome.command:
            try:
                ET.fromstring(outcome.stdout)
            except ET.ParseError as err:
                return f"stdout is not one well-formed SVG document: {err}"
        else:   # titles (the spec's path and name, which a mutant may spell "Seed NaN") aside
            body = "\n".join(line for line in outcome.stdout.splitlines() if spec_name not in line)
            if NAN_INF.search(body):
                return "nan or inf printed: " + NAN_INF.search(body).group()
        if not outcome.stdout.strip():
            return "exit 0/1 with no output"
        return None
    if outcome.exit_code == 2:
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        if not lines or not lines[0].startswith("error: ") or \
                not all(line.startswith("  ") for line in lines[1:]):
            return f"exit 2 needs exactly one 'error:' line on stderr, got {outcome.stderr!r:.400}"
        if spec_name not in lines[0]:
            if not any(option in lines[0] for option in options):
                return f"the error does not name the file {spec_name}: {lines[0]}"
            # a usage error: nothing ran, so nothing on stdout
            return f"a usage error with output: {outcome.stdout[:200]!r}" if outcome.stdout.strip() else None
        if fmt_json and command == "check":
            try:
                json.loads(outcome.stdout)
            except ValueError as err:
                return f"check's stdout is not one JSON document: {err}"
        elif command != "check" and outcome.stdout.strip():
            return f"exit 2 with output on stdout: {outcome.stdout[:200]!r}"
        return None
    return f"exit code {outcome.exit_code}"

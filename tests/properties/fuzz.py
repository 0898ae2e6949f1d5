"""Spec fuzzing: mutate the specs in configs/ and run every command on each mutant.

The only outcomes allowed (docs/reference.md §7; tests/helpers/cli.py judges them) are

- exit 0 or 1 with valid output: one JSON document with ``--format json``, and no ``nan`` or
  ``inf`` printed where a number should be;
- exit 2 with exactly one ``error:`` line on stderr, naming the spec file, and under it only
  indented detail lines (a shape error's table of the shapes so far);

never a Python traceback, never an ``internal error``, never a hang (each command on each mutant
runs under a time guard, ``GUARD_SECONDS``; the guard only catches hangs, it times nothing).

Used by tests/properties/test_fuzz.py (a bounded run) and as a script for long runs::

    python tests/properties/fuzz.py --count 5000 --seed 1        # mutants; prints a summary, exit 1 on a finding
    python tests/properties/fuzz.py --count 200 --subprocess     # through the installed entry point too
    python tests/properties/fuzz.py --count 2000 --family files  # value-file attacks only
    python tests/properties/fuzz.py --option-runs 3000           # odd option values and standard streams

A mutant is 1–3 mutations of one spec: delete, duplicate or swap lines; delete, duplicate or
rename keys; numbers to strings, negatives, zeros, huge (1e308) and tiny values, NaN and
infinities; dropped or doubled brackets; changed indentation; a byte-level truncation; layer
words misspelt; sizes, strides and random shapes made absurd (paddings and dilations that would
make maps of gigabytes among them); numbers and settings in YAML 1.1,
1.2 and tagged forms (leading zeros, sexagesimal, exponents, ``!!int abc``, 5000-digit integers). The file-attack family
(``FILE_MUTATIONS``) points a top-level value at ``{file: ...}`` of a hostile target that
``plant_files`` lays out: symlinks to /proc files and devices, a FIFO, a folder, absolute paths
and ``..`` out of the spec's folder, UTF-16 and broken .npy files, and files holding ``MARKER``,
which must never appear in any output; such runs also get ``--allow-dir`` now and then, and a
FIFO stands in for the spec itself.

The option family (``fuzz_options``) runs the unmutated configs with odd values for every number
option (nan, inf, 1e400, huge and negative integers, hex, empty, words) and, through the
installed entry point, with odd standard streams (closed stdout, stdin or stderr, a full
stdout, a latin-1 or ASCII output encoding): exit 0, 1 or 2 by the same rules, where a usage
error names its option instead of the file, and a closed or full stdout is exit 2.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if __name__ == "__main__":      # run as a script: tests/ holds the helpers package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import ROOT  # noqa: E402
from helpers.cli import (GUARD_SECONDS, MARKER, Outcome, cnngrad_script, judge,  # noqa: E402
                         run_in_process, run_subprocess)

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")
KEY = re.compile(r"^(\s*-?\s*)([A-Za-z_][\w.\[\],]*)(\s*:)", re.M)
KEYS = ("name", "input", "layers", "loss", "target", "upstream_grad", "expect", "conv", "pool",
        "fc", "kernel", "bias", "weights", "stride", "padding", "dilation", "mode", "size", "type",
        "ties", "order", "slope", "random", "shape", "file", "tolerance", "flatten", "relu")
WORDS = ("relu", "sigmoid", "tanh", "softmax", "flatten", "max", "avg", "l2", "same", "valid",
         "cross_entropy", "binary_cross_entropy", "squared_error", "mse", "none", "first", "split",
         "convolution", "cross_correlation", "auto")
ODD_NUMBERS = ("0", "-0.0", "-1", "-3", "1e308", "-1e308", "1e300", "1e-300", "5e-324", "1e309",
               ".nan", ".inf", "-.inf", "nan", "NaN", "1e1000", "99999999999999999999999",
               "1000", "-1000", "0x10", "1_000", "true", "null", "~", "'0.5'", '"1"', "abc", "[]",
               "{}", "[1, 2]", "&a 1", "*a", "!!python/object:os.system 1", "2.5", "1000000000000")
OUTSIDE = "@OUTSIDE@"                     # in a mutant: the folder outside the specs' folder
FILE_TARGETS = ("env.csv", "status.txt", "mem.npy", "pipe.csv", "zero.npy", "urandom.csv", "dir.csv",
                "link.csv", "away/secret.csv", "../outside/secret.csv", f"{OUTSIDE}/secret.csv",
                f"{OUTSIDE}/header.npy", "inner_secret.csv", "ok.csv", "sub/../ok.csv", "bom.csv",
                "wide.csv", "bad_shape.npy", "loop.csv", "missing.csv", "/dev/zero.npy",
                "/proc/self/environ", "/etc/passwd.txt", "../../../../../../etc/hostname.txt")


# ------------------------------------------------------------------------------------------------
# mutations: each takes (text, rng) and returns the mutated text

def _lines(text):
    return text.split("\n")


def delete_line(text, rng):
    lines = _lines(text)
    del lines[rng.integers(len(lines))]
    return "\n".join(lines)


def duplicate_line(text, rng):
    lines = _lines(text)
    i = int(rng.integers(len(lines)))
    lines.insert(i, lines[i])
    return "\n".join(lines)


def swap_lines(text, rng):
    lines = _lines(text)
    i, j = rng.integers(len(lines), size=2)
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def indent_line(text, rng):
    lines = _lines(text)
    i = int(rng.integers(len(lines)))
    stripped = lines[i].lstrip(" ")
    lines[i] = " " * int(rng.integers(0, 9)) + ("\t" if rng.random() < 0.1 else "") + stripped
    return "\n".join(lines)


def _pick(pattern, text, rng):
    found = list(pattern.finditer(text))
    return found[rng.integers(len(found))] if found else None


def replace_number(text, rng):
    match = _pick(NUMBER, text, rng)
    if match is None:
        return text
    choice = rng.random()
    if choice < 0.2:
        new = "-" + match.group().lstrip("+-")
    elif choice < 0.3:
        new = f"'{match.group()}'"               # a number as a string
    else:
        new = str(rng.choice(ODD_NUMBERS))
    return text[:match.start()] + new + text[match.end():]


def scale_numbers(text, rng):
    """Every number on one line times 1e300, 1e-300 or 1000: huge inputs, tiny inputs, big logits."""
    lines = _lines(text)
    i = int(rng.integers(len(lines)))
    factor = float(rng.choice([1e300, 1e-300, 1000.0, -1000.0, 1e154]))
    lines[i] = NUMBER.sub(lambda m: repr(float(m.group()) * factor), lines[i])
    return "\n".join(lines)


def rename_key(text, rng):
    match = _pick(KEY, text, rng)
    if match is None:
        return text
    new = str(rng.choice(KEYS)) if rng.random() < 0.7 else match.group(2) + "x"
    return text[:match.start(2)] + new + text[match.end(2):]


def delete_key(text, rng):
    """Remove a key line and the lines indented under it."""
    lines = _lines(text)
    keyed = [i for i, line in enumerate(lines) if KEY.match(line)]
    if not keyed:
        return text
    i = int(rng.choice(keyed))
    indent = len(lines[i]) - len(lines[i].lstrip())
    j = i + 1
    while j < len(lines) and lines[j].strip() and len(lines[j]) - len(lines[j].lstrip()) > indent:
        j += 1
    return "\n".join(lines[:i] + lines[j:])


def replace_word(text, rng):
    words = [m for m in re.finditer(r"\b(" + "|".join(WORDS) + r")\b", text)]
    if not words:
        return text
    match = words[rng.integers(len(words))]
    new = str(rng.choice(WORDS + ("relux", "Max", "'", "", "conv", "pool: {}")))
    return text[:match.start()] + new + text[match.end():]


def brackets(text, rng):
    spots = [i for i, c in enumerate(text) if c in "[]{}"]
    if not spots:
        return text
    i = int(rng.choice(spots))
    if rng.random() < 0.7:
        return text[:i] + text[i + 1:]
    return text[:i] + text[i] + text[i:]


def truncate(text, rng):
    data = text.encode("utf-8")
    cut = int(rng.integers(len(data) + 1))
    return data[:cut].decode("utf-8", errors="ignore")


def absurd_value(text, rng):
    """A layer setting or value source pushed to an absurd size."""
    choices = [
        ("size: ", str(rng.choice(["0", "-2", "100000", "[0, 2]", "1e9", "[2]", "[2, 2, 2]",
                                   "20001, padding: 10000"]))),
        ("stride: ", str(rng.choice(["0", "-1", "1000000", "[1, 0]", "2.5"]))),
        ("padding: ", str(rng.choice(["-1", "1000", "[[0, 1]]", "bogus", "[[1, 1], [1, 100000]]", "30000"]))),
        ("dilation: ", str(rng.choice(["0", "-1", "100000", "100000, padding: 50000"]))),
        ("slope: ", str(rng.choice(["1e308", ".nan", "'x'"]))),
        ("tolerance: ", str(rng.choice(["-1", ".nan", "0", "1e308", "bad"]))),
    ]
    key, value = choices[rng.integers(len(choices))]
    lines = _lines(text)
    spots = [i for i, line in enumerate(lines) if key.strip(": ") + ":" in line]
    if spots:
        i = int(rng.choice(spots))
        lines[i] = re.sub(re.escape(key.strip()) + r"\s*\S.*?(?=[,}]|$)", f"{key}{value}", lines[i], count=1)
        return "\n".join(lines)
    random_source = "{random: {shape: %s, seed: 1}}" % rng.choice(
        ["[1000000, 1000000]", "[0]", "[]", "[3, -1]", "[2000, 2000, 2]", "[3, 3]", "7"])
    return re.sub(r"^input:.*$", "input: " + random_source, text, count=1, flags=re.M) \
        if rng.random() < 0.5 else text + f"\n{str(rng.choice(KEYS))}: {random_source}\n"


def file_source(text, rng):
    """A top-level value (input, or the spec's upstream_grad or target) read from a hostile file."""
    lines = _lines(text)
    spots = [i for i, line in enumerate(lines) if line.startswith(("input:", "upstream_grad:", "target:"))]
    entry = f"{{file: '{rng.choice(FILE_TARGETS)}'}}"
    if not spots:
        return text + f"\ninput: {entry}\n"
    i = int(rng.choice(spots))
    j = i + 1
    while j < len(lines) and lines[j].startswith((" ", "-")):
        j += 1
    return "\n".join(lines[:i] + [lines[i].split(":")[0] + ": " + entry] + lines[j:])


def plant_files(workdir: Path) -> Path:
    """Lay out FILE_TARGETS: workdir/specs (where mutants go) and workdir/outside; the specs folder."""
    specs, outside = workdir / "specs", workdir / "outside"
    for folder in (specs / "dir.csv", specs / "sub", outside):
        folder.mkdir(parents=True, exist_ok=True)
    (outside / "secret.csv").write_text(f"{MARKER},1\n2,3\n")
    (outside / "header.npy").write_bytes(b"\x93NUMPY\x01\x00\x30\x00{'descr': '" + MARKER.encode() + b"'}\n")
    (specs / "inner_secret.csv").write_text(f"1,2\n3,{MARKER}\n")
    (specs / "ok.csv").write_text("0.5, -1\n2, 0.25\n")
    (specs / "bom.csv").write_bytes(b"\xef\xbb\xbf1,2\r\n3,4\r\n")
    (specs / "wide.csv").write_bytes("1,2\n3,4\n".encode("utf-16"))
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (True, 2), }".ljust(117) + "\n"
    (specs / "bad_shape.npy").write_bytes(b"\x93NUMPY\x01\x00" + bytes([len(header), 0]) + header.encode() + bytes(16))
    links = {"env.csv": "/proc/self/environ", "status.txt": "/proc/self/status", "mem.npy": "/proc/self/mem",
             "zero.npy": "/dev/zero", "urandom.csv": "/dev/urandom", "link.csv": str(outside / "secret.csv"),
             "away": str(outside), "loop.csv": "loop.csv"}
    for name, target in links.items():
        if not (specs / name).is_symlink():
            (specs / name).symlink_to(target)
    for fifo in (specs / "pipe.csv", specs / "pipe.yaml"):
        if not fifo.exists():
            os.mkfifo(fifo)
    return specs


def huge_map(text, rng):
    """A conv dilated and padded, or a pool padded, so that one map would take gigabytes (the
    memory estimate must refuse it before anything is allocated)."""
    lines = _lines(text)
    spots = [i for i, line in enumerate(lines) if re.match(r"\s*- (conv|pool):", line)]
    if not spots:
        return text + "\nlayers: [{pool: {type: avg, size: 20001, padding: 10000}}]\n"
    i = int(rng.choice(spots))
    indent = " " * (lines[i].index("-") + 4)
    dilation, padding = rng.choice([(100000, 50000), (1, 30000), (3000, 3000), (1, 20000)])
    if lines[i].rstrip().endswith("}"):            # - pool: {type: max, size: 2}: a window to match
        line = re.sub(r"size: [^,}]+", f"size: {2 * padding + 1}", lines[i].rstrip())
        lines[i] = line[:-1] + f", padding: {padding}}}"
    elif "conv" in lines[i]:
        lines.insert(i + 1, f"{indent}dilation: {dilation}\n{indent}padding: {padding}")
    else:
        lines.insert(i + 1, f"{indent}padding: {padding}")
    return "\n".join(lines)


YAML_NUMBER_FORMS = (
    "010", "-010", "00", "0010.5", "1:30", "-1:30.5", "190:20:30", "1_000", "0b101", "0o17", "0x1F",
    "0x", "1.5e3", "6.02e23", "1.0e0", "1e-3", ".5", "-.5", "+1.5", "1.", "1E3", "1e", ".e1",
    ".NaN", ".Inf", "-.INF", ".Nan", "yes", "no", "on", "off", "True", "FALSE", "Null", "~",
    "!!int abc", "!!int 2.5", "!!int 010", "!!int 7", "!!float abc", "!!float 1", "!!float nan",
    "!!bool yes", "!!null 0", "!!str 1", "1000000000000000000000", "-1000000000000000000000",
    "7" * 400, "7" * 4301, "9" * 5000 + ".5", "0" + "7" * 5000)


SETTING = re.compile(r"\b(?:stride|size|padding|dilation|seed|target|scale): *([^,}\n#]+)")


def yaml_number_form(text, rng):
    """A number, or a layer setting, written in a YAML 1.1, 1.2 or tagged form (issue 17.4, .13)."""
    new = str(rng.choice(YAML_NUMBER_FORMS))
    match = _pick(SETTING if rng.random() < 0.3 else NUMBER, text, rng) or _pick(NUMBER, text, rng)
    if match is None:
        return text
    group = 1 if match.re is SETTING else 0
    return text[:match.start(group)] + new + text[match.end(group):]


MUTATIONS = (delete_line, duplicate_line, swap_lines, indent_line, replace_number, replace_number,
             replace_number, scale_numbers, rename_key, delete_key, replace_word, brackets, truncate,
             absurd_value, huge_map, yaml_number_form)
FILE_MUTATIONS = (file_source,)


def mutate(text: str, rng: np.random.Generator, mutations=MUTATIONS) -> tuple[str, list[str]]:
    """1–3 random mutations of ``text``, and their names."""
    names = []
    for _ in range(int(rng.integers(1, 4))):
        mutation = mutations[rng.integers(len(mutations))]
        text = mutation(text, rng)
        names.append(mutation.__name__)
    return text, names


# ------------------------------------------------------------------------------------------------
# running every command on each mutant (helpers/cli.py runs one and judges its outcome)

def commands_for(path: str, rng: np.random.Generator, small: bool) -> list[list[str]]:
    """forward, backward and check on one spec file, with a random --format each."""
    def fmt():
        return ["--format", str(rng.choice(["json", "table", "json", "markdown", "latex", "svg", "html"]))]
    check = ["check", path] + (["--fast"] if not small or rng.random() < 0.5 else [])
    return [["forward", path] + fmt(), ["backward", path] + fmt()
            + (["--lr", "0.1"] if rng.random() < 0.2 else []), check + fmt()]


@dataclass
class Report:
    mutants: int = 0
    runs: int = 0
    outcomes: dict = field(default_factory=dict)      # exit code -> count
    findings: list = field(default_factory=list)      # (description, mutations, mutant text, outcome)
    slowest: tuple = (0.0, None)

    def summary(self) -> str:
        codes = ", ".join(f"exit {k}: {v}" for k, v in sorted(self.outcomes.items(), key=str))
        return (f"{self.mutants} mutants, {self.runs} command runs ({codes}); "
                f"slowest run {self.slowest[0]:.2f} s ({self.slowest[1]}); "
                f"{len(self.findings)} finding(s)")


def fuzz(count: int, seed: int, workdir: Path, subprocess_every: int = 0,
         configs=CONFIGS, report: Report | None = None, mutations=MUTATIONS) -> Report:
    """Run ``count`` mutants (drawn round-robin from ``configs``) through every command; the
    mutants are written to workdir/specs, beside plant_files' targets."""
    rng = np.random.default_rng(seed)
    report = report or Report()
    originals = [(p, p.read_text(encoding="utf-8")) for p in configs]
    specs = plant_files(workdir)
    for n in range(count):
        source, text = originals[n % len(originals)]
        mutant, names = mutate(text, rng, mutations)
        mutant = mutant.replace(OUTSIDE, str(workdir / "outside"))
        stdin = rng.random() < 0.1
        path = specs / f"m{n}_{source.name}"
        path.write_text(mutant, encoding="utf-8", errors="surrogateescape")
        attack = "file_source" in names
        if attack and not stdin and rng.random() < 0.05:
            path = specs / "pipe.yaml"                    # a FIFO as the spec: refused, not waited on
        spec_arg = "-" if stdin else str(path)
        spec_name = "<stdin>" if stdin else str(path)
        small = len(mutant) < 3000 and "lenet" not in source.name
        through_subprocess = subprocess_every and n % subprocess_every == 0
        allow = ["--allow-dir", str(rng.choice(["/", str(workdir / "outside")]))] \
            if attack and rng.random() < 0.5 else []
        for args in commands_for(spec_arg, rng, small):
            args = args + allow
            start = time.perf_counter()
            runner = run_subprocess if through_subprocess else run_in_process
            outcome = runner(args, mutant if stdin else None)
            elapsed = time.perf_counter() - start
            if elapsed > report.slowest[0]:
                report.slowest = (elapsed, f"{' '.join(args)} from {source.name}")
            report.runs += 1
            report.outcomes[outcome.exit_code] = report.outcomes.get(outcome.exit_code, 0) + 1
            problem = judge(outcome, spec_name)
            if problem:
                report.findings.append((problem, names, mutant, outcome))
        report.mutants += 1
        if path.name != "pipe.yaml":
            path.unlink()
    return report


# ------------------------------------------------------------------------------------------------
# the option family: odd values for every number option, odd standard streams

OPTION_VALUES = ("nan", "-nan", "NaN", "inf", "-inf", "infinity", "1e400", "-1e400", "1e308", "-1e308",
                 "1e-320", "0", "-0", "-1", "1", "0.5", "2", "17", "18", "99999999999999999999999",
                 "-99999999999999999999999", "1e3", "0x10", "1_000", "", "abc", " 3", "--", "-")
NUMBER_OPTIONS = {
    "forward": ("--precision", "--max-entries", "--max-file-size"),
    "backward": ("--precision", "--max-entries", "--max-file-size", "--lr"),
    "explain": ("--precision", "--max-entries", "--max-file-size"),
    "check": ("--eps", "--rtol", "--atol", "--max-entries", "--max-file-size"),
}
STDIO = {          # an odd standard stream: a redirection for sh, and the environment it adds
    "closed stdout": (">&-", {}), "full stdout": (">/dev/full", {}), "closed stdin": ("<&-", {}),
    "closed stderr": ("2>&-", {}), "latin-1": ("", {"PYTHONIOENCODING": "latin-1"}),
    "ascii": ("", {"PYTHONIOENCODING": "ascii"}),
}
OPTION_CONFIGS = [p for p in CONFIGS if "lenet" not in p.name and "3x32x32" not in p.name]


def option_args(rng: np.random.Generator, spec_arg: str, input_rank: int) -> list[str]:
    """One command on ``spec_arg`` with 1-2 number options set to odd values, and a format."""
    command = str(rng.choice(list(NUMBER_OPTIONS)))
    args = [command, spec_arg]
    if command == "explain":
        args.append(f"grad.input[{','.join('0' * input_rank)}]")
    for _ in range(int(rng.integers(1, 3))):
        option, value = str(rng.choice(NUMBER_OPTIONS[command])), str(rng.choice(OPTION_VALUES))
        args += [f"{option}={value}"] if rng.random() < 0.2 else [option, value]
    if rng.random() < 0.5:
        args += ["--format", str(rng.choice(list(("json", "table", "markdown", "latex"))))]
    return args


def run_with_stdio(args: list[str], stdio: str, spec_text: str | None = None) -> Outcome:
    """The installed entry point with one odd standard stream (STDIO), under the hang guard."""
    redirect, extra = STDIO[stdio]
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "PYTHONIOENCODING")}
    env.update(NO_COLOR="1", **extra)
    command = ["sh", "-c", f'exec "$0" "$@" {redirect}', cnngrad_script(), *args]
    try:
        done = subprocess.run(command, input=None if spec_text is None else spec_text.encode(),
                              capture_output=True, timeout=GUARD_SECONDS, env=env)
    except subprocess.TimeoutExpired:
        return Outcome(args, None, "", "", f"hang: no result within {GUARD_SECONDS} s")
    encoding = extra.get("PYTHONIOENCODING", "utf-8")
    try:
        return Outcome(args, done.returncode, done.stdout.decode(encoding), done.stderr.decode(encoding))
    except UnicodeDecodeError as err:
        return Outcome(args, done.returncode, "", "", f"output not in the {encoding} encoding: {err}")


def judge_stdio(outcome: Outcome, spec_name: str, stdio: str | None) -> str | None:
    """``judge`` with the usage errors' options, and what an odd standard stream changes:
    a closed or full stdout is exit 2 with one error line (check: one more per spec that could
    not run, before the output failed), a closed stderr leaves the exit code."""
    options = [arg.split("=")[0] for arg in outcome.command if arg.startswith("--")]
    if stdio in ("closed stdout", "full stdout"):
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        allowed = len(lines) >= 1 if outcome.command[0] == "check" else len(lines) == 1
        if outcome.problem or outcome.exit_code != 2 or not allowed or \
                not all(line.startswith("error: ") for line in lines) or "Traceback" in outcome.stderr:
            return outcome.problem or f"{stdio}: exit {outcome.exit_code}, stderr {outcome.stderr!r:.300}"
        return None
    if stdio == "closed stderr":
        allowed = (0, 1, 2) if outcome.command[0] == "check" else (0, 2)
        return outcome.problem or (None if outcome.exit_code in allowed else f"exit code {outcome.exit_code}")
    return judge(outcome, spec_name, options)


def fuzz_options(count: int, seed: int, stdio_every: int = 10, report: Report | None = None,
                 configs=OPTION_CONFIGS) -> Report:
    """``count`` runs of the option family; every ``stdio_every``-th in a real process with an odd
    standard stream (0: none), the others in process. ``report.mutants`` counts the runs."""
    from cnngrad.spec import load_model
    rng = np.random.default_rng(seed)
    report = report or Report()
    specs = [(str(p), p.read_text(encoding="utf-8"), np.ndim(load_model(str(p)).values(gradients=False)["input"]))
             for p in configs]
    for n in range(count):
        path, text, rank = specs[n % len(specs)]
        stdio = str(rng.choice(list(STDIO))) if stdio_every and n % stdio_every == 0 else None
        stdin = stdio != "closed stdin" and rng.random() < 0.1 or stdio == "closed stdin" and rng.random() < 0.5
        args = option_args(rng, "-" if stdin else path, rank)
        spec_text = text if stdin and stdio != "closed stdin" else None
        start = time.perf_counter()
        outcome = run_with_stdio(args, stdio, spec_text) if stdio else run_in_process(args, spec_text)
        elapsed = time.perf_counter() - start
        if elapsed > report.slowest[0]:
            report.slowest = (elapsed, " ".join(args) + (f" with {stdio}" if stdio else ""))
        report.runs += 1
        report.mutants += 1
        report.outcomes[outcome.exit_code] = report.outcomes.get(outcome.exit_code, 0) + 1
        problem = judge_stdio(outcome, "<stdin>" if stdin else path, stdio)
        if problem:
            report.findings.append((problem, [stdio or "in process"], " ".join(args), outcome))
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="number of mutants")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--option-runs", type=int, default=0,
                        help="run the option family this many times instead (every 10th with odd stdio)")
    parser.add_argument("--subprocess", action="store_true",
                        help="run every 10th mutant through the installed entry point")
    parser.add_argument("--show", type=int, default=5, help="findings to print in full")
    parser.add_argument("--family", choices=["all", "spec", "files"], default="all",
                        help="spec: text mutations; files: value-file attacks; all: both")
    options = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if options.option_runs:
        return _print_report(fuzz_options(options.option_runs, options.seed), options.show)
    with tempfile.TemporaryDirectory(prefix="cnngrad-fuzz-") as folder:
        mutations = {"spec": MUTATIONS, "files": FILE_MUTATIONS, "all": MUTATIONS + FILE_MUTATIONS}
        report = fuzz(options.count, options.seed, Path(folder),
                      subprocess_every=10 if options.subprocess else 0,
                      mutations=mutations[options.family])
    return _print_report(report, options.show)


def _print_report(report: Report, show: int) -> int:
    """The summary and the first ``show`` distinct findings; the exit code, 1 on a finding."""
    print(report.summary())
    seen = set()
    for problem, names, mutant, outcome in report.findings:
        key = problem.splitlines()[-1][:120]
        if key in seen or len(seen) >= show:
            continue
        seen.add(key)
        print(f"\n--- {problem}\n    mutations: {names}; command: {outcome.command}\n"
              f"--- mutant ---\n{mutant}\n--- stderr ---\n{outcome.stderr}")
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())

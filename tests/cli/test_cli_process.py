"""The installed ``cnngrad`` as a process: closed or full standard streams, odd output encodings,
Ctrl-C and a reader that goes away. Each outcome is an exit code a script can read and at most
one ``error:`` line, never a traceback.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.cli import cnngrad_script

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file descriptors and signals")

ROOT = Path(__file__).resolve().parents[2]
SMALL = str(ROOT / "configs" / "seed003_pool_into_fc.yaml")


def environment(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "PYTHONIOENCODING")}
    env.update(extra)
    return env


def run_shell(redirect: str, *args, **env):
    """``cnngrad ARGS REDIRECT`` through sh, e.g. REDIRECT ``>&-`` closes standard output."""
    command = 'exec "$0" "$@" ' + redirect
    return subprocess.run(["sh", "-c", command, cnngrad_script(), *args], capture_output=True,
                          text=True, env=environment(**env), timeout=60)


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize("args", [["forward", SMALL], ["check", SMALL], ["schema"], ["--help"]])
def test_a_closed_standard_output_is_exit_2_with_a_message(args):
    done = run_shell(">&-", *args)
    assert done.returncode == 2
    assert "standard output" in one_error_line(done.stderr)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["--help"], ["--version"], ["check", "--help"], ["forward", SMALL],
                                  ["check", SMALL], ["schema"], ["init"]])
def test_output_to_a_full_device_is_one_error_line(args):
    done = run_shell(">/dev/full", *args)
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "standard output" in line and "internal error" not in line


def test_a_spec_from_a_closed_standard_input_is_one_error_line():
    done = run_shell("<&-", "forward", "-")
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert line.startswith("error: <stdin>: ") and "internal error" not in line


@pytest.mark.parametrize("encoding", ["latin-1", "ascii", "cp1252"])
@pytest.mark.parametrize("args", [["forward", SMALL], ["backward", SMALL, "--lr", "0.1"], ["check", SMALL],
                                  ["explain", SMALL, "grad.fc1.weights[0,1]"], ["check", "--help"]])
def test_an_output_encoding_without_the_symbols_gets_ascii_equivalents(args, encoding):
    done = subprocess.run([cnngrad_script(), *args], capture_output=True, env=environment(PYTHONIOENCODING=encoding),
                          timeout=60)
    assert (done.returncode, done.stderr) == (0, b""), done.stderr
    if args[-1] == "--help" and encoding == "ascii":
        return                              # click's own text: UTF-8 where a stream says ASCII
    text = done.stdout.decode(encoding)     # what was written is valid in the asked encoding
    assert "?" not in text.replace("[?]", "")  # the symbols cnngrad writes all have an equivalent
    if args[0] == "backward":
        assert "fc1.weights - 0.1" in text    # '−' spelled out


def test_an_error_message_in_an_ascii_encoding(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(Path(SMALL).read_text().replace("layers:", "layers:\n  - pool: {type: maxx}"))
    done = subprocess.run([cnngrad_script(), "forward", str(spec)], capture_output=True,
                          env=environment(PYTHONIOENCODING="ascii"), timeout=60)
    assert done.returncode == 2
    assert one_error_line(done.stderr.decode("ascii")).startswith(f"error: {spec}:")


def _wait_until_reading_stdin(process, timeout=20.0):
    """Wait until the process blocks reading standard input (so its signal handling is set up)."""
    deadline = time.monotonic() + timeout
    syscall = Path(f"/proc/{process.pid}/syscall")
    while time.monotonic() < deadline:
        try:
            fields = syscall.read_text().split()
        except OSError:
            time.sleep(2.0)          # no /proc: a generous pause instead
            return
        if fields[:2] == ["0", "0x0"]:   # read(0, ...) on x86-64
            return
        time.sleep(0.05)
    pytest.skip("could not see the process reading standard input")


def test_ctrl_c_ends_the_process_by_sigint_with_one_line():
    process = subprocess.Popen([cnngrad_script(), "check", "-"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment())
    _wait_until_reading_stdin(process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGINT       # a shell reports 130 and stops its script
    assert (out, err) == (b"", b"error: interrupted\n")


@pytest.mark.parametrize("args", [["forward", SMALL], ["check", SMALL], ["--help"]])
def test_a_reader_that_went_away_ends_the_process_quietly_by_sigpipe(args):
    process = subprocess.Popen([cnngrad_script(), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=environment())
    process.stdout.close()                            # like `| head -1` once head has exited
    err = process.stderr.read()
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGPIPE      # a shell reports 141, as for `yes | head -1`
    assert err == b""


def test_the_ascii_equivalents_of_cnngrads_symbols():
    import codecs

    from cnngrad.process import ASCII_FALLBACK, _ascii_equivalent
    codecs.register_error(ASCII_FALLBACK, _ascii_equivalent)     # as the process does
    text = "∂E/∂W[o,i] = δ[o] · a[i] − Σ θ × η, Δ ≤ ½ — ok"
    assert text.encode("ascii", ASCII_FALLBACK).decode() == \
        "dE/dW[o,i] = delta[o] * a[i] - sum theta x eta, Delta <= 1/2 - ok"
    assert text.encode("latin-1", ASCII_FALLBACK).decode("latin-1") == \
        "dE/dW[o,i] = delta[o] · a[i] - sum theta × eta, Delta <= ½ - ok"    # what latin-1 has stays
    # the norms' x̂ is x and a combining circumflex, which no 8-bit encoding holds
    assert "x̂[0] = (x − μ)/σ".encode("ascii", ASCII_FALLBACK).decode() == "xhat[0] = (x - mu)/sigma"


@pytest.mark.parametrize("program", [[], ["-m", "cnngrad"]], ids=["script", "python -m"])
def test_ctrl_c_while_the_command_loads_is_one_line_not_a_traceback(tmp_path, program):
    """Ctrl-C in the first tenth of a second, while click and the commands are imported (before
    the command's handler is set up): the same one line and SIGINT, no KeyboardInterrupt traceback.
    A stand-in `click` on PYTHONPATH holds the import until the signal has been sent."""
    ready = tmp_path / "importing"
    (tmp_path / "click.py").write_text(f"import pathlib, time\npathlib.Path({str(ready)!r}).touch()\n"
                                       "time.sleep(60)\n", encoding="utf-8")
    command = [sys.executable, *program] if program else [cnngrad_script()]
    process = subprocess.Popen([*command, "check", SMALL], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=environment(PYTHONPATH=str(tmp_path)))
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    assert ready.exists(), process.communicate(timeout=60)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGINT
    assert (out, err) == (b"", b"error: interrupted\n")


def test_a_program_that_imports_cnngrad_keeps_its_own_ctrl_c():
    """Only the cnngrad program installs its Ctrl-C handling; `import cnngrad.cli` elsewhere leaves
    Python's KeyboardInterrupt in place."""
    code = ("import signal, cnngrad, cnngrad.cli, cnngrad.api\n"
            "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout == "True\n", done.stderr

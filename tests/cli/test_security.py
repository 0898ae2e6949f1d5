"""What a spec may read, and that nothing it reads is shown (SECURITY.md).

A ``{file: ...}`` value is read only when it resolves, symlinks included, inside the spec's
folder (or a folder given with ``--allow-dir``), only from a regular file, never more bytes than
the limit, and no message quotes its content. Every run is judged by tests/helpers/cli.py's rules (exit
2 with one ``error:`` line naming the spec, no traceback, no warning) and scanned for a marker
planted in the files a spec must not show.
"""
from __future__ import annotations

import codecs
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import cli
from cnngrad.spec import Limits, SpecError, load_model
from cnngrad.spec.nodes import Cursor
from cnngrad.spec.values import ValueReader
from cnngrad.spec.yamlload import compose

MARKER = "SECRET-MARKER-93c1"          # planted in files whose content must never be printed
COMMANDS = [["forward"], ["backward"], ["check", "--fast"], ["explain", "grad.input[0,0]"]]


def spec_with_input(source: str) -> str:
    return f"input: {source}\nlayers: [relu]\nloss: none\nupstream_grad: [[1, 1], [1, 1]]\n"


@pytest.fixture
def place(tmp_path):
    """tmp/specs (the spec's folder, with a good value file) and tmp/outside (a planted secret)."""
    specs, outside = tmp_path / "specs", tmp_path / "outside"
    specs.mkdir()
    outside.mkdir()
    (specs / "good.csv").write_text("1, 2\n3, 4\n")
    (outside / "secret.csv").write_text(f"{MARKER},1\n2,3\n")
    (outside / "numbers.csv").write_text("5, 6\n7, 8\n")
    return specs, outside


def run(specs, text: str, command=("forward",), *options: str) -> cli.Outcome:
    """Run COMMAND on specs/net.yaml in process; assert fuzz's judge and that no marker shows."""
    path = specs / "net.yaml"
    path.write_text(text)
    command = list(command)
    outcome = cli.run_in_process([command[0], str(path), *command[1:], *options])
    assert cli.judge(outcome, str(path)) is None, cli.judge(outcome, str(path))
    assert MARKER not in outcome.stdout + outcome.stderr
    return outcome


def error_line(outcome: cli.Outcome) -> str:
    assert outcome.exit_code == 2, outcome.stdout
    (line,) = outcome.stderr.splitlines()
    return line


# --- 17.1: value files stay inside the spec's folder ------------------------------------------

@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink", "symlinked folder"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_value_file_outside_the_folder_is_refused_at_its_node(place, how, command):
    specs, outside = place
    name = {"absolute": str(outside / "secret.csv"), "dotdot": "../outside/secret.csv",
            "symlink": "link.csv", "symlinked folder": "away/secret.csv"}[how]
    (specs / "link.csv").symlink_to(outside / "secret.csv")
    (specs / "away").symlink_to(outside)
    line = error_line(run(specs, spec_with_input(f"{{file: {name}}}"), command))
    assert line.startswith(f"error: {specs / 'net.yaml'}:1:15: input.file: file ")
    assert "outside the spec's folder" in line and "--allow-dir" in line


def test_dotdot_and_symlinks_that_stay_inside_are_read(place):
    specs, _ = place
    (specs / "sub").mkdir()
    (specs / "inner.csv").symlink_to(specs / "good.csv")
    for name in ("../specs/good.csv", "sub/../good.csv", "inner.csv", str(specs / "good.csv")):
        model = load_model(_write(specs, spec_with_input(f"{{file: '{name}'}}")))
        np.testing.assert_array_equal(model.values(gradients=False)["input"], [[1, 2], [3, 4]])


def test_allow_dir_admits_another_folder(place):
    specs, outside = place
    text = spec_with_input(f"{{file: {outside / 'numbers.csv'}}}")
    assert "--allow-dir" in error_line(run(specs, text))
    model = load_model(_write(specs, text), allow_dirs=[str(outside)])
    np.testing.assert_array_equal(model.values(gradients=False)["input"], [[5, 6], [7, 8]])
    outcome = run(specs, text, ["forward", "--format", "json"], "--allow-dir", str(outside))
    assert outcome.exit_code == 0 and '"output": [[5.0, 6.0], [7.0, 8.0]]' in outcome.stdout


def test_allow_dir_on_every_command_that_reads_a_spec(place):
    specs, outside = place
    text = spec_with_input(f"{{file: ../outside/numbers.csv}}")
    for command in COMMANDS:
        assert run(specs, text, command, "--allow-dir", str(outside)).exit_code == 0, command


def test_a_spec_on_stdin_reads_from_the_current_folder(place, monkeypatch):
    specs, outside = place
    monkeypatch.chdir(specs)
    outcome = cli.run_in_process(["forward", "-"], spec_with_input("{file: good.csv}"))
    assert outcome.exit_code == 0, outcome.stderr
    outcome = cli.run_in_process(["forward", "-"], spec_with_input("{file: ../outside/secret.csv}"))
    assert cli.judge(outcome, "<stdin>") is None and "outside the spec's folder" in outcome.stderr
    assert MARKER not in outcome.stdout + outcome.stderr


def test_the_content_of_an_allowed_text_file_is_never_quoted(place):
    specs, outside = place
    line = error_line(run(specs, spec_with_input("{file: ../outside/secret.csv}"), ["forward"],
                          "--allow-dir", str(outside)))
    assert line.endswith("input.file: file '../outside/secret.csv', row 1, column 1: expected a number")


@pytest.mark.parametrize("content, where", [
    ("1,2\n3,x\n", "row 2, column 2: expected a number"),
    ("# a comment\n\n1,2\n3,,\n", "row 4, column 2: expected a number"),
    ("1,2\n3,4,5\n", "row 2 has 3 columns, row 1 has 2"),
])
def test_a_bad_field_is_named_by_row_and_column(place, content, where):
    specs, _ = place
    (specs / "k.csv").write_text(content.replace("x", MARKER))
    line = error_line(run(specs, spec_with_input("{file: k.csv}")))
    assert line.endswith(f"input.file: file 'k.csv', {where}")


def test_environment_through_a_proc_symlink_is_never_shown(tmp_path):
    """The issue's own attack, in a real process whose environment holds the marker."""
    (tmp_path / "env.csv").symlink_to("/proc/self/environ")
    (tmp_path / "net.yaml").write_text(spec_with_input("{file: env.csv}"))
    env = dict(os.environ, CNNGRAD_PLANTED=MARKER, NO_COLOR="1")
    for options in ([], ["--allow-dir", "/"], ["--allow-dir", "/proc"]):
        done = subprocess.run([cli.cnngrad_script(), "forward", str(tmp_path / "net.yaml"), *options],
                              capture_output=True, text=True, env=env, timeout=cli.GUARD_SECONDS)
        assert MARKER not in done.stdout + done.stderr
        assert done.returncode == 2 and done.stdout == "" and len(done.stderr.splitlines()) == 1
        assert "input.file" in done.stderr


# --- 17.2: only regular files, the bytes actually read bounded ---------------------------------

def test_a_proc_file_is_refused_though_it_reports_size_zero(place):
    specs, _ = place
    (specs / "status.txt").symlink_to("/proc/self/status")
    line = error_line(run(specs, spec_with_input("{file: status.txt}"), ["forward"], "--allow-dir", "/proc"))
    assert "input.file" in line and "reports 0 bytes" in line and "Name:" not in line


@pytest.mark.parametrize("target, kind", [("/dev/zero", "a character device"),
                                          ("/dev/urandom", "a character device"),
                                          ("/dev/null", "a character device")])
def test_a_device_is_not_read(place, target, kind):
    specs, _ = place
    (specs / "dev.npy").symlink_to(target)
    assert "outside the spec's folder" in error_line(run(specs, spec_with_input("{file: dev.npy}")))
    line = error_line(run(specs, spec_with_input("{file: dev.npy}"), ["forward"], "--allow-dir", "/dev"))
    assert line.endswith(f"input.file: file 'dev.npy' is {kind}, not a regular file")


def test_a_fifo_value_file_is_refused_without_waiting(place):
    specs, _ = place
    os.mkfifo(specs / "pipe.csv")
    line = error_line(run(specs, spec_with_input("{file: pipe.csv}")))     # under the hang guard
    assert line.endswith("input.file: file 'pipe.csv' is a named pipe (FIFO), not a regular file")


def test_a_folder_is_called_a_folder_not_missing(place):
    specs, _ = place
    (specs / "d.csv").mkdir()
    line = error_line(run(specs, spec_with_input("{file: d.csv}")))
    assert line.endswith("input.file: file 'd.csv' is a folder, not a regular file")
    line = error_line(run(specs, spec_with_input("{file: good.csv/x.csv}")))
    assert "input.file: file 'good.csv/x.csv' not found" in line and "is a file, not a folder" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root searches every folder")
def test_a_file_in_an_unsearchable_folder_is_not_called_missing(place):
    specs, _ = place
    (specs / "locked").mkdir()
    (specs / "locked" / "k.csv").write_text("1,2\n3,4\n")
    (specs / "locked").chmod(0o600)
    try:
        line = error_line(run(specs, spec_with_input("{file: locked/k.csv}")))
    finally:
        (specs / "locked").chmod(0o700)
    assert "not found" not in line and "permission denied" in line


def test_a_permission_error_is_not_called_missing(tmp_path, monkeypatch):
    """The same as above where root searches every folder: the error as the system reports it."""
    import errno

    from cnngrad.spec import files

    def refuse(path):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(files.os, "stat", refuse)
    with pytest.raises(files.FileProblem, match="permission denied") as info:
        files.read_regular(str(tmp_path / "locked" / "k.csv"), 100)
    assert not isinstance(info.value, files.Missing)


def test_the_bytes_read_are_bounded_not_the_size_reported(tmp_path):
    from cnngrad.spec.files import FileProblem, read_regular
    path = tmp_path / "big.csv"
    path.write_bytes(b"1\n" * 600)
    assert len(read_regular(str(path), 1200)) == 1200
    with pytest.raises(FileProblem, match="has 1200 bytes, more than 1199"):
        read_regular(str(path), 1199)
    with pytest.raises(FileProblem, match="reports 0 bytes"):
        read_regular("/proc/self/status", 1 << 20)


# --- 17.15: a spec that is not a regular file ---------------------------------------------------

def test_a_fifo_spec_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "net.yaml")
    for command in COMMANDS:
        outcome = cli.run_in_process([command[0], str(tmp_path / "net.yaml"), *command[1:]])
        assert cli.judge(outcome, str(tmp_path / "net.yaml")) is None
        assert error_line(outcome).startswith(f"error: {tmp_path / 'net.yaml'}: not a regular file")


def test_a_device_spec_is_refused(tmp_path):
    with pytest.raises(SpecError, match="^/dev/zero: not a regular file"):
        load_model("/dev/zero")


def test_a_spec_through_a_proc_symlink_is_refused(tmp_path):
    (tmp_path / "net.yaml").symlink_to("/proc/self/environ")
    with pytest.raises(SpecError, match="reports 0 bytes"):
        load_model(str(tmp_path / "net.yaml"))


# --- 17.17: file messages and formats -------------------------------------------------------

def test_a_csv_with_a_utf8_bom_is_read(place):
    specs, _ = place
    (specs / "excel.csv").write_bytes(codecs.BOM_UTF8 + b"1,2\r\n3,4\r\n")
    model = load_model(_write(specs, spec_with_input("{file: excel.csv}")))
    np.testing.assert_array_equal(model.values(gradients=False)["input"], [[1, 2], [3, 4]])


@pytest.mark.parametrize("content, shape", [("1\n2\n3\n", (3, 1)), ("1,2,3\n", (3,)), ("7\n", ()),
                                            ("1,2\n3,4\n5,6\n", (3, 2))])
def test_a_csv_keeps_the_shape_it_is_written_in(place, content, shape):
    """Several rows are 2-D even of one column; one row is 1-D; one number a scalar (README)."""
    specs, _ = place
    (specs / "v.csv").write_text(content)
    node = compose("{file: v.csv}", "x.yaml", Limits())
    array = ValueReader(str(specs), Limits()).read(Cursor(node, "v", "x.yaml"))
    expected = np.array([float(x) for x in content.replace(",", " ").split()]).reshape(shape)
    assert array.shape == shape
    np.testing.assert_array_equal(array, expected)


def test_an_empty_csv_says_so_without_a_warning(place):
    specs, _ = place
    (specs / "e.csv").write_text("# nothing here\n\n")
    assert error_line(run(specs, spec_with_input("{file: e.csv}"))).endswith(
        "input.file: file 'e.csv' holds no numbers")


def test_a_utf16_csv_and_spec_say_utf16(place):
    specs, _ = place
    (specs / "w.csv").write_bytes("1,2\n3,4\n".encode("utf-16"))
    line = error_line(run(specs, spec_with_input("{file: w.csv}")))
    assert line.endswith("input.file: file 'w.csv' is UTF-16 text; save it as UTF-8")
    (specs / "wide.yaml").write_bytes(spec_with_input("[[1, 2], [3, 4]]").encode("utf-16"))
    with pytest.raises(SpecError) as info:
        load_model(str(specs / "wide.yaml"))
    assert str(info.value) == f"{specs / 'wide.yaml'}: is UTF-16 text; save it as UTF-8"
    (specs / "wider.yaml").write_bytes(spec_with_input("[[1, 2], [3, 4]]").encode("utf-32"))
    with pytest.raises(SpecError, match="is UTF-32 text; save it as UTF-8"):
        load_model(str(specs / "wider.yaml"))


def _npy_with_header(header: str) -> bytes:
    header = header.ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(32)


@pytest.mark.parametrize("shape", ["(True, 2)", "(2, -1)", "(2.0, 2)", "(None,)"])
def test_an_npy_header_with_a_bad_shape_is_an_error_at_the_node(place, shape):
    specs, _ = place
    (specs / "k.npy").write_bytes(_npy_with_header(
        "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }" % shape))
    line = error_line(run(specs, spec_with_input("{file: k.npy}")))
    assert "input.file: file 'k.npy'" in line and ("shape" in line or "header" in line)


def test_a_truncated_npy_and_a_longdouble_overflow_are_clean(place):
    specs, _ = place
    (specs / "t.npy").write_bytes(_npy_with_header(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (20, 20), }"))
    assert "input.file: file 't.npy'" in error_line(run(specs, spec_with_input("{file: t.npy}")))
    big = np.full((2, 2), np.finfo(np.longdouble).max, dtype=np.longdouble)
    with np.errstate(over="ignore"):
        overflows = not np.isfinite(big.astype(np.float64)).all()
    if not overflows:
        pytest.skip("longdouble is float64 on this platform")
    np.save(specs / "ld.npy", big)
    assert "NaN or infinite" in error_line(run(specs, spec_with_input("{file: ld.npy}")))


def test_a_huge_string_value_gives_a_short_error_line(place):
    specs, _ = place
    huge = "a" * 900_000
    for text in (spec_with_input(f"'{huge}'"), f"? {huge}\n: 1\n" + spec_with_input("[[1, 2], [3, 4]]"),
                 spec_with_input("[[1, 2], [3, 4]]") + f"expect:\n  ? {huge}\n  : 1\n",
                 spec_with_input(f"{{file: {huge}.csv}}"),
                 spec_with_input("[[1, 2], [3, 4]]").replace("[relu]", f"[{{pool: {{size: 1, type: {'1' * 900_000}}}}}]")):
        line = error_line(run(specs, text))
        assert len(line) < 400 and ("aaaaaaaaaa…" in line or "1111111111…" in line), line[:400]


def test_a_file_name_with_an_undecodable_byte_is_escaped(tmp_path):
    """A name that is not UTF-8 reaches neither an error line nor the JSON as a raw 0xFF byte."""
    folder = os.fsencode(tmp_path)
    bad, good = folder + b"/\xff.yaml", folder + b"/\xfe.yaml"
    with open(bad, "w") as file:
        file.write("input: [1, 2\n")
    with open(good, "w") as file:
        file.write("input: [1, 2]\nlayers: [relu]\nloss: none\nupstream_grad: [1, 1]\n")
    for args in ([b"forward", bad], [b"check", folder, b"--format", b"json"],
                 [b"forward", good, b"--format", b"json"], [b"forward", folder + b"/\xff\x1b.yaml"]):
        done = subprocess.run([os.fsencode(cli.cnngrad_script()), *args], capture_output=True,
                              env=dict(os.environ, NO_COLOR="1"), timeout=cli.GUARD_SECONDS)
        output = done.stdout + done.stderr
        assert b"\xff" not in output and b"\xfe" not in output and b"\x1b" not in output, output
        assert b"\\xff" in output or b"\\xfe" in output, output
        output.decode("utf-8")
    assert sys.getfilesystemencoding() == "utf-8"


def _write(folder, text: str) -> str:
    path = folder / "net.yaml"
    path.write_text(text)
    return str(path)


def test_a_value_file_over_the_byte_limit_is_refused_and_max_entries_raises_it(place):
    specs, _ = place
    with open(specs / "big.npy", "wb") as file:        # sparse: 70 MB reported, nothing written
        file.truncate(70 << 20)
    line = error_line(run(specs, spec_with_input("{file: big.npy}")))
    assert line.endswith(f"input.file: file 'big.npy' has {70 << 20} bytes, more than {64 << 20} "
                         "(Limits.max_data_file_bytes; --max-entries N allows 32·N bytes)")
    line = error_line(run(specs, spec_with_input("{file: big.npy}"), ["forward"], "--max-entries", "3000000"))
    assert "input.file: file 'big.npy' is not a .npy file" in line      # read, then judged


class _Planted:
    """Unpickling this makes a folder: the proof that a pickle was run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_pickled_npy_is_refused_and_never_unpickled(place):
    specs, _ = place
    proof = specs / "unpickled"
    np.save(specs / "p.npy", np.array([_Planted(str(proof))], dtype=object), allow_pickle=True)
    line = error_line(run(specs, spec_with_input("{file: p.npy}")))
    assert line.endswith("input.file: file 'p.npy' holds object values, not real numbers")
    assert not proof.exists()

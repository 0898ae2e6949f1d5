"""Text from a spec or a path never reaches the terminal as control sequences, nor a Markdown
reader as HTML or links: every command, every format, the error lines, and a terminal's colours."""
from __future__ import annotations

import json
import re

import pytest

from cnngrad.text import printable
from helpers.cli import invoke as run

# OSC (window title), a bell, CSI 2J (clear screen), an 8-bit CSI, OSC 52 (clipboard), DEL,
# a right-to-left override and an isolate; then Markdown and HTML
NAME = r'"\e]0;pwned\a\e[2J \x9b31m \e]52;c;cHduZWQ=\a \x7f \u202eabc\u2066 <b>x</b> & *y* [l](http://e.x) `c` _u_ |p|"'
RAW = ["\x1b", "\x07", "\x9b", "\x7f", "\u202e", "\u2066"]
SPEC = f"""\
name: {NAME}
input: [[1, 2], [3, 4]]
layers:
  - conv: {{kernel: [[0.5]], bias: 0}}
loss: squared_error
target: [[0, 0], [0, 0]]
expect:
  loss: 99
"""
COMMANDS = [["forward"], ["backward"], ["check"], ["explain", "grad.conv1.kernel[0,0]"]]
FORMATS = ["table", "markdown", "latex", "json", "svg", "html"]


def assert_no_raw_controls(text: str, allow_colour: bool = False):
    if allow_colour:                       # rich's own SGR colour codes are fine, nothing else
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    for char in RAW:
        assert char not in text, (char, text)
    assert not re.search("[\x00-\x09\x0b-\x1f]", text)


@pytest.fixture
def evil(tmp_path):
    folder = tmp_path / "\x1b]0;dir\x07"
    folder.mkdir()
    path = folder / "\x1b[2Jnet.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return str(path)


def test_printable_escapes_each_control_and_keeps_the_rest():
    assert printable("a\x1b[2Jb\x07\x7f\x9b\u202e\u2069\n\t") == r"a\x1b[2Jb\x07\x7f\x9b\u202e\u2069\n\t"
    assert printable("Seed 001 — ∂E/∂x · δ <é>") == "Seed 001 — ∂E/∂x · δ <é>"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_hostile_name_and_path_print_as_escapes(evil, command, fmt):
    result = run(command[0], evil, *command[1:], "--format", fmt)
    assert result.exit_code in (0, 1), result.output
    assert_no_raw_controls(result.stdout)
    if fmt == "json":          # the name as written (controls as \u escapes), the path as shown
        doc = json.loads(result.stdout)
        assert (doc["specs"][0] if command[0] == "check" else doc)["spec"] == printable(evil)
        if "name" in doc:
            assert doc["name"].startswith("\x1b]0;pwned\x07\x1b[2J \x9b31m")
    elif fmt != "latex" or command[0] != "explain":
        assert "pwned" in result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_markdown_escapes_html_links_and_emphasis_from_the_spec(evil, command):
    text = run(command[0], evil, *command[1:], "--format", "markdown").stdout
    assert "<b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text and " &amp; " in text
    assert "[l](http" not in text and r"\[l\](http" in text
    assert "*y*" not in text and r"\*y\*" in text and r"\_u\_" in text and r"\`c\`" in text


def test_the_terminal_gets_colours_but_not_the_spec_s_sequences(evil):
    result = run("forward", evil, env={"TTY_COMPATIBLE": "1", "FORCE_COLOR": "1", "COLORTERM": "truecolor"})
    assert result.exit_code == 0
    assert "\x1b[" in result.stdout                  # rich did colour it
    assert_no_raw_controls(result.stdout, allow_colour=True)
    assert r"\x1b]0;pwned\x07" in result.stdout


def test_error_lines_escape_the_path_and_the_spec_s_text(tmp_path, evil):
    missing = run("forward", str(tmp_path / "\x1b]0;gone\x07.yaml"))
    assert missing.exit_code == 2
    assert_no_raw_controls(missing.output)
    assert r"\x1b]0;gone\x07.yaml" in missing.output
    bad = tmp_path / "bad.yaml"
    bad.write_text('input: [[1]]\nlayers: ["\\e[2Jrelu"]\nloss: none\nupstream_grad: [[1]]\n')
    folder = run("check", str(bad), evil)
    assert folder.exit_code == 2
    assert_no_raw_controls(folder.output)
    assert len([line for line in folder.output.splitlines() if line.startswith("error:")]) == 1


def test_init_names_the_file_it_wrote_with_escapes(tmp_path):
    result = run("init", str(tmp_path / "\x1b]0;x\x07.yaml"))
    assert result.exit_code == 0
    assert_no_raw_controls(result.output)
    assert r"\x1b]0;x\x07.yaml" in result.output

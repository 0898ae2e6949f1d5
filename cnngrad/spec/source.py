"""Reading a spec's text from a path or standard input: size-bounded, UTF-8, no binary files."""
from __future__ import annotations

import os
import sys

from .errors import SpecError
from .limits import Limits

STDIN = "-"


def display_name(source: str) -> str:
    """The file name errors show: the path as given, or ``<stdin>``."""
    return "<stdin>" if source == STDIN else source


def read_text(source: str, limits: Limits) -> str:
    """The decoded text of ``source``; a SpecError (no line) if missing, too large or binary."""
    name = display_name(source)

    def fail(message: str):
        raise SpecError(name, None, None, "", message)

    if source == STDIN:
        if sys.stdin is None:
            fail("standard input is closed; pipe a spec into it or give a file")
        data = sys.stdin.buffer.read(limits.max_file_bytes + 1)
    else:
        if not os.path.exists(source):
            fail("file not found")
        if os.path.isdir(source):
            fail("is a folder, not a spec file")
        try:
            size = os.path.getsize(source)
            if size > limits.max_file_bytes:
                fail(f"the file has {size} bytes, larger than {limits.max_file_bytes} bytes "
                     "(Limits.max_file_bytes; raise it with --max-file-size)")
            with open(source, "rb") as stream:
                data = stream.read(limits.max_file_bytes + 1)
        except OSError as err:
            fail(f"cannot read the file: {err.strerror or err}")
    if len(data) > limits.max_file_bytes:
        fail(f"the file is larger than {limits.max_file_bytes} bytes (Limits.max_file_bytes; raise it with --max-file-size)")
    if b"\0" in data:
        fail("a binary file (it contains NUL bytes), not a YAML spec")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        fail(f"not UTF-8 text (undecodable byte at offset {err.start}); a spec is a YAML text file")

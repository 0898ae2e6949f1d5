"""Reading a spec's text from a path or standard input: a regular file, size-bounded, UTF-8."""
from __future__ import annotations

import sys

from .errors import SpecError
from .files import FileProblem, Missing, NotRegular, TooLarge, decode_text, printable_path, read_regular
from .limits import Limits

STDIN = "-"
LIMIT_HINT = "(Limits.max_file_bytes; raise it with --max-file-size)"


def display_name(source: str) -> str:
    """The file name errors and reports show: the path as given (escaped where it is not
    printable UTF-8), or ``<stdin>``."""
    return "<stdin>" if source == STDIN else printable_path(source)


def read_text(source: str, limits: Limits) -> str:
    """The decoded text of ``source``; a SpecError (no line) if missing, not a regular file,
    too large, or not UTF-8 text."""
    name = display_name(source)

    def fail(message: str):
        raise SpecError(name, None, None, "", message)

    try:
        if source != STDIN:
            return decode_text(read_regular(source, limits.max_file_bytes))
        if sys.stdin is None:
            fail("standard input is closed; pipe a spec into it or give a file")
        data = sys.stdin.buffer.read(limits.max_file_bytes + 1)
        if len(data) > limits.max_file_bytes:
            fail(f"the file is larger than {limits.max_file_bytes} bytes {LIMIT_HINT}")
        return decode_text(data)
    except Missing:
        fail("file not found")
    except NotRegular as err:
        fail(f"not a regular file but {err.kind}; give a spec file, or - to read standard input"
             if err.kind != "a folder" else "is a folder, not a spec file (check takes folders)")
    except TooLarge as err:
        fail(f"the file has {err.size} bytes, larger than {limits.max_file_bytes} bytes {LIMIT_HINT}")
    except FileProblem as err:
        fail(str(err))

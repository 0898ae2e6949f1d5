"""Reading the files a spec names: regular files only, never more bytes than a limit, UTF-8 text.

Shared by the spec itself (``source``) and its ``{file: ...}`` values (``values``). A problem is
a ``FileProblem`` whose text says what the path is (missing, a folder, a FIFO, a device, a /proc
file) and never quotes the file's content; callers put it after the file's name.
"""
from __future__ import annotations

import codecs
import errno
import os
import re
import stat

from ..text import printable

KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
         (stat.S_ISSOCK, "a socket"))
WIDE_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),   # UTF-32 LE first:
             (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))   # it starts with FF FE


class FileProblem(Exception):
    """Why a file cannot be used, as a predicate for its name: 'is a folder, not a regular file'."""


class Missing(FileProblem):
    """Nothing at the path (or a file where a folder of the path should be)."""


class NotRegular(FileProblem):
    """A folder, FIFO, device or socket; ``kind`` says which ('a folder')."""

    def __init__(self, kind: str):
        super().__init__(f"is {kind}, not a regular file")
        self.kind = kind


class TooLarge(FileProblem):
    """A regular file over the byte limit; ``size`` is what it reports."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"has {size} bytes, more than {limit}")
        self.size = size


def read_regular(path: str, limit: int) -> bytes:
    """The bytes of the regular file at ``path``, refused if it holds more than ``limit``.

    Reads at most min(reported size, limit) + 1 bytes, so a /proc or /sys file, which reports
    a size it does not hold, is refused after one byte; a FIFO is opened without waiting.
    """
    try:
        _check_kind(os.stat(path).st_mode)          # before opening: a device is never opened
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise _access_problem(err) from None
    try:
        info = os.fstat(fd)                          # what was opened, should the path have changed
        _check_kind(info.st_mode)
        if info.st_size > limit:
            raise TooLarge(info.st_size, limit)
        wanted, chunks, got = info.st_size + 1, [], 0
        while got < wanted:
            chunk = os.read(fd, wanted - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as err:
        raise FileProblem(f"cannot be read ({err.strerror or err})") from None
    finally:
        os.close(fd)
    if got != info.st_size:
        raise FileProblem(f"reports {info.st_size} bytes but holds {'more' if got > info.st_size else 'fewer'} "
                          "(a /proc or /sys file, or one being written): not an ordinary file")
    return b"".join(chunks)


def _check_kind(mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise NotRegular(next((kind for test, kind in KINDS if test(mode)), "a special file"))


def _access_problem(err: OSError) -> FileProblem:
    if err.errno == errno.ENOENT:
        return Missing("not found")
    if err.errno == errno.ENOTDIR:
        return Missing("not found (a part of its path is a file, not a folder)")
    if err.errno == errno.EACCES:
        return FileProblem("cannot be read: permission denied (the file is not readable, or a "
                           "folder on its path is not searchable)")
    if err.errno == errno.ELOOP:
        return FileProblem("cannot be read: a loop of symbolic links")
    return FileProblem(f"cannot be read ({err.strerror or err})")


def decode_text(data: bytes) -> str:
    """UTF-8 text (a byte-order mark, as Excel writes, is dropped); UTF-16/32 and binary refused."""
    for bom, encoding in WIDE_BOMS:
        if data.startswith(bom):
            raise FileProblem(f"is {encoding} text; save it as UTF-8")
    if b"\0" in data:
        raise FileProblem("is a binary file (it contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise FileProblem(f"is not UTF-8 text (undecodable byte at offset {err.start})") from None


def printable_path(path: str) -> str:
    r"""``path`` safe for a message or JSON: a byte that was not UTF-8 (which Python keeps as a
    lone surrogate) becomes ``\xff``, a control character ``\n`` or ``\x1b`` (``text.printable``)."""
    undecoded = re.sub("[\udc80-\udcff]", lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", path)
    return printable(undecoded)

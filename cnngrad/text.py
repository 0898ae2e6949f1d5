"""Text from a spec or a path made safe to print: control characters shown as escapes, not obeyed.

A spec's ``name:``, a file name or a quoted value may hold ESC, CSI or OSC sequences that would
retitle, clear or write to the clipboard of the terminal that prints them, or bidi controls that
reorder what a reader sees. Every output edge passes such text through ``printable``.
"""
from __future__ import annotations

import re

# C0 controls (tab and newline too: each piece of text printed is one line), DEL, C1 controls,
# the Arabic letter mark, the bidi marks, embeddings, overrides and isolates, and the line and
# paragraph separators
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    r"""``text`` with each control character written as its Python escape (``\x1b``, ``\n``, ``\u202e``)."""
    return UNPRINTABLE.sub(_escape, text)


_NAMED = {"\t": r"\t", "\n": r"\n", "\r": r"\r"}


def _escape(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def markup(text: str, quote: bool = True) -> str:
    """``text`` for HTML or XML: control characters as ``printable`` escapes (XML 1.0 cannot hold
    ESC; a bidi override would flip the page's text), then ``&``, ``<``, ``>`` (and quotes) escaped."""
    from html import escape
    return escape(printable(text), quote)

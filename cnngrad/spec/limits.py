"""Bounds on what a spec may ask for, so hostile or mistaken files fail fast in bounded memory."""
from __future__ import annotations

import re

from ..record import Record

UNITS = ("", "K", "M", "G", "T")
SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*\Z", re.I)


class Limits(Record):
    """Each field a separate knob, so the CLI can expose options to raise them."""

    __slots__ = ("max_file_bytes", "max_data_file_bytes", "max_entries", "max_total_entries", "max_nodes",
                 "max_depth", "max_memory_bytes")

    def __init__(self, max_file_bytes: int = 1 << 20, max_data_file_bytes: int = 64 << 20,
                 max_entries: int = 5_000_000, max_total_entries: int = 20_000_000,
                 max_nodes: int = 1_000_000, max_depth: int = 64, max_memory_bytes: int = 2 << 30):
        self.max_file_bytes = max_file_bytes             # the spec file itself
        self.max_data_file_bytes = max_data_file_bytes   # a `{file: ...}` value source
        self.max_entries = max_entries                   # one array: a value, a random shape, a layer's output
        self.max_total_entries = max_total_entries       # all values of one spec together
        self.max_nodes = max_nodes                       # YAML nodes after alias expansion
        self.max_depth = max_depth                       # YAML nesting depth
        self.max_memory_bytes = max_memory_bytes         # a forward and backward pass, estimated from the shapes


def parse_size(text: str) -> int:
    """Bytes from a size as people write it: ``4G``, ``512M``, ``1.5GiB``, ``64k`` (units of 1024)
    or a plain number of bytes. ValueError unless it is a whole number of bytes of at least 1."""
    match = SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size; write e.g. 4G, 512M or a number of bytes")
    number, unit = match.groups()
    whole, _, fraction = number.partition(".")
    scale = 1024 ** UNITS.index(unit.upper())
    numerator = int(whole + fraction) * scale
    size, rest = divmod(numerator, 10 ** len(fraction))
    if rest or size < 1:
        raise ValueError(f"{text!r} is not a whole number of bytes (at least 1)")
    return size


def format_size(size: int) -> str:
    """``512 bytes``, ``1.5 MiB``, ``12.3 GiB``: the largest binary unit the size reaches."""
    if size < 1024:
        return f"{size} bytes"
    power = min(len(UNITS) - 1, (size.bit_length() - 1) // 10)
    return f"{size / 1024 ** power:.1f} {UNITS[power]}iB"

"""Bounds on what a spec may ask for, so hostile or mistaken files fail fast in bounded memory."""
from __future__ import annotations

from ..record import Record


class Limits(Record):
    """Each field a separate knob, so the CLI can expose options to raise them."""

    __slots__ = ("max_file_bytes", "max_data_file_bytes", "max_entries", "max_total_entries", "max_nodes",
                 "max_depth")

    def __init__(self, max_file_bytes: int = 1 << 20, max_data_file_bytes: int = 64 << 20,
                 max_entries: int = 5_000_000, max_total_entries: int = 20_000_000,
                 max_nodes: int = 1_000_000, max_depth: int = 64):
        self.max_file_bytes = max_file_bytes             # the spec file itself
        self.max_data_file_bytes = max_data_file_bytes   # a `{file: ...}` value source
        self.max_entries = max_entries                   # one array: a value, a random shape, a layer's output
        self.max_total_entries = max_total_entries       # all values of one spec together
        self.max_nodes = max_nodes                       # YAML nodes after alias expansion
        self.max_depth = max_depth                       # YAML nesting depth

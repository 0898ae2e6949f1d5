"""Bounds on what a spec may ask for, so hostile or mistaken files fail fast in bounded memory."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Each field a separate knob, so the CLI can expose options to raise them."""

    max_file_bytes: int = 1 << 20          # the spec file itself
    max_data_file_bytes: int = 64 << 20    # a `{file: ...}` value source
    max_entries: int = 5_000_000           # one array: a value, a random shape, a layer's output
    max_total_entries: int = 20_000_000    # all values of one spec together
    max_nodes: int = 1_000_000             # YAML nodes after alias expansion
    max_depth: int = 64                    # YAML nesting depth

"""How result records show themselves in Jupyter and IPython: ``_repr_html_`` gives the ``html``
fragment (heatmap tables), ``_repr_pretty_`` the ``table`` text, both at the command line's
default precision. Records call these lazily, so nothing here is imported until a notebook asks.

``kind`` is the command whose output the record is: ``forward``, ``backward``, ``check`` (one
``SpecResult``) or ``explain``.
"""
from __future__ import annotations

PRECISION = 6             # the command line's default


def html(record, kind: str) -> str:
    """The record as an HTML fragment: tables with heatmap cells."""
    from . import html as fmt
    return getattr(fmt, f"{kind}_fragment")(*_arguments(record, kind))


def pretty(record, kind: str, printer) -> None:
    """IPython's text display: the record as the command prints it (``table`` format)."""
    from . import table
    printer.text(getattr(table, kind)(*_arguments(record, kind)).rstrip("\n"))


def _arguments(record, kind: str) -> tuple:
    return ([record],) if kind == "check" else (record, PRECISION)

"""Spec files → validated, runnable models: ``load_model(path_or_dash)``.

The pipeline, one module each: ``source`` (bytes, bounded) → ``yamlload`` (nodes with positions,
bounded) → ``document``/``layers``/``values`` (schema and values) → ``build`` (shapes, Model) with
``expect``. Every problem is a ``SpecError`` naming the file, line, column and quantity path.
"""
from __future__ import annotations

import os
from typing import Sequence

from ..model import Model
from .build import build_model
from .document import read_spec
from .errors import SpecError
from .limits import Limits
from .nodes import Cursor
from .source import STDIN, display_name, read_text
from .values import ValueReader
from .yamlload import compose

__all__ = ["Limits", "SpecError", "load_model"]


def load_model(source: str, *, limits: Limits | None = None, allow_dirs: Sequence[str] = ()) -> Model:
    """Read, validate and build the spec at ``source`` (a path, or ``-`` for standard input).

    Value files (``{file: ...}``) are found relative to the spec's folder (the current folder
    for standard input) and must resolve, symlinks included, inside it or one of ``allow_dirs``.
    Raises ``SpecError``.
    """
    limits = limits or Limits()
    name = display_name(source)
    root = compose(read_text(source, limits), name, limits)
    if root is None:
        raise SpecError(name, 1, 1, "", "the file is empty; a spec is a mapping with input and layers")
    folder = os.getcwd() if source == STDIN else os.path.dirname(source)
    values = ValueReader(folder, limits, allow_dirs)
    spec = read_spec(Cursor(root, "", name), values)
    return build_model(spec, name, values)

"""Spec files → validated, runnable models: ``load_model(path_or_dash)``.

The pipeline, one module each: ``source`` (bytes, bounded) → ``yamlload`` (nodes with positions,
bounded) → ``document``/``layers``/``values`` (schema and values) → ``build`` (shapes, Model) with
``expect``. Every problem is a ``SpecError`` naming the file, line, column and quantity path.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from ..model import Model
from .build import build_model
from .document import read_spec
from .errors import SpecError
from .limits import Limits
from .nodes import Cursor
from .source import STDIN, display_name, read_text
from .values import ValueReader
from .yamlload import compose

__all__ = ["Limits", "SpecError", "load_mapping", "load_model", "load_text"]


def load_model(source: str, *, limits: Limits | None = None, allow_dirs: Sequence[str] = ()) -> Model:
    """Read, validate and build the spec at ``source`` (a path, or ``-`` for standard input).

    Value files (``{file: ...}``) are found relative to the spec's folder (the current folder
    for standard input) and must resolve, symlinks included, inside it or one of ``allow_dirs``.
    Raises ``SpecError``.
    """
    limits = limits or Limits()
    name = display_name(source)
    folder = os.getcwd() if source == STDIN else os.path.dirname(source)
    return load_text(read_text(source, limits), name, folder, limits=limits, allow_dirs=allow_dirs)


def load_text(text: str, name: str, folder: str, *, limits: Limits | None = None,
              allow_dirs: Sequence[str] = ()) -> Model:
    """``load_model`` for YAML text already read: ``name`` is what errors call it, ``folder``
    where its value files are found."""
    limits = limits or Limits()
    root = compose(text, name, limits)
    if root is None:
        raise SpecError(name, 1, 1, "", "the file is empty; a spec is a mapping with input and layers")
    return _build(root, name, folder, limits, allow_dirs)


def load_mapping(data: Mapping[str, Any], name: str, folder: str, *, limits: Limits | None = None,
                 allow_dirs: Sequence[str] = ()) -> Model:
    """``load_model`` for a spec given as a Python mapping (numpy arrays allowed wherever a value
    goes), read by the very same reader as YAML (``fromdict``); errors name the path, not a line."""
    from .fromdict import compose_mapping
    limits = limits or Limits()
    return _build(compose_mapping(data, name, limits), name, folder, limits, allow_dirs)


def _build(root, name: str, folder: str, limits: Limits, allow_dirs: Sequence[str]) -> Model:
    values = ValueReader(folder, limits, allow_dirs)
    spec = read_spec(Cursor(root, "", name), values)
    return build_model(spec, name, values)

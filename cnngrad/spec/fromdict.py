"""A Python mapping → the same node tree a YAML spec composes to, so one reader validates both.

Numbers keep their exact value: a float becomes the text ``repr`` gives (the shortest that reads
back as the same float64), an int its decimal digits; numpy arrays and scalars become nested lists
of those. The nodes have no position (``start_mark`` None), so an error names the path only:
``<dict>: layers[0].conv.kernel: rows have different lengths (2 and 3)``.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import SpecError
from .limits import Limits
from .nodes import BOOL, FLOAT, INT, NULL, STR

SPECIAL_FLOATS = {math.inf: ".inf", -math.inf: "-.inf"}   # NaN, unequal to itself, is handled apart


def compose_mapping(data: Mapping[str, Any], file: str, limits: Limits) -> Node:
    """The node tree of ``data``; a value that no spec can hold (an object, a set) is a SpecError
    naming its path, and so is nesting deeper than ``limits.max_depth`` (a list that holds itself)."""
    if not isinstance(data, Mapping):
        raise SpecError(file, None, None, "", f"a spec is a mapping, not {type(data).__name__}")
    return _node(data, "", 0, file, limits)


def _node(value: Any, path: str, depth: int, file: str, limits: Limits) -> Node:
    """The node of ``value`` at ``path``, ``depth`` levels down."""
    if depth > limits.max_depth:
        raise SpecError(file, None, None, path, f"nested more than {limits.max_depth} levels deep "
                                                "(Limits.max_depth; does a list contain itself?)")
    value = _plain(value, path, file, limits)
    if isinstance(value, Mapping):
        return _mapping(value, path, depth, file, limits)
    if isinstance(value, (list, tuple)):
        return SequenceNode("tag:yaml.org,2002:seq",
                            [_node(item, f"{path}[{i}]", depth + 1, file, limits)
                             for i, item in enumerate(value)], None, None)
    return _scalar(*_scalar_text(value, path, file))


def _plain(value: Any, path: str, file: str, limits: Limits) -> Any:
    """A numpy array as nested lists (refused beyond ``limits.max_entries``), a numpy scalar as
    Python's; any other value as it is."""
    if isinstance(value, np.ndarray):
        if value.size > limits.max_entries:   # refused before a node per entry is made
            raise SpecError(file, None, None, path, f"an array of {value.size} entries is more than the "
                                                    f"limit of {limits.max_entries} (Limits.max_entries)")
        return value.tolist()            # Python floats and ints, nested by the array's rank
    if isinstance(value, np.generic):
        return value.item()
    return value


def _mapping(value: Mapping, path: str, depth: int, file: str, limits: Limits) -> MappingNode:
    """A mapping node of ``value``'s items; its keys must be words (or whole numbers)."""
    items = []
    for key, item in value.items():
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise SpecError(file, None, None, path, f"a key must be a word, not {key!r}")
        child = f"{path}.{key}" if path else str(key)
        items.append((_scalar(STR if isinstance(key, str) else INT, str(key)),
                      _node(item, child, depth + 1, file, limits)))
    return MappingNode("tag:yaml.org,2002:map", items, None, None)


def _scalar_text(value: Any, path: str, file: str) -> tuple[str, str]:
    """(tag, text) of a Python scalar, written as YAML writes it."""
    if value is None:
        return NULL, "null"
    if isinstance(value, bool):
        return BOOL, "true" if value else "false"
    if isinstance(value, int):
        return INT, str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return FLOAT, ".nan"
        return FLOAT, SPECIAL_FLOATS.get(value, repr(value))
    if isinstance(value, str):
        return STR, value
    raise SpecError(file, None, None, path,
                    f"expected a number, a list, an array, a mapping or text, not {type(value).__name__}")


def _scalar(tag: str, text: str) -> ScalarNode:
    return ScalarNode(tag, text, None, None)

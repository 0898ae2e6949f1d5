"""YAML text → a tree of PyYAML nodes that keep their positions and their scalars' source text.

Plain scalars are typed by YAML 1.2's core schema (``nodes.CORE_FORMS``), not PyYAML's YAML 1.1,
and a scalar tagged ``!!int``, ``!!float``, ``!!bool`` or ``!!null`` must have that form.
Nothing is constructed (no Python objects, no tags honoured), so loading is safe. Composing is
bounded: nesting depth, and the node count *after* alias expansion, are checked node by node
while composing, so an alias bomb is refused without ever building its expansion. A key given
twice in one mapping is an error (PyYAML would silently keep the last).
"""
from __future__ import annotations

import re

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent, MappingEndEvent
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.resolver import BaseResolver

from .errors import SpecError, quoted, shortened
from .limits import Limits
from .nodes import BOOL, CORE_FORMS, FLOAT, INT, NULL
from .slips import explain_slip

try:  # libyaml scans fast; composition below stays in Python so it can be bounded
    from yaml.cyaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser):
        def __init__(self, stream):
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)


class _Resolver(BaseResolver):
    """YAML 1.2's core schema for plain scalars (PyYAML's own Resolver is YAML 1.1's)."""


_FIRST = {NULL: ["~", "n", "N", ""], BOOL: list("tTfF"), INT: list("-+0123456789"),
          FLOAT: list("-+0123456789.")}   # the characters each form may start with
for _tag, _form in CORE_FORMS.items():
    _Resolver.add_implicit_resolver(_tag, _form, _FIRST[_tag])
_TAGGED = {INT: "a whole number", FLOAT: "a number", BOOL: "a boolean (true or false)", NULL: "null"}


class _TooDeep(SpecError):
    """Nesting beyond Limits.max_depth."""


class _BoundedLoader(Composer, _Parser, _Resolver):
    def __init__(self, text: str, file: str, limits: Limits):
        _Parser.__init__(self, text)
        Composer.__init__(self)
        _Resolver.__init__(self)
        self.file, self.limits = file, limits
        self.path: list = []      # the composer's index (int, key node or None) at each level
        self.weights: dict[int, int] = {}   # id(node) -> its node count with aliases expanded

    def fail(self, mark, message: str, error=SpecError):
        path = "".join(f"[{index}]" if isinstance(index, int) else
                       f".{index.value}" if isinstance(index, ScalarNode) else ""
                       for index in self.path).lstrip(".")
        path = shortened(path)  # a runaway nesting: its start is enough to find it
        raise error(self.file, mark.line + 1, mark.column + 1, path, message)

    def compose_node(self, parent, index):
        self.path.append(index)   # formatted only for an error
        if len(self.path) > self.limits.max_depth:
            self.fail(self.peek_event().start_mark,
                      f"nested more than {self.limits.max_depth} levels deep (Limits.max_depth)", _TooDeep)
        is_alias = self.check_event(AliasEvent)
        mark = self.peek_event().start_mark
        node = super().compose_node(parent, index)
        if is_alias:
            if id(node) not in self.weights:
                self.fail(mark, "an alias refers to the node that contains it (a recursive structure)")
            weight = self.weights[id(node)]
        else:
            weight = 1 + self._children_weight(node)
            self.weights[id(node)] = weight
        if weight > self.limits.max_nodes:
            self.fail(mark, f"the document expands to more than {self.limits.max_nodes} YAML nodes "
                            "(aliases repeat what they refer to; Limits.max_nodes; raise it with --max-yaml-nodes)")
        self.path.pop()
        return node

    def _children_weight(self, node: Node) -> int:
        if isinstance(node, ScalarNode):
            return 0
        if isinstance(node, MappingNode):
            return sum(self.weights[id(k)] + self.weights[id(v)] for k, v in node.value)
        return sum(self.weights[id(child)] for child in node.value)

    def compose_scalar_node(self, anchor):
        explicit = self.peek_event().tag not in (None, "!")
        node = super().compose_scalar_node(anchor)
        if explicit and node.tag in CORE_FORMS and not CORE_FORMS[node.tag].match(node.value):
            self.fail(node.start_mark, f"{quoted(node.value)} is not {_TAGGED[node.tag]}, though tagged "
                                       f"!!{node.tag.rsplit(':', 1)[1]}; write the value without a tag")
        return node

    def compose_mapping_node(self, anchor):
        start = self.get_event()
        tag = start.tag
        if tag is None or tag == "!":
            tag = self.resolve(MappingNode, None, start.implicit)
        node = MappingNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        if anchor is not None:
            self.anchors[anchor] = node
        seen = set()
        while not self.check_event(MappingEndEvent):
            key = self.compose_node(node, None)
            if isinstance(key, ScalarNode):
                if key.value in seen:
                    self.fail(key.start_mark, f"key {quoted(key.value)} is given twice in this mapping")
                seen.add(key.value)
            node.value.append((key, self.compose_node(node, key)))
        node.end_mark = self.get_event().end_mark
        return node


_BRACKETS = re.compile(r"[\[\]{}]")


def _first_too_deep(text: str, max_depth: int) -> int | None:
    """Where a ``[`` or ``{`` first opens more than ``max_depth`` flow levels, counting every
    bracket (also those inside quotes or comments, which only makes it say so too often)."""
    if text.count("[") + text.count("{") <= max_depth:
        return None
    depth = 0
    for match in _BRACKETS.finditer(text):
        if match.group() in "[{":
            depth += 1
            if depth > max_depth:
                return match.start()
        elif depth:
            depth -= 1
    return None


def compose(text: str, file: str, limits: Limits) -> Node | None:
    """The single document of ``text`` as a node tree (None when empty); SpecError if not YAML.

    PyYAML scans up to 1024 characters ahead of the node being composed, and its libyaml (6.0.4
    on) refuses 1000 flow levels with its own message. So where brackets nest too deep, only the
    text up to the first bracket too deep is composed first: the depth limit fires at or before
    it. If it does not (brackets in text, not nesting), the whole text is composed.
    """
    deep = _first_too_deep(text, limits.max_depth)
    if deep is not None:
        try:
            _compose(text[:deep + 1], file, limits)
        except _TooDeep:
            raise
        except SpecError:
            pass
    return _compose(text, file, limits)


def _compose(text: str, file: str, limits: Limits) -> Node | None:
    loader = _BoundedLoader(text, file, limits)
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = " ".join(filter(None, [err.context, err.problem]))
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        line, column, problem = explain_slip(text, line) or (line, column, problem)
        raise SpecError(file, line, column, "", f"not valid YAML: {problem}") from None
    except yaml.reader.ReaderError as err:  # libyaml counts its position in UTF-8 bytes
        before = text.encode("utf-8")[:err.position].decode("utf-8", errors="ignore")
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        problem = (f"the character #x{err.character:02x} is not allowed in YAML text (only printable "
                   "ones, tabs and line breaks)") if isinstance(err.character, int) else err.reason
        raise SpecError(file, line, column, "", f"not valid YAML: {problem}") from None
    except yaml.YAMLError as err:
        raise SpecError(file, 1, 1, "", f"not valid YAML: {' '.join(str(err).split())}") from None
    finally:
        loader.dispose()


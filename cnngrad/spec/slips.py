"""The commonest YAML slips behind a parse error, in words that say what to write instead.

Read from the text around the error's line, so PyYAML's wording and marks matter little:
a tab in the indentation, ``- conv`` without its colon before indented settings, and a list
item without its ``-``.
"""
from __future__ import annotations

import re

_BARE_ITEM = re.compile(r" *- +(?P<word>[A-Za-z_][\w.]*) *(?:#.*)?\Z")   # `- conv` alone on its line
_BARE_KEY = re.compile(r" *[^\s#:-][^:#]*: *(?:#.*)?\Z")                 # `layers:` with nothing after
_KEY = re.compile(r" *[A-Za-z_][\w.]*:(?: |\Z)")                           # `kernel: ...`, a setting
_ENTRY = re.compile(r"[A-Za-z_][\w.]*(?::(?: *\{.*)?)? *(?:#.*)?\Z")        # `relu`, `conv:`, `fc: {...}`


def explain_slip(text: str, line: int) -> tuple[int, int, str] | None:
    """(line, column, what to write) for a slip at or just above the parse error at ``line``
    (1-based), or None."""
    lines = text.split("\n")
    content = [i for i, row in enumerate(lines) if row.strip() and not row.lstrip().startswith("#")]
    before = [i for i in content if i < line]
    if not before:
        return None
    row, above = before[-1], (before[-2] if len(before) > 1 else None)
    return _tab_slip(lines, row) or _colon_slip(lines, row, above) or _dash_slip(lines, content, row, above)


def _tab_slip(lines: list[str], row: int) -> tuple[int, int, str] | None:
    """A tab in the indentation of ``row``."""
    leading = lines[row][:len(lines[row]) - len(lines[row].lstrip(" \t"))]
    if "\t" not in leading:
        return None
    return row + 1, leading.index("\t") + 1, \
        "a tab indents this line; YAML indents with spaces only: replace the tab with spaces"


def _colon_slip(lines: list[str], row: int, above: int | None) -> tuple[int, int, str] | None:
    """``- conv`` without its colon on the line ``above`` settings indented under it at ``row``."""
    bare = _BARE_ITEM.match(lines[above]) if above is not None else None
    if not (bare and _indent(lines[row]) > _indent(lines[above]) and _KEY.match(lines[row])):
        return None
    word = bare.group("word")
    return above + 1, bare.start("word") + 1, \
        f"'- {word}' has settings indented under it but no colon: write '- {word}:'"


def _dash_slip(lines: list[str], content: list[int], row: int, above: int | None) -> tuple[int, int, str] | None:
    """A list entry without its ``-`` near ``row`` (or else near ``above``)."""
    for candidate in (row, above):
        blamed = None if candidate is None else _missing_dash(lines, content, content.index(candidate))
        if blamed is not None:
            entry = lines[blamed].split(" #")[0].strip()
            if len(entry) > 30:
                entry = re.match(r"[^\s:]+:?", entry).group()
            return blamed + 1, _indent(lines[blamed]) + 1, \
                f"'{entry}' has no '-' though the list items beside it have one: write '- {entry}'"
    return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_item(line: str) -> bool:
    return line.strip() == "-" or line.lstrip().startswith(("- ", "-\t"))


def _form(entry: str) -> str | None:
    """What a list entry is: '[' (a row of numbers), 'word' (a layer: `relu`, `conv:`,
    `fc: {...}`), or None (a setting with a value, a number, ...)."""
    entry = entry.strip()
    return "[" if entry.startswith("[") else "word" if _ENTRY.match(entry) else None


def _missing_dash(lines: list[str], content: list[int], at: int) -> int | None:
    """The entry without a ``-`` nearest ``content[at]``, next to list items of its form at its
    indentation that outnumber such entries.

    A run of items right under a bare ``key:`` at the same indentation is valid YAML
    (``layers:`` then ``- relu``), so it blames nothing.
    """
    block = _block(lines, content, at)
    items = {i for i in block if _is_item(lines[content[i]])}
    plain = [i for i in block if i not in items]
    if not plain or len(items) < len(plain):
        return None
    parents = _keys_over_items(lines, content, plain, items)
    if _all_under_keys(block, items, parents):
        return None
    beside = _plain_beside_items(lines, content, block, items, parents)
    return content[min(beside, key=lambda i: abs(i - at))] if beside else None


def _block(lines: list[str], content: list[int], at: int) -> list[int]:
    """Positions in ``content`` of the rows at the indentation of ``content[at]``, up and down
    until a row indented less, in order."""
    indent = _indent(lines[content[at]])
    block = [at]
    for step in (-1, 1):
        i = at + step
        while 0 <= i < len(content) and _indent(lines[content[i]]) >= indent:
            if _indent(lines[content[i]]) == indent:
                block.append(i)
            i += step
    return sorted(block)


def _keys_over_items(lines: list[str], content: list[int], plain: list[int], items: set[int]) -> set[int]:
    """The bare ``key:`` rows of ``plain`` with an item right under them (``layers:`` then ``- relu``)."""
    return {i for i in plain if i + 1 in items and _BARE_KEY.match(lines[content[i]])}


def _all_under_keys(block: list[int], items: set[int], parents: set[int]) -> bool:
    """Whether every run of items in ``block`` starts right under a bare ``key:`` (valid YAML)."""
    run_starts = [i for n, i in enumerate(block) if i in items and (n == 0 or block[n - 1] not in items)]
    return all(i - 1 in parents for i in run_starts)


def _plain_beside_items(lines: list[str], content: list[int], block: list[int], items: set[int],
                        parents: set[int]) -> list[int]:
    """The entries of ``block`` without a ``-`` that sit next to an item and have an item's form."""
    forms = {_form(lines[content[i]].lstrip()[1:]) for i in items} - {None}

    def next_to_item(n: int) -> bool:
        return (n > 0 and block[n - 1] in items) or (n + 1 < len(block) and block[n + 1] in items)

    return [i for n, i in enumerate(block) if i not in items and i not in parents
            and _form(lines[content[i]]) in forms and next_to_item(n)]

"""The plain layout (render/plain.py, used for piped output without importing rich) must give
exactly the text rich gives: checked on random tables and lines, and on when it is used at all."""
import io
import random

import pytest

from cnngrad.render import plain, table

ALPHABET = "abcxyz 019.-_[],:()—×∂−·…θηδΣ±≈→₀ᵀ§°⊙≤∇⁴²σé─"


def random_text(rng, allow_empty=True):
    length = rng.randint(0 if allow_empty else 1, 12)
    return "".join(rng.choice(ALPHABET) for _ in range(length))


def random_parts(rng):
    parts = []
    for _ in range(rng.randint(1, 6)):
        if rng.random() < 0.4:
            parts.append(table.Line(*[(random_text(rng), rng.choice(["", "bold", "dim"]))
                                      for _ in range(rng.randint(1, 3))]))
            continue
        grid = table.Table(header_style=rng.choice(["bold", "dim"]))
        columns = rng.randint(1, 5)
        for _ in range(columns):
            grid.add_column(random_text(rng), justify=rng.choice(["left", "right"]),
                            style=rng.choice(["", "dim"]), no_wrap=rng.random() < 0.7)
        for _ in range(rng.randint(0, 4)):
            grid.add_row(*[(random_text(rng), rng.choice(["", "green"])) for _ in range(columns)])
        parts.append(grid)
    return parts


@pytest.mark.parametrize("seed", range(400))
def test_plain_layout_is_rich_layout(seed):
    parts = random_parts(random.Random(seed))
    assert plain.usable(parts, io.StringIO())
    assert plain.render(parts) == table._render_with_rich(parts)


@pytest.mark.parametrize("text", ["漢字", "emoji 🙂", "e\u0301", "zero\u200bwidth"])
def test_characters_rich_may_measure_otherwise_leave_it_to_rich(text):
    assert not plain.usable([table.Text(text)], io.StringIO())
    assert table._render([table.Text(text)]) == table._render_with_rich([table.Text(text)])


@pytest.mark.parametrize("text", ["tab\there", "\x1b[31m"])
def test_control_characters_reach_neither_layout(text):
    part = table.Text(text)
    assert part.spans[0][0] == text.replace("\t", "\\t").replace("\x1b", "\\x1b")
    assert plain.usable([part], io.StringIO())
    assert plain.render([part]) == table._render_with_rich([part])


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_used_only_where_rich_would_not_colour(monkeypatch):
    parts = [table.Text("plain")]
    for variable in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(variable, raising=False)
    assert plain.usable(parts, io.StringIO()) and not plain.usable(parts, Terminal())
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert not plain.usable(parts, io.StringIO())
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    assert plain.usable(parts, Terminal())
    ascii_stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.delenv("TTY_COMPATIBLE")
    monkeypatch.delenv("FORCE_COLOR")
    assert not plain.usable(parts, ascii_stream)


def test_every_character_taken_as_narrow_is_one_cell_for_rich():
    from rich.cells import cell_len
    narrow = [chr(code) for low, high in plain._NARROW_BLOCKS for code in range(low, high + 1)
              if plain._narrow_char(chr(code))]
    assert len(narrow) > 1000
    assert [char for char in narrow if cell_len(f"a{char}b") != 3] == []

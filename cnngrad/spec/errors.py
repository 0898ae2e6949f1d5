"""SpecError: one actionable line naming the file, the place and the quantity path to blame."""
from __future__ import annotations

QUOTE_LIMIT = 80       # characters of a spec's own text quoted in a message
MESSAGE_LIMIT = 1000   # a backstop: no message is longer, whatever it quotes


def shortened(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, so a 900 KB value is not a 900 KB line."""
    return text if len(text) <= limit else text[:limit] + "…"


def quoted(text: str) -> str:
    """A spec's text as a message quotes it: ``'conv'``, shortened (``'aaaa…'``)."""
    return repr(shortened(text))


class SpecError(Exception):
    """An invalid spec: ``FILE:LINE:COL: path: message`` (line and column 1-based).

    ``line``/``column`` are None when no node is to blame (a missing file), ``path`` is ""
    when the problem is the document as a whole; both parts are then left out of the text.
    The path and the message are shortened, so an error is one readable line whatever it quotes.
    ``details`` are lines to show under the error (a shape error's table of the shapes so far).
    """

    def __init__(self, file: str, line: int | None, column: int | None, path: str, message: str,
                 details: tuple[str, ...] = ()):
        path, message = shortened(path, 2 * QUOTE_LIMIT), shortened(message, MESSAGE_LIMIT)
        self.file, self.line, self.column, self.path, self.message = file, line, column, path, message
        self.details = details
        super().__init__(str(self))

    def __str__(self) -> str:
        place = self.file if self.line is None else f"{self.file}:{self.line}:{self.column}"
        return f"{place}: {self.path}: {self.message}" if self.path else f"{place}: {self.message}"

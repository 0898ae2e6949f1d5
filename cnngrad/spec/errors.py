"""SpecError: one actionable line naming the file, the place and the quantity path to blame."""
from __future__ import annotations


class SpecError(Exception):
    """An invalid spec: ``FILE:LINE:COL: path: message`` (line and column 1-based).

    ``line``/``column`` are None when no node is to blame (a missing file), ``path`` is ""
    when the problem is the document as a whole; both parts are then left out of the text.
    ``details`` are lines to show under the error (a shape error's table of the shapes so far).
    """

    def __init__(self, file: str, line: int | None, column: int | None, path: str, message: str,
                 details: tuple[str, ...] = ()):
        self.file, self.line, self.column, self.path, self.message = file, line, column, path, message
        self.details = details
        super().__init__(str(self))

    def __str__(self) -> str:
        place = self.file if self.line is None else f"{self.file}:{self.line}:{self.column}"
        return f"{place}: {self.path}: {self.message}" if self.path else f"{place}: {self.message}"

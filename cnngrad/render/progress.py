"""A progress bar on stderr for a long check: shown only after a second, and only on a terminal."""
from __future__ import annotations

import sys
import time


class DelayedProgress:
    """A ``progress(advance, total)`` callback for ``check_model`` that draws a rich bar on stderr
    once the work has run for ``delay`` seconds; a quick check never shows one."""

    def __init__(self, label: str, delay: float = 1.0):
        from ..text import printable
        self.label, self.delay = printable(label), delay
        self.started = time.monotonic()
        self.done = 0
        self.bar = self.task = None

    @classmethod
    def for_terminal(cls, label: str):
        """A progress callback when stderr is a terminal, else None (no bar in pipes and logs)."""
        return cls(label) if sys.stderr.isatty() else None

    def __call__(self, advance: int, total: int) -> None:
        self.done += advance
        if self.bar is None:
            if time.monotonic() - self.started < self.delay:
                return
            from rich.console import Console
            from rich.progress import Progress
            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, total=total, completed=self.done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

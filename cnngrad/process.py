"""The process around a command: Ctrl-C, a reader that went away, and an output encoding that
cannot hold cnngrad's symbols.

Besides the commands' exit codes (0, 1, 2), the process ends by a signal, as Unix tools do:
Ctrl-C by SIGINT after one ``error: interrupted`` line (a shell reports 130 and stops the
script that ran it), and a closed pipe (``cnngrad check configs/ | head -1``) silently by
SIGPIPE (a shell reports 141, as for ``yes | head -1``). Neither can be mistaken for
"1 = check failed". Only ``cli.main`` run as the program calls ``prepare``.
"""
from __future__ import annotations

import codecs
import os
import signal
import sys
import unicodedata

ASCII_FALLBACK = "cnngrad-ascii"     # the codec error handler that writes ASCII equivalents
EQUIVALENTS = {
    "∂": "d", "−": "-", "–": "-", "—": "-", "─": "-", "·": "*", "⊙": "*", "×": "x", "Σ": "sum",
    "→": "->", "←": "<-", "±": "+/-", "…": "...", "′": "'", "≤": "<=", "≥": ">=", "≈": "~",
    "√": "sqrt", "∞": "inf", "∇": "grad", "ᵀ": "^T", "²": "^2", "⁴": "^4", "½": "1/2", "°": " deg",
    "ε": "eps", "§": "section ", "│": "|", "\u0302": "hat",   # x̂ (x + a combining circumflex): xhat
}


class Interrupted(BaseException):
    """Ctrl-C. Not a KeyboardInterrupt, which click would turn into "Aborted!" and exit 1; a
    BaseException, so no ``except Exception`` stops it, while ``finally`` blocks still run (a
    progress bar gives the terminal its cursor back)."""


def while_loading() -> None:
    """Ctrl-C while the command's modules load (click, the commands; before ``prepare``): one
    ``error: interrupted`` line and SIGINT, not a KeyboardInterrupt traceback. Only when this
    process is the ``cnngrad`` program, so a program that imports cnngrad keeps its own Ctrl-C."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    script = os.path.basename(getattr(main, "__file__", None) or "")
    if (spec is not None and spec.name == "cnngrad.__main__") or script == "cnngrad":
        signal.signal(signal.SIGINT, _interrupted_while_loading)


def _interrupted_while_loading(signum, frame):
    error_line("interrupted")
    end_by_signal(signal.SIGINT)


def prepare() -> None:
    """Signals and encodings for the command-line process (see the module's text)."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGINT, _interrupt)
    codecs.register_error(ASCII_FALLBACK, _ascii_equivalent)
    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None) or "utf-8"
        if codecs.lookup(encoding).name != "utf-8" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=ASCII_FALLBACK)


def error_line(message: str) -> int:
    """Write ``error: MESSAGE`` on stderr if there is one to write to; return the exit code, 2."""
    try:
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()
    except (AttributeError, OSError):     # no stderr, or it failed too: the exit code says it
        pass
    return 2


def end_by_signal(signum: int) -> None:
    """End the process by ``signum`` with its default action, so the parent sees that signal."""
    if sys.stderr is not None:
        try:
            sys.stderr.flush()
        except OSError:
            pass
    if os.name == "posix":
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    os._exit(128 + signum)


def _interrupt(signum, frame):
    raise Interrupted()


def _ascii_equivalent(err: UnicodeEncodeError):
    """Codec error handler: each character the encoding lacks as its ASCII equivalent (δ -> delta,
    − -> -, Σ -> sum), else its ASCII decomposition, else '?'."""
    return "".join(map(_equivalent, err.object[err.start:err.end])), err.end


def _equivalent(char: str) -> str:
    if char in EQUIVALENTS:
        return EQUIVALENTS[char]
    name = unicodedata.name(char, "")
    if name.startswith("GREEK ") and " LETTER " in name:
        word = name.rsplit(" ", 1)[-1].lower()
        return word.capitalize() if " CAPITAL " in name else word
    return unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode() or "?"

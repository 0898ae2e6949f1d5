"""cnngrad: a gradient calculator and verifier for small convolutional networks.

The Python API (``cnngrad.load``, ``loads``, ``forward``, ``backward``, ``check``, ``compare``,
``CheckResult``, ``SpecError``, ``Limits``) lives in ``cnngrad.api`` and is imported on first use,
so ``import cnngrad`` (and the command line's start-up) does not pay for numpy or yaml.
"""
from __future__ import annotations

from .process import while_loading

while_loading()     # run as the `cnngrad` program, Ctrl-C from here on is one line, not a traceback

from typing import TYPE_CHECKING, Any  # noqa: E402

__version__ = "0.2.0.dev0"

_API = ("CheckResult", "Limits", "SpecError", "backward", "check", "compare", "forward", "load", "loads")
__all__ = ["__version__", *_API]

if TYPE_CHECKING:   # what type checkers and editors see; at run time __getattr__ imports it
    from .api import CheckResult, Limits, SpecError, backward, check, compare, forward, load, loads


def __getattr__(name: str) -> Any:
    """The API's names, imported from ``cnngrad.api`` when first asked for (PEP 562)."""
    if name not in _API:
        raise AttributeError(f"module 'cnngrad' has no attribute {name!r}")
    from . import api
    value = getattr(api, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))

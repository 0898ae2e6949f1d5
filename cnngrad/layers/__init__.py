"""The layer kinds, found by their spec word in ``REGISTRY``.

Every module of this package is imported, so a new kind is one file with a ``@register``ed class.
The first kinds keep the order they have always been listed in (messages, the JSON Schema);
any other module follows in alphabetical order.
"""
import importlib
import pkgutil

from .base import REGISTRY, Layer, Setting, ShapeError

LISTED_FIRST = ("conv", "activations", "pooling", "flatten", "fc")
_modules = sorted((info.name for info in pkgutil.iter_modules(__path__)),
                  key=lambda name: (LISTED_FIRST.index(name) if name in LISTED_FIRST else len(LISTED_FIRST), name))
for _module in _modules:
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["REGISTRY", "Layer", "Setting", "ShapeError"]

"""The layer kinds, found by their spec word in ``REGISTRY``."""
from . import activations, conv, fc, flatten, pooling  # noqa: F401  (each registers its kinds)
from .base import REGISTRY, Layer, ShapeError

__all__ = ["REGISTRY", "Layer", "ShapeError"]

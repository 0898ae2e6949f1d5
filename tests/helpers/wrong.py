"""Engines made wrong on purpose, independently of the checker, to test that ``check`` names the
faulty layer."""
from __future__ import annotations


def made_wrong(model, name: str, value: int | None = None, factor: float = 1.5) -> None:
    """Layer ``name`` of ``model`` hands back ``factor`` times its input delta (for a layer that
    joins several values, the delta of every operand that reads value ``value`` alone); its
    parameter gradients stay right. The layer's class is swapped for a subclass, in place."""
    network = model.network
    index = network.names.index(name)
    layer, reads = network.layers[index], network.reads[index]
    right = type(layer)

    def backward(self, dy, cache, params):
        dx, grads = right.backward(self, dy, cache, params)
        if not self.joins:
            return dx * factor, grads
        return tuple(d * factor if reads[k] == value else d for k, d in enumerate(dx)), grads

    layer.__class__ = type(f"Wrong{right.__name__}", (right,), {"backward": backward})

"""The memory of a forward and backward pass, estimated from the shapes before anything big is
allocated, and a spec refused when it passes ``Limits.max_memory_bytes`` (``--max-memory``).

The entry limits bound what a spec writes, not what a run makes of it: a padding of 10000 turns
``[[1]]`` into a 3 GiB map, and fifty 1×1 convs on a 2000×2000 map keep 3 GiB of activations. A
run keeps its whole forward trace and every gradient, so the estimate adds up the input, the
parameters and their gradients, what each layer keeps (``Layer.memory``), the target and the
loss's gradient, and the largest temporary of any one layer.
"""
from __future__ import annotations

import math

import numpy as np

from ..network import Network
from .document import Spec
from .limits import format_size

FLOAT = 8   # bytes; every array is float64 (winners and flat positions are int64, as large)


def layer_floats(network: Network) -> list[tuple[int, int]]:
    """(kept, largest temporary) floats of each layer, one example."""
    return [layer.memory(shape) for layer, shape in zip(network.layers, network.in_shapes)]


def running_bytes(network: Network, params: dict[str, np.ndarray]) -> list[int]:
    """Bytes held once the input is read (first) and by the end of each layer (then), counting
    everything kept so far and the largest temporary yet; the last entry, the whole pass, also
    counts the target and the loss's gradient. Every example of a batch (``batch: N``) holds its own."""
    examples = network.batch
    kept = examples * math.prod(network.input_shape) + 2 * sum(value.size for value in params.values())
    temporary, running = 0, [kept]
    for held, scratch in layer_floats(network):
        kept, temporary = kept + examples * held, max(temporary, examples * scratch)
        running.append(kept + temporary)
    running[-1] += 2 * examples * math.prod(network.output_shape)
    return [FLOAT * floats for floats in running]


def run_bytes(network: Network, params: dict[str, np.ndarray]) -> int:
    """Bytes a forward and backward pass of one example is estimated to hold at its peak."""
    return running_bytes(network, params)[-1]


def check_memory(spec: Spec, network: Network, params: dict[str, np.ndarray], limit: int) -> None:
    """A SpecError at the layer whose output takes the estimate past ``limit`` bytes, saying the
    estimate for the whole pass and the option that raises the limit."""
    running = running_bytes(network, params)
    if running[-1] <= limit:
        return
    over = next(k for k, size in enumerate(running) if size > limit)
    total = format_size(running[-1])
    suggest = f"{math.ceil(running[-1] / 2**30)}G" if running[-1] >= 2**30 else f"{math.ceil(running[-1] / 2**20)}M"
    advice = f"(Limits.max_memory_bytes; raise it with --max-memory, e.g. --max-memory {suggest})"
    if over == 0:
        spec.input.at.fail(f"the input and parameters alone take the run past the memory limit of "
                           f"{format_size(limit)}: it needs about {total} {advice}")
    layer = spec.layers[over - 1]
    own = FLOAT * sum(layer_floats(network)[over - 1])
    share = f", {layer.name} alone about {format_size(own)}" if own < 0.9 * running[-1] else ""
    layer.entry.fail(f"{layer.name} takes the run past the memory limit of {format_size(limit)}: a "
                     f"forward and backward pass needs about {total}{share} {advice}")

"""How much arithmetic a check will do, from the shapes alone, so a check too large to finish in
reasonable time is refused up front (``--max-work`` raises the bound).

A full check runs four perturbed copies of every entry (or output unit, for fc parameters)
through the layers downstream of it: work = Σ over quantities of copies × (the multiply-adds of
those layers + ``FORMING`` × the size of the map each copy starts from, which is written, not
computed, and costs memory traffic). A copy of an input pixel or a layer output that runs
cropped (``crop``) counts its cropped layers on their boxes, and writes its box and the whole
map it is pasted into. ``--fast`` runs six directions each. With ``batch: N`` a copy runs all N
examples, and the input and each layer's output have N times the entries.
"""
from __future__ import annotations

import math

from ..network import Network
from ..quantities import value_of
from . import crop
from .finite import STEPS

RATE = 2e9                    # multiply-adds a second of a check on a 2-core x86_64 (LeNet-5's 2.8e9: 0.7-1 s)
DEFAULT_MAX_WORK = 2e11       # about 100 s at RATE; LeNet-5's full check is 70 times less
NOTE_SECONDS = 5              # a check estimated to take longer says so on stderr (when no bar shows)
FORMING = 30                  # multiply-adds worth of memory traffic per value of a copy's first map
DIRECTIONS = 6                # random directions per quantity with --fast


class TooMuchWork(ValueError):
    """The check would take longer than the limit allows; the message gives the estimate and the ways out."""


def check_work(network: Network, wrt=(), fast: bool = False, deltas: bool = False) -> float:
    """Estimated multiply-adds of a check of ``network``: every gradient (or those in ``wrt``),
    and with ``deltas`` every layer's delta too."""
    downstream = downstream_operations(network)

    def cost(runs: int, start: int, cropped=None) -> float:
        size = math.prod(network.value_shapes[start]) if start < len(network.layers) else 1
        if cropped is not None:                     # receptive-field probes (``crop``; not with --fast)
            operations, written, stop = cropped
            return run_copies(runs, fast) * (operations + downstream[stop] + FORMING * written)
        return run_copies(runs, fast) * network.batch * (downstream[start] + FORMING * size)

    quantities = {name: cost(runs, start, input_crop(network) if name == "input" and not fast else None)
                  for name, (runs, start) in gradient_runs(network).items()}
    layer_deltas = {name: cost(network.batch * math.prod(network.out_shapes[k]), k + 1,
                               None if fast else _delta_crop(network, k))
                    for k, name in enumerate(network.names)}
    bare = [value_of(name) for name in wrt]
    chosen = sum(quantities.get(name, layer_deltas.get(name, 0.0)) for name in bare) if wrt \
        else sum(quantities.values())
    return chosen + (sum(layer_deltas.values()) if deltas else 0.0)


def _delta_crop(network: Network, index: int):
    """``crop.copy_work`` of layer ``index``'s delta copies (one output entry each), for a map."""
    return crop.copy_work(network, index + 1, (1, 1), True) if len(network.out_shapes[index]) == 3 else None


def input_crop(network: Network):
    """``crop.copy_work`` of the input's copies: a pixel seen through a first conv, or one entry."""
    if not network.layers or len(network.input_shape) != 3:
        return None
    first = network.layers[0]
    if first.linear_in_input:
        return crop.copy_work(network, 1, crop.first_conv_box(network), False) if crop.local(first) else None
    return crop.copy_work(network, 0, (1, 1), True)


def run_copies(runs: int, fast: bool) -> int:
    """Perturbed copies a quantity with ``runs`` runs of its own makes: four each, or per direction."""
    return len(STEPS) * (DIRECTIONS if fast else runs)


def downstream_operations(network: Network) -> list[int]:
    """downstream[k]: the multiply-adds of layers k, k + 1, … for one copy (0 past the last)."""
    downstream = [0] * (len(network.layers) + 1)
    for k in range(len(network.layers) - 1, -1, -1):
        downstream[k] = downstream[k + 1] + network.layers[k].operations(network.in_shapes[k])
    return downstream


def gradient_runs(network: Network) -> dict[str, tuple[int, int]]:
    """For the input and each parameter: how many entries (or output units, for parameters whose
    entries each move one) get their own runs, and the layer those copies start at (after a
    first layer linear in its input, or the parameter's layer, whose output is formed exactly)."""
    first = network.layers[0] if network.layers else None
    through = first is not None and first.linear_in_input and network.chained(0)   # probes.input_probe
    runs = {"input": (network.batch * math.prod(network.input_shape), 1 if through else 0)}
    for name, shape in network.param_shapes.items():
        index = network.names.index(name.rsplit(".", 1)[0])
        shared = network.layers[index].param_moves_one_unit and network.batch == 1 \
            and not network.regularizes(name)   # as probes.param_probe
        runs[name] = (network.out_shapes[index][0] if shared else math.prod(shape), index + 1)
    return runs


def refuse_beyond(work: float, limit: float, path: str) -> None:
    """Raise ``TooMuchWork`` if ``work`` exceeds ``limit``."""
    if work > limit:
        raise TooMuchWork(
            f"{path}: this check would take about {work:.1e} multiply-adds (~{seconds(work):.0f} s), beyond "
            f"the limit of {limit:.1e}; check --fast (random directions), or fewer gradients with --wrt "
            f"NAME, or raise the limit with --max-work {10 ** math.ceil(math.log10(work)):.0e}")


def long_check_note(model, wrt=(), fast: bool = False, deltas: bool = False,
                    max_work: float | None = None) -> str | None:
    """A ``note:`` line with the estimate of a check expected to take over ``NOTE_SECONDS`` (but
    within the limit), else None."""
    work = check_work(model.network, wrt, fast, deltas)
    if seconds(work) <= NOTE_SECONDS or work > (DEFAULT_MAX_WORK if max_work is None else max_work):
        return None
    return (f"note: {model.path}: checking, about {work:.1e} multiply-adds (~{seconds(work):.0f} s here); "
            f"--fast or --wrt NAME check less")


def seconds(work: float) -> float:
    """A rough time for ``work`` multiply-adds (``RATE``)."""
    return work / RATE

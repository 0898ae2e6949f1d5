"""Central finite differences, batched and downstream-only, with Richardson extrapolation and kinks.

For each entry θ_k with step h = eps · max(1, |θ_k|), four perturbed copies give
    D(h) = (E(θ+h) − E(θ−h)) / 2h,   D(h/2) likewise,   numeric = (4 D(h/2) − D(h)) / 3,
whose truncation error is O(h⁴) instead of the O(h²) of a plain central difference.
A copy whose non-smooth layers (ReLU signs, pool winners, L2 zero windows) or loss (a hinge's open
margins) sit on another piece than the unperturbed run straddles a kink; such an entry gets its
one-sided quotients
    left = (E(θ) − E(θ−h/2)) / (h/2),   right = (E(θ+h/2) − E(θ)) / (h/2).
"""
from __future__ import annotations

import copy

import numpy as np

from ..network import Network, Trace
from ..record import Record
from . import increment

STEPS = np.array([1.0, -1.0, 0.5, -0.5])   # multiples of h, in the order the formulas read them
MEMORY_BUDGET = 256 * 2**20                 # bytes of activations one batched call may hold
ROUNDING = 4 * np.finfo(np.float64).eps     # rounding per unit of S, with a safety factor of 4
TRUNCATION = 16   # |D(h/2) − D(h)| / 16 bounds what Richardson leaves where the curvature is mild
# the curvature is not mild where D(h/2) and D(h) lie more than a tenth apart, far beyond rounding:
# the step is wider than the scale the loss bends on (a batch norm of a nearly constant feature)
UNSETTLED, UNSETTLED_ROUNDING = 0.1, 100


class Differences(Record):
    """Per-entry results of ``central_differences`` (flat arrays over the entries asked for)."""

    __slots__ = ("numeric", "left", "right", "kink", "several", "noise", "spread", "unsettled")

    def __init__(self, numeric: np.ndarray, left: np.ndarray, right: np.ndarray, kink: np.ndarray,
                 several: np.ndarray, noise: np.ndarray, spread: np.ndarray, unsettled: np.ndarray | None = None):
        self.numeric, self.left, self.right = numeric, left, right
        # bool: the two step sizes disagree (``UNSETTLED``), so a disagreement proves nothing: the
        # central differences at h and h/2, or at a kink both one-sided quotients (a kink between
        # h/2 and h moves the quotient on its own side only; both move where the loss bends too)
        self.unsettled = np.zeros(len(numeric), dtype=bool) if unsettled is None else unsettled
        self.kink = kink          # bool: a copy straddled a non-differentiable point
        self.several = several    # bool: the copies straddled more than one (no bracket holds then)
        self.noise = noise        # the error the numeric value may carry: rounding ≈ ε S / h, and truncation
        self.spread = spread      # how much each one-sided quotient moves between h and h/2

    def settled(self, at: np.ndarray, finer: "Differences") -> "Differences":
        """These differences with those of entries ``at`` replaced by ``finer`` (theirs at a smaller
        step) where the two extrapolations lie further apart than both allowances, or where the
        wider step's quotients were unsettled and the finer's are not: the wider step's was not yet
        the derivative (a loss that bends within the step, as a batch norm of a nearly constant
        feature). Elsewhere the wider step's stand (rounding weighs less in them).
        Where the two lie apart the derivative is still moving with the step, so the finer step's
        are unsettled too, until a still finer step agrees with them (a failure needs two looks
        that agree: a softmax of inputs near 1e6, whose step 100 crosses its whole range, moves
        on down to steps of 1)."""
        with np.errstate(invalid="ignore"):
            moving = np.abs(self.numeric[at] - finer.numeric) > self.noise[at] + finer.noise
        apart = moving | self.unsettled[at] & ~finer.unsettled
        fields = {name: getattr(self, name).copy() for name in self.__slots__}
        for name, values in fields.items():
            values[at[apart]] = getattr(finer, name)[apart]
        fields["unsettled"][at[moving]] = True
        return Differences(**fields)

    def along(self, units: np.ndarray, factors: np.ndarray) -> "Differences":
        """The differences of entries that each move one unit of these by ``factors`` per step:
        entry k's quotient is factors[k] times unit units[k]'s, with the step h_unit / |factor|
        (E(θ + t·e_k) = F(y_unit + t·factor) exactly, so one unit's four runs serve all its entries)."""
        f = factors
        left, right = self.left[units], self.right[units]
        return Differences(
            numeric=f * self.numeric[units],
            left=np.where(f >= 0, f * left, f * right), right=np.where(f >= 0, f * right, f * left),
            kink=self.kink[units], several=self.several[units],
            noise=np.abs(f) * self.noise[units], spread=np.abs(f) * self.spread[units],
            unsettled=self.unsettled[units])


class Evaluator:
    """Runs batches of perturbed copies from any layer on, against one unperturbed trace."""

    def __init__(self, network: Network, params, target, trace: Trace, magnitude=0.0,
                 memory_budget: int = MEMORY_BUDGET, progress=None):
        self.network, self.params, self.target, self.trace = network, params, target, trace
        self.progress = progress   # called with the number of copies each batch evaluated
        self.base_loss = float(network.objective(trace, target)[0])
        # S: how large the sums behind E are (rounding scales with it), one for all copies or one
        # per start layer (``check.rounding_magnitude``)
        self.magnitude = np.broadcast_to(np.asarray(magnitude, dtype=np.float64), (len(network.layers) + 1,))
        # each layer's pattern, then the loss's (index len(layers): a hinge's open margins)
        self.base_patterns = [layer.pattern(cache) for layer, cache in zip(network.layers, trace.caches)] \
            + [network.loss_pattern(trace, target)]
        self.memory_budget = memory_budget
        self.floats_from = None   # floats one copy needs from each layer on (``copies_per_call``)
        self.flat_fcs = {}   # layer index → ``increment.FlatFC`` or None, built when first asked
        self.channel_convs = {}   # layer index → ``increment.ChannelConv`` or None, likewise
        self.reader = None   # the layer that alone sees a copy's change of its start value (``read_by``)

    def read_by(self, reader: int | None) -> "Evaluator":
        """This evaluator with copies that move their start value v as layer ``reader`` alone reads
        it (``Network.forward``): their differences are that reader's part of ∂E/∂v,
        J_readerᵀ δ_reader. None: as every reader reads it (this evaluator)."""
        if reader is None:
            return self
        view = copy.copy(self)
        view.reader = reader
        return view

    def flat_fc(self, index: int) -> increment.FlatFC | None:
        """Layer ``index`` (a flatten) and the fc after it, to run on a copy's change of their input
        map (``increment.FlatFC``), or None where they are not that."""
        if index not in self.flat_fcs:
            self.flat_fcs[index] = increment.FlatFC(self.network, self.trace, self.params, index) \
                if increment.applies(self.network, index) else None
        return self.flat_fcs[index]

    def channel_conv(self, index: int) -> increment.ChannelConv | None:
        """Layer ``index`` (a conv) to run on the change of one channel of its input
        (``increment.ChannelConv``), or None where it is not such a conv."""
        if index not in self.channel_convs:
            net = self.network
            self.channel_convs[index] = increment.ChannelConv(
                net.layers[index], net.params_of(index, self.params), self.trace.inputs[index][0],
                self.trace.outputs[index][0]) if increment.channel_conv_applies(net, index) else None
        return self.channel_convs[index]

    def copies_per_call(self, start: int) -> int:
        """How many copies fit one call from layer ``start`` on within the memory budget."""
        if self.floats_from is None:   # each layer's work size asked once, not once per start layer
            net = self.network
            sizes = [net.layers[k].work_size(net.in_shapes[k]) for k in range(len(net.layers))] + [0]
            self.floats_from = np.cumsum(sizes[::-1])[::-1].tolist()   # floats_from[k] = Σ_{j ≥ k} size j
        return max(1, self.memory_budget // (8 * max(self.floats_from[start], 1)))

    def run(self, start: int, batch: np.ndarray, channels: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Loss of each copy; how many units left the unperturbed run's smooth piece, and which
        one first (a number unique across layers, −1 for none).

        With ``channels`` (one example only, N = 1), copy k differs from the unperturbed input of layer ``start`` in channel
        ``channels[k]`` only and ``batch`` holds just that channel, shape (N, 1, H, W): channel-wise
        layers run on it alone (the last layer always runs whole), then the map is completed.
        """
        losses, ran = self.losses(start, batch, channels)
        crossed, first = self.kinks_crossed(ran, len(losses))
        if self.progress is not None:
            self.progress(len(losses))
        return losses, crossed, first

    def run_lines(self, groups: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``run`` of copies on lines, --fast's directions: each group (start, changes) holds lines
        of value ``start``, whose copies are y + (s/h)·d (y the unperturbed value, d = changes[k]
        of shape (N, ...) the line's change at its step h, s/h each of ``STEPS``: exactly ±1, ±½).
        Results (len(STEPS), lines) over the groups' lines in order, as the copies' would be.

        The copies of one line stay on a line through a layer affine in its input, and through
        piecewise linear ones whose patterns are the unperturbed run's at both ends, y ± d (each
        unit's piece is an interval of s: a sign of an affine function, the winner of a maximum of
        them). So only the line's change at the step is carried there, f(y + d) − f(y), or
        (f(y + d) − f(y − d)) / 2 over a run of piecewise linear layers: one or two rows a line
        instead of four copies, and the lines of groups that start further on join those carried to
        them. The copies are formed where the carry stops (a smooth nonlinear layer, the last layer,
        a branch) and run on from there as in ``run``; so are those of a line that meets a kink
        within ±d, from the start of that run of layers. The carried change rounds by ε of the
        values, as each copy does (``increment``'s argument), and is no larger than the copies'
        own changes (it overflows no sooner than they do)."""
        count = sum(len(changes) for _, changes in groups)
        results = (np.empty((len(STEPS), count)), np.zeros((len(STEPS), count), dtype=np.int64),
                   np.full((len(STEPS), count), -1))
        offsets = np.cumsum([0] + [len(changes) for _, changes in groups])
        pending = sorted(range(len(groups)), key=lambda g: groups[g][0])
        index, changes, lines = None, None, np.arange(0)
        with np.errstate(all="ignore"):   # as in ``losses``
            while pending or len(lines):
                if not len(lines):
                    index = groups[pending[0]][0]
                changes, lines = _joined(groups, offsets, pending, index, changes, lines)
                if not self.carries(index):
                    self.run_along(index, changes, lines, results)
                    lines = lines[:0]
                    continue
                joining = groups[pending[0]][0] if pending else len(self.network.layers)
                carried, straight, after = self.carry(index, changes, joining)
                if not straight.all():    # a kink within ±d: these lines' copies run on from here
                    self.run_along(index, changes[~straight], lines[~straight], results)
                changes, lines, index = carried[straight], lines[straight], after
        if self.progress is not None:
            self.progress(len(STEPS) * count)
        return results

    def carries(self, index: int) -> bool:
        """Whether ``run_lines`` carries lines through layer ``index``: one affine in its input or
        piecewise linear, in a chain, not the last (whose output the loss reads as a whole), and
        not for a reader's view (``read_by``: the copies must be formed where that reader reads them)."""
        net = self.network
        if index >= len(net.layers) - 1 or not net.chained(index) or self.reader is not None:
            return False
        return net.layers[index].affine_in_input or net.layers[index].piecewise_linear

    def carry(self, index: int, changes: np.ndarray, joining: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The change at the step along each line (``run_lines``) of the output of layer ``index``,
        or of the run of piecewise linear layers it starts (up to value ``joining`` at most, where
        other lines join); which lines keep the unperturbed run's patterns there at both ends y ± d
        (all of them through an affine layer); the next layer."""
        net = self.network
        base = self.trace.value(index)
        lines = len(changes)
        if net.layers[index].affine_in_input:
            out = self.trace.value(index + 1)
            moved = net.layers[index].forward((base + changes).reshape((-1,) + base.shape[1:]),
                                              net.params_of(index, self.params))[0]
            return moved.reshape((lines,) + out.shape) - out, np.ones(lines, dtype=bool), index + 1
        ends = np.empty((2,) + changes.shape)
        np.add(base, changes, out=ends[0])
        np.subtract(base, changes, out=ends[1])
        ends = ends.reshape((-1,) + base.shape[1:])
        kinked = np.zeros(lines, dtype=bool)
        while True:
            ends, cache = net.layers[index].forward(ends, net.params_of(index, self.params))
            pattern = net.layers[index].pattern(cache).reshape(2, lines, -1)
            kinked |= (pattern != self.base_patterns[index].reshape(1, 1, -1)).any(axis=(0, 2))
            index += 1
            if index == joining or not (self.carries(index) and net.layers[index].piecewise_linear):
                break
        ends = ends.reshape((2, lines) + self.trace.value(index).shape)
        carried = ends[0] - ends[1]
        carried *= 0.5
        return carried, ~kinked, index

    def run_along(self, index: int, changes: np.ndarray, lines: np.ndarray, results) -> None:
        """Run the four copies y + (s/h)·d of each of ``lines`` from value ``index`` on (``losses``),
        writing their losses, kinks crossed and first kink into column ``lines`` of ``results``."""
        base = self.trace.value(index)
        copies = base + STEPS.reshape((-1, 1) + (1,) * base.ndim) * changes
        losses, ran = self.losses(index, copies.reshape((-1,) + base.shape))
        for whole, part in zip(results, (losses,) + self.kinks_crossed(ran, len(losses))):
            whole[:, lines] = part.reshape(len(STEPS), len(lines))

    def losses(self, start: int, batch: np.ndarray, channels: np.ndarray | None = None):
        """Run the copies from layer ``start`` on (see ``run``): their objectives, and what each
        layer ran as (layer index, cache, the channel each copy ran, or None for all).

        ``batch`` holds each copy's N examples, shape (copies, N, ...) (N = ``network.batch``); they
        run as copies × N rows, and each copy's objective reduces its N examples' losses."""
        net = self.network
        ran = []
        index = start
        with np.errstate(all="ignore"):   # a copy that overflows gives a non-finite quotient, reported
            if channels is not None:
                batch, ran, index = self.one_channel_layers(start, batch, channels)
            else:
                batch = batch.reshape((-1,) + batch.shape[2:])
            trace = net.forward(batch, self.params, index, self.trace, self.reader)
            losses = net.objective(trace, self.target)
            loss = [] if self.base_patterns[-1] is None else \
                [(len(net.layers), net.loss_pattern(trace, self.target), None)]
        return losses, ran + [(index + k, cache, None) for k, cache in enumerate(trace.caches)] + loss

    def one_channel_layers(self, start: int, batch: np.ndarray, channels: np.ndarray):
        """Run the channel-wise layers from ``start`` on the one channel each copy moved (the last
        layer excepted), then put that channel into the unperturbed map: the whole maps, what each
        layer ran as, and the layer the maps enter. A flatten into an fc or a conv takes the channel's
        change instead (``increment.FlatFC``, ``increment.ChannelConv``): then their outputs,
        entering the layer after them."""
        net = self.network
        ran = []
        index = start
        while index < len(net.layers) - 1 and net.layers[index].channelwise and net.chained(index):
            batch, cache = net.layers[index].forward(batch, net.params_of(index, self.params))
            ran.append((index, cache, channels))
            index += 1
        flat_fc = self.flat_fc(index)
        if flat_fc is not None:
            corner = np.zeros(len(channels), dtype=np.int64)
            return flat_fc.outputs(batch, corner, corner, channels), ran, flat_fc.after
        channel_conv = self.channel_conv(index)
        if channel_conv is not None:
            return channel_conv.outputs(batch, channels), ran, index + 1
        whole = np.repeat(self.trace.value(index), len(channels), axis=0)
        whole[np.arange(len(channels)), channels] = batch[:, 0]
        return whole, ran, index

    def kinks_crossed(self, ran, count: int) -> tuple[np.ndarray, np.ndarray]:
        """For each of ``count`` copies, how many units of the layers it ran sit on another smooth
        piece than in the unperturbed run, and which one first (a number unique across layers, −1
        for none): the ReLU signs, pool winners, L2 signs that moved."""
        crossed = np.zeros(count, dtype=np.int64)
        first = np.full(count, -1)
        offset = 0
        for layer_index, cache, ran_channels in ran:
            base = self.base_patterns[layer_index]
            if base is None or cache is None:   # smooth, or not re-run (a branch the change missed)
                continue
            moved, place = self.moved_units(layer_index, cache, ran_channels, count)
            rows = np.flatnonzero(moved.any(axis=1))   # usually few: counted on them alone
            crossed[rows] += moved[rows].sum(axis=1)
            fresh = rows[first[rows] < 0]
            first[fresh] = offset + place[fresh] + moved[fresh].argmax(axis=1)
            offset += base.size
        return crossed, first

    def moved_units(self, layer_index: int, cache, channels, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Which units of one layer each copy moved to another piece, (count, units), and where
        those units start in the layer (a channel's offset when only that channel ran)."""
        base = self.base_patterns[layer_index]
        net = self.network
        # the loss's entry carries its pattern already (``losses``)
        pattern = cache if layer_index == len(net.layers) else net.layers[layer_index].pattern(cache)
        if channels is None:   # each copy's N examples against the unperturbed run's N
            return pattern.reshape(count, -1) != base.reshape(1, -1), np.zeros(count, dtype=np.int64)
        moved = (pattern[:, 0] != base[0][channels]).reshape(count, -1)
        return moved, channels * moved.shape[1]        # where the channel starts in the layer


def _joined(groups, offsets, pending: list[int], index: int, changes, lines: np.ndarray):
    """``changes`` and ``lines`` (``Evaluator.run_lines``) with the lines of the ``pending`` groups
    that start at value ``index`` joined to them (those groups taken off ``pending``)."""
    while pending and groups[pending[0]][0] == index:
        g = pending.pop(0)
        changes = groups[g][1] if not len(lines) else np.concatenate([changes, groups[g][1]])
        lines = np.concatenate([lines, np.arange(offsets[g], offsets[g + 1])])
    return changes, lines


def central_differences(evaluator: Evaluator, start: int, h: np.ndarray, perturbed,
                        one_channel: bool = False, penalty=None) -> Differences:
    """Richardson-extrapolated central differences of the loss, one per item.

    ``perturbed(items, steps)`` gives the inputs of layer ``start`` for copies in which item
    ``items[k]`` (an entry, or a direction) moved by ``steps[k]``; item k's step is ``h[k]``.
    With ``one_channel`` it gives the one channel each copy moved and its index (``Probe.one_channel``).
    ``penalty(items, steps)``, for a regularized parameter, gives how much each copy's L2 penalty
    differs from the unperturbed one's; it is added to the copy's loss.
    """
    def run(items: np.ndarray, steps: np.ndarray):
        copies = perturbed(np.tile(items, len(STEPS)), steps)
        return evaluator.run(start, *copies) if one_channel else evaluator.run(start, copies)
    return _differences(evaluator, start, h, run, penalty)


def line_differences(evaluator: Evaluator, h: np.ndarray, groups: list[tuple[int, np.ndarray]],
                     penalty=None) -> Differences:
    """``central_differences`` of items that move values along lines: the lines of ``groups``
    in order, each group (start, changes) moving value ``start`` to y + (s/h)·changes[k], the
    change at the item's step h[k] (--fast's directions through a layer affine in them), run by
    ``Evaluator.run_lines``."""
    offsets = np.cumsum([0] + [len(changes) for _, changes in groups])

    def run(items: np.ndarray, steps: np.ndarray):
        lo, hi = items[0], items[-1] + 1        # a chunk: consecutive items
        return evaluator.run_lines([(start, changes[max(lo - first, 0):hi - first])
                                    for (start, changes), first, end in zip(groups, offsets, offsets[1:])
                                    if first < hi and end > lo])
    starts = np.repeat([start for start, _ in groups], np.diff(offsets))
    return _differences(evaluator, starts, h, run, penalty)


def _differences(evaluator: Evaluator, starts, h: np.ndarray, run, penalty) -> Differences:
    """The quotients of ``central_differences`` from ``run(items, steps)``: the losses, kinks
    crossed and first kink of each item's copies, step by step (``STEPS`` · h); ``starts`` is the
    value the copies of every item start from, or of each."""
    count_all = len(h)
    losses = np.empty((len(STEPS), count_all))
    crossed = np.zeros((len(STEPS), count_all), dtype=np.int64)
    first = np.full((len(STEPS), count_all), -1)
    chunk = max(1, evaluator.copies_per_call(int(np.min(starts))) // len(STEPS))
    for lo in range(0, count_all, chunk):
        items = np.arange(lo, min(lo + chunk, count_all))
        steps = (STEPS[:, None] * h[items][None, :]).reshape(-1)
        for whole, part in zip((losses, crossed, first), run(items, steps)):
            whole[:, items] = part.reshape(len(STEPS), len(items))
        if penalty is not None:
            losses[:, items] += penalty(np.tile(items, len(STEPS)), steps).reshape(len(STEPS), len(items))

    with np.errstate(all="ignore"):   # an overflowing copy gives a non-finite quotient: judged, not warned
        base = evaluator.base_loss
        plus, minus, half_plus, half_minus = losses
        wide = (plus - minus) / (2 * h)
        narrow = (half_plus - half_minus) / h
        left, right = (base - half_minus) / (h / 2), (half_plus - base) / (h / 2)
        left_wide, right_wide = (base - minus) / h, (plus - base) / h
        scale = np.maximum(np.abs(losses).max(axis=0), np.maximum(abs(base), evaluator.magnitude[starts]))
        rounding = ROUNDING * scale / h
        gap = np.abs(narrow - wide)
        kink = (crossed > 0).any(axis=0)
        highest = first.max(axis=0)                                   # the units the copies crossed:
        lowest = np.where(first >= 0, first, highest).min(axis=0)     # one and the same, or several?
        return Differences(
            numeric=(4 * narrow - wide) / 3,
            left=left, right=right,
            kink=kink,
            several=(crossed > 1).any(axis=0) | (lowest != highest),
            noise=rounding + gap / TRUNCATION,
            spread=np.abs(left - left_wide) + np.abs(right - right_wide),
            unsettled=np.where(kink, disagree(left, left_wide, rounding) & disagree(right, right_wide, rounding),
                               disagree(narrow, wide, rounding)),
        )


def disagree(at_half: np.ndarray, at_whole: np.ndarray, rounding: np.ndarray) -> np.ndarray:
    """Two quotients of one entry, at h/2 and at h, apart by more than ``UNSETTLED`` of the larger
    and far beyond rounding: the loss bends within one step, so they are not yet a derivative."""
    gap = np.abs(at_half - at_whole)
    return (gap > UNSETTLED * np.maximum(np.abs(at_half), np.abs(at_whole))) & (gap > UNSETTLED_ROUNDING * rounding)

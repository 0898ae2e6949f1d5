"""Receptive-field probes: a perturbed copy runs the layers after it only on the region it can move.

A copy that moves one entry of a map (or, through a first conv, that conv's outputs over one input
pixel) differs from the unperturbed run only inside a box of each later map. The box is carried
through the local layers that follow — activations (each output reads its own entry), pooling and
conv (output (i, j) reads rows s·i − top … s·i − top + r·(k − 1)) — each layer running only on the
input window its box's outputs read: the unperturbed padded map with the copy's box pasted in. Every
box has one size for all copies of a probe (clamped inside the map), so the copies still run as one
batch. Where the path meets a layer that mixes the whole map (flatten, fc, softmax, global pooling),
the last layer, a kind it does not know, or a box that covers its whole map, the boxes are pasted
into the unperturbed map and the rest runs whole, as the plain path does; but a flatten into an fc
runs on the boxes' changes (``increment.FlatFC``: y_base + W[:, cols(box)] · Δ) and the rest on its output.

Kinks are read on the boxes: outside them a copy's values are the unperturbed run's, so its ReLU
signs and pool winners there are too, and a moved unit is numbered by its place in the whole layer.

Activations and pooling compute each output from the same numbers in the same order, whole or
cropped, so their crops give the plain path's bits. A conv is one BLAS matrix product, whose
rounding depends on the width of the matrix (a column's bits differ between widths), so a conv
is cropped only where that takes at most ``CONV_PAYS`` of its whole run's multiply-adds: there the
saving is large, and the losses agree with the plain path's to rounding (the numeric derivatives
within the check's own allowance for rounding, ``Differences.noise``; tests/unit/test_crop.py). A
conv whose box holds no more entries per channel than its kernel has taps runs on the box's change
(``increment.ConvBox``), which rounds on its own, within the same allowance (tests/unit/test_increment.py).
"""
from __future__ import annotations

import copy as copying
import math

import numpy as np

from ..layers.activations import LeakyReLU, ReLU, Sigmoid, Tanh
from ..layers.base import pad_map
from ..layers.conv import Conv
from ..layers.pooling import Pool
from ..network import Network, Trace
from ..record import Record
from . import increment
from .increment import taps
from .finite import Differences, Evaluator, central_differences

# the share of the memory budget a call of cropped copies takes: their boxes are small and many,
# as fast in calls of a quarter (the 96 px check: 2.6-3.0 s CPU either way), and peak memory stays
# near the whole-map runs' (the 96 px input's copies: 135 MiB, against 234 at the whole budget)
CROP_BUDGET = 0.25
CONV_PAYS = 0.25   # a conv is cropped when that takes at most this fraction of its whole run's multiply-adds

# the kinds a crop knows, with every setting it reads: a kind that gains a setting (a padding mode)
# is run whole until this table learns it
LOCAL = {
    ReLU: frozenset(), LeakyReLU: frozenset({"slope"}), Sigmoid: frozenset(), Tanh: frozenset(),
    Pool: frozenset({"type", "size", "stride", "padding", "ties", "dilation", "ceil_mode", "count_include_pad"}),
    Conv: frozenset({"filters", "channels", "size", "stride", "dilation", "padding", "span", "mode",
                     "untied_bias", "groups", "group_channels"}),
}
# settings whose other values the crop does not follow: a window of padding dropped or not counted,
# taps apart in a pool, filters that read a group of channels, a bias per output entry
PLAIN = {Pool: {"dilation": (1, 1), "ceil_mode": False, "count_include_pad": True},
         Conv: {"untied_bias": False, "groups": 1}}


def local(layer) -> bool:
    """A layer the crop knows exactly: an activation, a plain pool, or a conv with a tied bias."""
    settings = LOCAL.get(type(layer))
    if settings is None or frozenset(vars(layer)) != settings:
        return False
    return all(getattr(layer, key) == value for key, value in PLAIN.get(type(layer), {}).items())


def applies(network: Network) -> bool:
    """Probes run cropped on a chain of one example: a copy's box then moves one map, which the
    next layer alone reads (a branch reads earlier maps; a batch's examples share each copy)."""
    return network.batch == 1 and not network.branched


class Window(Record):
    """How a windowed layer (conv, pool) reads its input along both axes: the window's extent
    (dilated), stride, padding before, and the value padding reads."""

    __slots__ = ("span", "stride", "before", "pad_value")

    def __init__(self, layer):
        self.span = layer.span if isinstance(layer, Conv) else layer.size
        self.stride = layer.stride
        self.before = (layer.padding[0][0], layer.padding[1][0])
        self.pad_value = -np.inf if isinstance(layer, Pool) and layer.type == "max" else 0.0

    def reach(self, axis: int, origin: np.ndarray, size: int, out_len: int) -> tuple[np.ndarray, int]:
        """The outputs along ``axis`` that read input positions [origin, origin + size): one count
        for every copy (the most any box of ``size`` reaches, at most the map), and each copy's first,
        clamped so the box stays inside the map while holding every output that reads the input box.
        Output i reads padded positions s·i … s·i + span − 1."""
        span, stride, before = self.span[axis], self.stride[axis], self.before[axis]
        count = min(out_len, (size + span - 2) // stride + 1)
        first = -((span - 1 - origin - before) // stride)      # ⌈(origin + before − span + 1) / s⌉
        return np.clip(first, 0, out_len - count), count

    def extent(self, axis: int, count: int) -> int:
        """Padded input positions that ``count`` consecutive outputs read."""
        return self.stride[axis] * (count - 1) + self.span[axis]


class Leg(Record):
    """One layer a copy runs cropped, from the shapes alone: its index, its window (None: entry-wise),
    the box size it outputs, whether copies enter it carrying one channel, the shape it runs on
    (channels, and the box or the window the box's outputs read), and for a conv whether it runs on
    the box's change (``linear``: ``increment.ConvBox``; its shape is then the box's, channels
    and size) rather than on the window."""

    __slots__ = ("index", "window", "size", "one_channel", "shape", "linear")

    def __init__(self, index, window, size, one_channel, shape, linear=False):
        self.index, self.window, self.size, self.one_channel, self.shape = index, window, size, one_channel, shape
        self.linear = linear


def route(network: Network, start: int, size: tuple[int, int], one_channel: bool) -> tuple[list[Leg], int]:
    """The layers from ``start`` on that copies moving a box of ``size`` run cropped, and the layer
    from which they run whole: the last layer, one the crop does not know or that mixes the whole
    map, a conv whose cropped run would cost more than ``CONV_PAYS`` of its whole run, or a box that
    is the whole map."""
    legs, index, box = [], start, size
    while index < len(network.layers) - 1 and local(network.layers[index]):
        leg = _leg(network, index, box, one_channel)
        if leg is None:
            break
        legs.append(leg)
        one_channel = one_channel and not isinstance(network.layers[index], Conv)
        index, box = index + 1, leg.size
    return legs, index


def _leg(network: Network, index: int, box: tuple[int, int], one_channel: bool) -> Leg | None:
    """Layer ``index`` run cropped by copies moving a box of ``box`` into it, or None where cropping
    stops paying: a conv whose cropped run takes more than ``CONV_PAYS`` of its whole run's
    multiply-adds, or a box that is the whole map. A conv runs on the box's change (``linear``) where
    the box holds no more entries per channel than the kernel has taps, so that costs no more than
    the window's own product (``_conv_on_change``)."""
    layer, out_shape = network.layers[index], network.out_shapes[index]
    channels = network.in_shapes[index][0] if isinstance(layer, Conv) or not one_channel else 1
    if isinstance(layer, (Conv, Pool)):
        windowed = _windowed(layer, box, channels, one_channel, out_shape)
        if windowed is None:
            return None
        window, box_out, shape, linear = windowed
    else:
        window, box_out, shape, linear = None, box, (channels,) + tuple(box), False
    if box_out[0] >= out_shape[1] and box_out[1] >= out_shape[2]:
        return None                                # the box is the whole map: nothing to save
    return Leg(index, window, box_out, one_channel, shape, linear)


def _windowed(layer, box, channels: int, one_channel: bool, out_shape):
    """A conv's or pool's (window, output box size, shape it runs on, ``linear``) for copies moving
    a box of ``box``; None for a conv whose cropped run does not pay (``_conv_on_change``)."""
    window = Window(layer)
    box_out = _box_out(window, box, out_shape)
    linear = _conv_on_change(layer, box, box_out, channels, one_channel, out_shape) \
        if isinstance(layer, Conv) else False
    if linear is None:
        return None
    if linear:
        return window, box_out, (1 if one_channel else channels,) + tuple(box), True
    return window, box_out, (channels,) + tuple(window.extent(axis, box_out[axis]) for axis in (0, 1)), False


def _conv_on_change(layer: Conv, box, box_out, channels: int, one_channel: bool, out_shape) -> bool | None:
    """Whether a conv's copies moving a box of ``box`` run on the box's change (it holds no more
    entries per channel than the kernel has taps) rather than on the window; None where either
    costs more than ``CONV_PAYS`` of the whole run's multiply-adds."""
    taps = layer.size[0] * layer.size[1]
    linear = box[0] * box[1] <= taps
    # (box entries in, or kernel taps × channels) per output entry, against the whole map's
    per_output = box[0] * box[1] * (1 if one_channel else channels) if linear else taps * channels
    if per_output * box_out[0] * box_out[1] > CONV_PAYS * taps * channels * out_shape[1] * out_shape[2]:
        return None
    return linear


def _box_out(window: Window, box: tuple[int, int], out_shape) -> tuple[int, int]:
    """The size of the output box a windowed layer's copies move, from a box of ``box`` at its input."""
    return tuple(window.reach(axis, np.zeros(1, dtype=np.int64), box[axis], out_shape[1 + axis])[1]
                 for axis in (0, 1))


def copy_work(network: Network, start: int, size: tuple[int, int], one_channel: bool):
    """For ``work.check_work``: (multiply-adds one copy's cropped layers take, values it writes into
    maps — its first box and the whole map it is pasted into, or the fc output a flatten into an fc
    gives, ``increment`` — and the layer it runs whole from), or None when nothing would run cropped."""
    legs, stop = route(network, start, size, one_channel) if applies(network) else ([], start)
    if not legs:
        return None
    operations = sum(leg_operations(network, leg) for leg in legs)
    written = size[0] * size[1] * (1 if one_channel else network.in_shapes[start][0])
    if increment.applies(network, stop):
        entries = box_entries(network, legs, stop)
        return (operations + increment.operations(network, stop, entries),
                written + network.out_shapes[stop + 1][0], stop + 2)
    return operations, written + math.prod(network.in_shapes[stop]), stop


def leg_operations(network: Network, leg: Leg) -> int:
    """Multiply-adds of one copy's run of a leg: the layer on its box or window, or a conv's
    change (box entries × output box entries)."""
    if leg.linear:
        return math.prod(leg.shape) * network.out_shapes[leg.index][0] * math.prod(leg.size)
    return run_cropped(network.layers[leg.index]).operations(leg.shape)


def leg_floats(network: Network, leg: Leg) -> int:
    """Roughly how many floats one copy holds in a leg (``Layer.work_size``, or ``increment``'s)."""
    if leg.linear:
        return increment.floats_per_copy(math.prod(leg.shape), network.out_shapes[leg.index][0] * math.prod(leg.size))
    return run_cropped(network.layers[leg.index]).work_size(leg.shape)


def box_entries(network: Network, legs: list[Leg], stop: int) -> int:
    """How many entries of the map entering layer ``stop`` the last leg's box holds: its size
    times the channels (one, where no conv on the way spread the change over all)."""
    last = legs[-1]
    one_channel = last.one_channel and not isinstance(network.layers[last.index], Conv)
    return last.size[0] * last.size[1] * (1 if one_channel else network.in_shapes[stop][0])


def run_cropped(layer):
    """The layer as it runs on a crop: a windowed layer without its padding, which its window
    already holds."""
    if not isinstance(layer, (Conv, Pool)):
        return layer
    bare = copying.copy(layer)
    bare.padding = ((0, 0), (0, 0))
    return bare


class Step(Record):
    """A ``Leg`` as it runs: the leg, the layer without its padding (``run_cropped``) and the
    unperturbed input, padded, with a spare row and column past its end (``CropEvaluator.window``;
    None for an entry-wise layer or a conv run on the change)."""

    __slots__ = ("index", "leg", "layer", "window", "size", "padded")

    def __init__(self, leg: Leg, layer, padded):
        self.index, self.leg, self.window, self.size = leg.index, leg, leg.window, leg.size
        self.layer, self.padded = layer, padded


class Crops(Record):
    """Perturbed copies as boxes: ``values`` (N, C or 1, h, w) at rows ``rows[k]``, columns
    ``cols[k]`` of the map entering the first cropped layer; ``channels`` (N,) the one channel each
    copy moved (values then carry that channel alone), or None for all."""

    __slots__ = ("values", "rows", "cols", "channels")

    def __init__(self, values, rows, cols, channels=None):
        self.values, self.rows, self.cols, self.channels = values, rows, cols, channels


class CropPlan:
    """The layers from ``start`` on that copies moving a box of ``size`` run cropped (``route``),
    ready to run against the unperturbed ``trace``, and the layer (``stop``) from which they run whole."""

    def __init__(self, network: Network, trace: Trace, start: int, size: tuple[int, int], one_channel: bool):
        self.network, self.trace, self.start, self.size = network, trace, start, size
        legs, self.stop = route(network, start, size, one_channel)
        # a flatten into an fc runs on the boxes' changes, so each copy holds no whole map
        self.entries = box_entries(network, legs, self.stop) if legs and increment.applies(network, self.stop) \
            else None
        self.steps = []
        for leg in legs:
            layer, padded = network.layers[leg.index], None
            if leg.window is not None and not leg.linear:
                (top, bottom), (left, right) = layer.padding
                padded = pad_map(trace.inputs[leg.index], ((top, bottom + 1), (left, right + 1)),
                                 leg.window.pad_value)[0]
            self.steps.append(Step(leg, run_cropped(layer), padded))

    def floats_per_copy(self) -> int:
        """Roughly how many floats one copy holds through the cropped layers and the whole ones after."""
        net = self.network
        cropped = sum(leg_floats(net, step.leg) for step in self.steps)
        whole = self.stop if self.entries is None else self.stop + 2
        mixing = 0 if self.entries is None else increment.floats_per_copy(self.entries, net.out_shapes[self.stop + 1][0])
        return cropped + mixing + sum(net.layers[k].work_size(net.in_shapes[k]) for k in range(whole, len(net.layers)))


class CropEvaluator:
    """Runs batches of ``Crops`` for one plan against an ``Evaluator``'s unperturbed trace; it
    answers what ``central_differences`` asks of an evaluator."""

    def __init__(self, evaluator: Evaluator, plan: CropPlan):
        self.evaluator, self.plan = evaluator, plan
        self.base_loss, self.magnitude = evaluator.base_loss, evaluator.magnitude
        self.conv_boxes = {}    # step index → ``increment.ConvBox``, for convs run on the change

    def copies_per_call(self, start: int) -> int:
        """Copies per call within ``CROP_BUDGET`` of the evaluator's memory budget."""
        return max(1, int(CROP_BUDGET * self.evaluator.memory_budget) // (8 * max(self.plan.floats_per_copy(), 1)))

    def run(self, start: int, crops: Crops) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Loss of each copy, how many units it moved to another smooth piece, and which first (as
        ``Evaluator.run``)."""
        evaluator, plan = self.evaluator, self.plan
        count = len(crops.rows)
        crossed = np.zeros(count, dtype=np.int64)
        first = np.full(count, -1)
        offset = 0
        values, rows, cols, channels = crops.values, crops.rows, crops.cols, crops.channels
        with np.errstate(all="ignore"):   # as the plain path: an overflowing copy is judged, not warned
            for step in plan.steps:
                params = plan.network.params_of(step.index, evaluator.params)
                if step.window is None:
                    values, cache = step.layer.forward(values, params)
                else:
                    out_shape = plan.network.out_shapes[step.index]
                    out_rows, _ = step.window.reach(0, rows, values.shape[2], out_shape[1])
                    out_cols, _ = step.window.reach(1, cols, values.shape[3], out_shape[2])
                    if step.leg.linear:
                        offsets = np.stack([rows + step.window.before[0] - step.window.stride[0] * out_rows,
                                            cols + step.window.before[1] - step.window.stride[1] * out_cols], axis=1)
                        values, cache = self.conv_box(step, values.shape[2:]).outputs(
                            values, rows, cols, channels, offsets, out_rows, out_cols), None
                    else:
                        window = self.window(step, values, rows, cols, channels, out_rows, out_cols)
                        values, cache = step.layer.forward(window, params)
                    rows, cols = out_rows, out_cols
                    if isinstance(step.layer, Conv):
                        channels = None
                base = evaluator.base_patterns[step.index]
                if base is not None:
                    moved, box = self.moved(step, cache, base, rows, cols, channels)
                    crossed += moved.sum(axis=1)
                    fresh = np.flatnonzero((first < 0) & moved.any(axis=1))
                    first[fresh] = offset + self.place(base, box, moved[fresh].argmax(axis=1), rows[fresh],
                                                       cols[fresh], None if channels is None else channels[fresh])
                    offset += base[0].size
            flat_fc = evaluator.flat_fc(plan.stop)
            if flat_fc is None:
                losses, ran = evaluator.losses(plan.stop, self.spliced(values, rows, cols, channels)[:, None])
            else:
                losses, ran = evaluator.losses(flat_fc.after, flat_fc.outputs(values, rows, cols, channels)[:, None])
        later, later_first = evaluator.kinks_crossed(ran, count)
        fresh = (first < 0) & (later_first >= 0)
        first[fresh] = offset + later_first[fresh]
        if evaluator.progress is not None:
            evaluator.progress(count)
        return losses, crossed + later, first

    def conv_box(self, step: Step, box) -> increment.ConvBox:
        """``step``'s conv run on the change of a box of ``box`` (``increment.ConvBox``)."""
        if step.index not in self.conv_boxes:
            trace = self.plan.trace
            self.conv_boxes[step.index] = increment.ConvBox(
                step.layer, self.plan.network.params_of(step.index, self.evaluator.params),
                trace.inputs[step.index][0], trace.outputs[step.index][0], box, step.size)
        return self.conv_boxes[step.index]

    def window(self, step: Step, values, rows, cols, channels, out_rows, out_cols) -> np.ndarray:
        """What the outputs of ``step``'s box read: the unperturbed padded input at each copy's window,
        with the copy's box pasted in (the parts of a box no window reads fall in a spare row and
        column past the window's end)."""
        win = step.window
        height, width = win.extent(0, step.size[0]), win.extent(1, step.size[1])
        top, left = win.stride[0] * out_rows, win.stride[1] * out_cols          # padded coordinates
        views = np.lib.stride_tricks.sliding_window_view(step.padded, (height + 1, width + 1), axis=(1, 2))
        if channels is not None and not isinstance(step.layer, Conv):        # pooling is channel-wise
            buffer, depth = views[channels, top, left][:, None], 0
        else:
            buffer, depth = views.transpose(1, 2, 0, 3, 4)[top, left], channels
        box_h, box_w = values.shape[2:]
        at_rows = rows[:, None] + win.before[0] - top[:, None] + np.arange(box_h)
        at_cols = cols[:, None] + win.before[1] - left[:, None] + np.arange(box_w)
        at_rows = np.where((at_rows >= 0) & (at_rows < height), at_rows, height)[:, :, None]
        at_cols = np.where((at_cols >= 0) & (at_cols < width), at_cols, width)[:, None, :]
        copies = np.arange(len(rows))[:, None, None]
        if depth is None:
            buffer[copies, :, at_rows, at_cols] = values.transpose(0, 2, 3, 1)
        else:
            buffer[copies, depth if np.ndim(depth) == 0 else depth[:, None, None], at_rows, at_cols] = values[:, 0]
        return buffer[:, :, :height, :width]

    @staticmethod
    def moved(step: Step, cache, base, rows, cols, channels) -> tuple[np.ndarray, tuple[int, ...]]:
        """Which units of the box each copy moved to another smooth piece, (N, units), and the box's
        shape (channels, rows, columns)."""
        pattern = step.layer.pattern(cache)
        box_rows = (rows[:, None] + np.arange(pattern.shape[2]))[:, :, None]
        box_cols = (cols[:, None] + np.arange(pattern.shape[3]))[:, None, :]
        if channels is None:
            unmoved = base[0][:, box_rows, box_cols].transpose(1, 0, 2, 3)
        else:
            unmoved = base[0][channels[:, None, None], box_rows, box_cols][:, None]
        return (pattern != unmoved).reshape(len(rows), -1), pattern.shape[1:]

    @staticmethod
    def place(base, box, units, rows, cols, channels) -> np.ndarray:
        """The place in the whole layer (c·H·W + i·W + j) of unit ``units[k]`` of copy k's box."""
        _, _, height, width = base.shape
        depth, row, col = np.unravel_index(units, box)
        if channels is not None:
            depth = channels
        return (depth * height + rows + row) * width + cols + col

    def spliced(self, values, rows, cols, channels) -> np.ndarray:
        """The whole maps entering layer ``stop``: the unperturbed one with each copy's box pasted in."""
        count = len(rows)
        whole = np.repeat(self.plan.trace.inputs[self.plan.stop], count, axis=0)
        box_rows = (rows[:, None] + np.arange(values.shape[2]))[:, :, None]
        box_cols = (cols[:, None] + np.arange(values.shape[3]))[:, None, :]
        copies = np.arange(count)[:, None, None]
        if channels is None:
            whole[copies, :, box_rows, box_cols] = values.transpose(0, 2, 3, 1)
        else:
            whole[copies, channels[:, None, None], box_rows, box_cols] = values[:, 0]
        return whole


class CroppedRuns(Record):
    """Speed-up for a probe whose entries each move a box of the map entering layer ``start``:
    ``copies(entries, steps)`` gives those boxes (``Crops``), which run through ``plan``."""

    __slots__ = ("plan", "copies")

    def __init__(self, plan: CropPlan, copies):
        self.plan, self.copies = plan, copies

    def runs(self, probe) -> int:
        return probe.values.size

    def differences(self, evaluator: Evaluator, probe, eps: float) -> Differences:
        return central_differences(CropEvaluator(evaluator, self.plan), probe.start, probe.steps(eps), self.copies,
                                   penalty=probe.penalty_entries)


def point_runs(network: Network, trace: Trace, start: int, values: np.ndarray) -> CroppedRuns | None:
    """Cropped runs for moving one entry of the map ``values`` (C, H, W) entering layer ``start``:
    each copy is a 1×1 box of one channel; None where no layer after it would run cropped."""
    if values.ndim != 3 or not applies(network):
        return None
    plan = CropPlan(network, trace, start, (1, 1), one_channel=True)
    if not plan.steps:
        return None

    def copies(entries: np.ndarray, steps: np.ndarray) -> Crops:
        channel, row, col = np.unravel_index(entries, values.shape)
        moved = values[channel, row, col] + steps    # what shifted_copies writes there
        return Crops(moved.reshape(-1, 1, 1, 1), row, col, channel)

    return CroppedRuns(plan, copies)


def untied_bias_runs(network: Network, trace: Trace, index: int, pname: str) -> CroppedRuns | None:
    """Cropped runs for an untied conv bias: its entry (d, i, j) moves output entry (d, i, j) of
    layer ``index`` alone, by the step (y + s · 1, what ``Conv.output_change`` gives exactly)."""
    layer = network.layers[index]
    if type(layer) is not Conv or not layer.untied_bias or pname != "bias":
        return None
    return point_runs(network, trace, index + 1, trace.outputs[index][0])


def first_conv_runs(network: Network, trace: Trace, params) -> CroppedRuns | None:
    """Cropped runs for the input seen through a first conv: an input pixel moves the box of that
    conv's outputs whose windows hold it, by s · K (``Conv.input_change`` on the box alone)."""
    conv, x, y = network.layers[0], trace.inputs[0], trace.outputs[0][0]
    if not local(conv) or x.ndim != 4 or not applies(network):
        return None
    window = Window(conv)
    size = first_conv_box(network)
    plan = CropPlan(network, trace, 1, size, one_channel=False)
    if not plan.steps:
        return None
    kernel = conv.effective_kernel(network.params_of(0, params)["kernel"])

    def copies(entries: np.ndarray, steps: np.ndarray) -> Crops:
        channel, row, col = np.unravel_index(entries, x.shape[1:])
        rows, _ = window.reach(0, row, 1, y.shape[1])
        cols, _ = window.reach(1, col, 1, y.shape[2])
        taps_m, hit_m = taps(row[:, None] + window.before[0] - window.stride[0] * (rows[:, None] + np.arange(size[0])),
                             conv.dilation[0], conv.size[0])
        taps_n, hit_n = taps(col[:, None] + window.before[1] - window.stride[1] * (cols[:, None] + np.arange(size[1])),
                             conv.dilation[1], conv.size[1])
        change = kernel[:, channel[:, None, None], taps_m[:, :, None], taps_n[:, None, :]].transpose(1, 0, 2, 3)
        change = np.where((hit_m[:, :, None] & hit_n[:, None, :])[:, None], change, 0.0)
        box = y[:, (rows[:, None] + np.arange(size[0]))[:, :, None], (cols[:, None] + np.arange(size[1]))[:, None, :]]
        unmoved = box.transpose(1, 0, 2, 3)
        return Crops(unmoved + steps.reshape(-1, 1, 1, 1) * change, rows, cols)

    return CroppedRuns(plan, copies)


def first_conv_box(network: Network) -> tuple[int, int]:
    """The size of the box of a first conv's output that one input pixel moves."""
    window, out_shape = Window(network.layers[0]), network.out_shapes[0]
    return tuple(window.reach(axis, np.zeros(1, dtype=np.int64), 1, out_shape[1 + axis])[1] for axis in (0, 1))


"""Linear layers run on what a perturbed copy changed instead of its whole input: y_copy = y_base + M · Δ.

- ``FlatFC``: a copy that moves a box of the map entering a flatten into an fc (a receptive-field
  crop, ``crop``), or one channel of it (``finite.Evaluator.one_channel_layers``), gives the fc
  y_base + W[:, cols(box)] · (x_copy_box − x_base_box), cols(box) the places of the box's entries
  in the flattened vector: the product reads the box's columns of W, not all of them (at 96 px,
  256 of LeNet's 7,056, for each of 36,864 input copies).
- ``ConvBox``: a conv in a crop, on the change of its input box (the kernel entries through which
  each output of the box reads each entry of the input box).
- ``ChannelConv``: a conv after a conv kernel entry's one channel, on that channel's change.

Why the loss differences stay accurate (the check divides them by h). The difference
x_copy − x_base of two nearby values is exact where they lie within a factor of 2 (Sterbenz), and
else rounds by ε of itself; W · Δ rounds by about ε Σ |W| |Δ|, a relative ε of the change, which
the quotient carries as a relative ε of the derivative. What remains is the sum y_base + W · Δ,
rounded by ε |y| per unit, no more than the whole product W · x_copy rounds (ε Σ |W| |x|, the
rounding allowance ``Differences.noise`` is made for). And y_base's own rounding is the
unperturbed run's, the same bits in every copy and in E(θ): it cancels in E(θ ± h) − E(θ) where the
whole product's rounding differs copy by copy, and a copy that changed nothing gets y_base's very
bits (a whole product in a call of other rows may not, and so move a unit that sits at a kink).
Each path's numeric derivatives lie within its allowance of the exact ones, so the two agree
within their two allowances (tests/unit/test_increment.py). Kinks are read as before: flatten, fc
and conv have none, and every layer after them runs on their outputs. Where a moved unit's true
change is below the whole product's rounding, the paths may differ on whether it crossed a kink.
"""
from __future__ import annotations

import copy as copying

import numpy as np

from ..layers.conv import Conv
from ..layers.fc import FC
from ..layers.flatten import Flatten
from ..network import Network, Trace

BLOCK_BUDGET = 32 * 2**20   # bytes of blocks gathered for one matrix product of tiles


def applies(network: Network, index: int) -> bool:
    """Layer ``index`` is a flatten of a map into an fc, in a chain of one example."""
    layers = network.layers
    return (network.batch == 1 and index + 1 < len(layers) and type(layers[index]) is Flatten
            and type(layers[index + 1]) is FC and network.chained(index) and network.chained(index + 1))


def channel_conv_applies(network: Network, index: int) -> bool:
    """Layer ``index`` is a conv that reads every channel with one tied bias per filter (no groups),
    in a chain of one example: a change of one input channel runs through it alone (``ChannelConv``)."""
    layer = network.layers[index] if index < len(network.layers) else None
    return (network.batch == 1 and type(layer) is Conv and layer.groups == 1 and not layer.untied_bias
            and network.chained(index))


class FlatFC:
    """Layer ``index`` (a flatten) and the fc after it, run on the change of a box of their input
    map (``applies``): ``outputs`` gives the fc's output of every copy, from which layer ``after``
    runs on."""

    def __init__(self, network: Network, trace: Trace, params, index: int):
        self.after = index + 2
        self.base_map = trace.inputs[index][0]                   # (C, H, W)
        self.base_out = trace.outputs[index + 1][0]              # (outputs,)
        channels, height, width = self.base_map.shape
        # the map entry at each place of the vector (the flatten's own forward of 0, 1, 2, …), and
        # so the place of each map entry
        entries = network.layers[index].forward(np.arange(self.base_map.size, dtype=np.float64).reshape(
            (1,) + self.base_map.shape), {})[0][0].astype(np.int64)
        column = np.empty_like(entries)
        column[entries] = np.arange(entries.size)
        weights = network.params_of(index + 1, params)["weights"]
        # W's columns laid out as the map, the outputs last: a box's columns are a block of this
        self.columns = np.ascontiguousarray(weights.T[column].reshape(channels, height, width, -1))

    def outputs(self, values: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                channels: np.ndarray | None) -> np.ndarray:
        """The fc's output (copies, outputs) for copies whose map entering the flatten is the
        unperturbed one with ``values`` (copies, C or 1, h, w) at rows ``rows[k]``, columns
        ``cols[k]`` (of channel ``channels[k]``, or all channels when None)."""
        count, _, box_h, box_w = values.shape
        change = (values - boxes(self.base_map, rows, cols, (box_h, box_w), channels)).reshape(count, -1)
        key = rows * self.base_map.shape[2] + cols          # copies that move the same box share its columns
        if channels is not None:
            key = channels * self.base_map[0].size + key
        outputs = self.columns.shape[-1]

        def blocks(copies):
            block = boxes(self.columns, rows[copies], cols[copies], (box_h, box_w),
                          None if channels is None else channels[copies])
            return block.reshape(len(copies), -1, outputs)

        return self.base_out + grouped_product(change, key, blocks, outputs)


class ConvBox:
    """A conv run on the change of a box of its input (``crop``): each copy's output box is the
    unperturbed one plus M · Δ, where M is the conv's map from the input box, at its offset in the
    window that the output box reads, to that output box: entry (c, i, j) → (d, oi, oj) is the
    kernel entry K[d, c, m, n] with s·oi + r·m = offset + i (and likewise n), or 0 where no tap
    reads it. M holds kernel entries themselves, one for each offset the copies meet.

    It costs (box entries) × (output box entries) multiply-adds a copy against the cropped conv's
    (kernel taps × channels) × (output box entries), fewer where the box holds fewer entries per
    channel than the kernel has taps (a pixel's 3×3 box into a 5×5 kernel), and forms no window.
    Rounding: as ``FlatFC``, the change's product rounds by ε of itself, the sum by ε of each output.
    """

    def __init__(self, layer, params, base_in: np.ndarray, base_out: np.ndarray, box, out_box):
        self.kernel = layer.effective_kernel(params["kernel"])       # (D, C, kh, kw)
        self.stride, self.dilation = layer.stride, layer.dilation
        self.base_in, self.base_out = base_in, base_out               # (C, H, W), (D, Ho, Wo)
        self.box, self.out_box = tuple(box), tuple(out_box)
        self.maps = {}                             # offset → M, (C, box entries per channel, outputs)

    def outputs(self, values, rows, cols, channels, offsets, out_rows, out_cols) -> np.ndarray:
        """The output boxes (copies, D, oh, ow) at rows ``out_rows``, columns ``out_cols`` of copies
        whose input is the unperturbed one with ``values`` (copies, C or 1, h, w) at rows ``rows``,
        columns ``cols`` (channel ``channels[k]``, or all), that box at ``offsets`` (copies, 2) of
        the window the output box reads."""
        count = len(rows)
        change = (values - boxes(self.base_in, rows, cols, self.box, channels)).reshape(count, -1)
        shifted = offsets - offsets.min(axis=0)
        _, first, at = np.unique(shifted[:, 0] * (shifted[:, 1].max() + 1) + shifted[:, 1], return_index=True,
                                 return_inverse=True)
        maps = np.stack([self.map_at((int(offsets[k, 0]), int(offsets[k, 1]))) for k in first])
        if channels is None:
            key = at

            def blocks(copies):
                return maps[at[copies]].reshape(len(copies), -1, maps.shape[-1])
        else:
            key = at * self.base_in.shape[0] + channels

            def blocks(copies):
                return maps[at[copies], channels[copies]]

        moved = grouped_product(change, key, blocks, maps.shape[-1]).reshape((count, len(self.base_out)) + self.out_box)
        return boxes(self.base_out, out_rows, out_cols, self.out_box) + moved

    def map_at(self, offset: tuple[int, int]) -> np.ndarray:
        """M for a box at ``offset`` (row, column) of the window: row (c, i, j) holds the outputs a
        unit at (c, offset + (i, j)) gives, 0 where no tap reads it (outside the window too)."""
        if offset not in self.maps:
            (kh, kw), axes = self.kernel.shape[2:], []
            for axis, size in ((0, kh), (1, kw)):
                reads = offset[axis] + np.arange(self.box[axis])[:, None] \
                    - self.stride[axis] * np.arange(self.out_box[axis])[None, :]      # (box, out box)
                axes.append(taps(reads, self.dilation[axis], size))
            (tap_m, hit_m), (tap_n, hit_n) = axes
            entries = self.kernel[:, :, tap_m[:, :, None, None], tap_n[None, None]]   # (D, C, bh, oh, bw, ow)
            hit = hit_m[:, :, None, None] & hit_n[None, None]
            block = np.where(hit, entries, 0.0).transpose(1, 2, 4, 0, 3, 5)           # (C, bh, bw, D, oh, ow)
            self.maps[offset] = block.reshape(block.shape[0], self.box[0] * self.box[1], -1)
        return self.maps[offset]


def taps(offset: np.ndarray, dilation: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The kernel tap m with r·m = ``offset`` (the window offset at which an output reads the pixel),
    clipped into range, and whether there is one."""
    tap, rest = np.divmod(offset, dilation)
    hit = (rest == 0) & (tap >= 0) & (tap < size)
    return np.clip(tap, 0, size - 1), hit


class ChannelConv:
    """A conv run on the change of one channel of its input (a conv kernel entry's copies after the
    channel-wise layers, ``finite.Evaluator.one_channel_layers``): y = y_base + K[:, c] ⋆ Δ_c, each
    copy's moved channel c correlated with the kernel's channel c alone, C times fewer multiply-adds
    and window entries than the whole conv. Rounding: as ``FlatFC``."""

    def __init__(self, layer, params, base_in: np.ndarray, base_out: np.ndarray):
        self.layer = copying.copy(layer)                  # the same conv, reading one channel
        self.layer.channels = self.layer.group_channels = 1
        self.kernel = params["kernel"]
        self.bias = np.zeros_like(params["bias"])
        self.base_in, self.base_out = base_in, base_out   # (C, H, W), (D, Ho, Wo)

    def outputs(self, values: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """The conv's output (copies, D, Ho, Wo) for copies whose input is the unperturbed one with
        channel ``channels[k]`` replaced by ``values[k]`` (copies, 1, H, W): one conv per channel."""
        change = values - self.base_in[channels][:, None]
        moved = np.empty((len(channels),) + self.base_out.shape)
        for channel in np.unique(channels):
            copies = np.flatnonzero(channels == channel)
            moved[copies] = self.layer.forward(change[copies], {"kernel": self.kernel[:, channel:channel + 1],
                                                               "bias": self.bias})[0]
        return self.base_out + moved


def boxes(array: np.ndarray, rows: np.ndarray, cols: np.ndarray, size, channels=None) -> np.ndarray:
    """Each copy's box of ``array`` (C, H, W, …): rows ``rows[k]`` on, columns ``cols[k]`` on, of
    ``size``, of every channel or of channel ``channels[k]``: (copies, C or 1, h, w, …)."""
    box_rows = (rows[:, None] + np.arange(size[0]))[:, :, None]
    box_cols = (cols[:, None] + np.arange(size[1]))[:, None, :]
    if channels is None:
        return np.moveaxis(array[:, box_rows, box_cols], 1, 0)
    return array[channels[:, None, None], box_rows, box_cols][:, None]


def grouped_product(change: np.ndarray, key: np.ndarray, blocks, outputs: int) -> np.ndarray:
    """change[k] · (the block of key[k]) for every copy k, (copies, outputs): the copies of one key
    share its block, one matrix product per tile of them (``tiles``), the blocks gathered for at most
    ``BLOCK_BUDGET`` bytes of tiles at a time. ``blocks(copies)`` gives the block of each of
    ``copies``' keys, (len(copies), change entries, outputs)."""
    tile, slot, first, size = tiles(key)
    stacked = np.zeros((len(first), size, change.shape[1]))
    stacked[tile, slot] = change
    products = np.empty((len(first), size, outputs))
    at_once = max(1, BLOCK_BUDGET // (8 * change.shape[1] * outputs))
    for lo in range(0, len(first), at_once):
        np.matmul(stacked[lo:lo + at_once], blocks(first[lo:lo + at_once]), out=products[lo:lo + at_once])
    return products[tile, slot]


def floats_per_copy(entries: int, outputs: int) -> int:
    """Roughly how many floats one copy moving ``entries`` entries to ``outputs`` outputs holds in
    ``grouped_product`` (besides the blocks, at most ``BLOCK_BUDGET``) and after it: its change and
    its place in a tile (tiles hold at most twice the copies), its product, the unperturbed output
    it is added to and the sum."""
    return 3 * entries + 5 * outputs


def operations(network: Network, index: int, entries: int) -> int:
    """Multiply-adds of ``FlatFC.outputs`` for one copy moving ``entries`` map entries."""
    return entries * network.out_shapes[index + 1][0]


def tiles(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Copies grouped by ``key`` into tiles of one size, each tile within one key: each copy's tile
    and slot in it, a copy of each tile's key, and the tile size (the mean group size, so the tiles
    hold at most twice the copies and there are at most twice as many tiles as keys)."""
    order = np.argsort(key, kind="stable")
    _, group, counts = np.unique(key[order], return_inverse=True, return_counts=True)
    size = -(-len(key) // len(counts))
    per_group = -(-counts // size)
    group_tile = np.concatenate(([0], np.cumsum(per_group)[:-1]))
    rank = np.arange(len(key)) - np.concatenate(([0], np.cumsum(counts)[:-1]))[group]
    tile, slot = np.empty_like(key), np.empty_like(key)
    tile[order] = group_tile[group] + rank // size
    slot[order] = rank % size
    first = np.empty(int(per_group.sum()), dtype=np.int64)
    first[tile[order]] = order           # any copy of the tile: all share its key
    return tile, slot, first, size

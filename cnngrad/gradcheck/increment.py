"""The fc after a flatten, run on what a perturbed copy changed instead of its whole input map.

A copy that moves a box of the map entering the flatten (a receptive-field crop, ``crop``) or one
channel of it (``finite.Evaluator.one_channel_layers``) gives the fc the output
    y_copy = y_base + W[:, cols(box)] · (x_copy_box − x_base_box),
where cols(box) are the places of the box's entries in the flattened vector: the product reads
the box's columns of W, not all of them (at 96 px, 256 of LeNet's 7,056, for each of 36,864
input copies).

Why the loss differences stay accurate (the check divides them by h). The difference
x_copy − x_base of two nearby values is exact where they lie within a factor of 2 (Sterbenz), and
else rounds by ε of itself; W · Δ rounds by about ε Σ |W| |Δ|, a relative ε of the change, which
the quotient carries as a relative ε of the derivative. What remains is the sum y_base + W · Δ,
rounded by ε |y| per unit, no more than the whole product W · x_copy rounds (ε Σ |W| |x|, the
rounding allowance ``Differences.noise`` is made for). And y_base's own rounding is the
unperturbed run's, the same bits in every copy and in E(θ): it cancels in E(θ ± h) − E(θ) where the
whole product's rounding differs copy by copy. The numeric derivatives therefore agree with the
plain path's within that allowance (tests/unit/test_increment.py); kinks are unaffected, since
neither flatten nor fc has any, and every layer after the fc runs as before on its output.
"""
from __future__ import annotations

import numpy as np

from ..layers.fc import FC
from ..layers.flatten import Flatten
from ..network import Network, Trace


def applies(network: Network, index: int) -> bool:
    """Layer ``index`` is a flatten of a map into an fc, in a chain of one example."""
    layers = network.layers
    return (network.batch == 1 and index + 1 < len(layers) and type(layers[index]) is Flatten
            and type(layers[index + 1]) is FC and network.chained(index) and network.chained(index + 1))


class FlatFC:
    """Layer ``index`` (a flatten) and the fc after it, run on the change of a box of their input
    map (``applies``): ``outputs`` gives the fc's output of every copy, from which layer ``after``
    runs on."""

    def __init__(self, network: Network, trace: Trace, params, index: int):
        self.after = index + 2
        self.base_map = trace.inputs[index][0]                   # (C, H, W)
        self.base_out = trace.outputs[index + 1][0]              # (outputs,)
        channels, height, width = self.base_map.shape
        # which vector place each map entry goes to (the flatten's order, read off its own forward)
        places = network.layers[index].forward(np.arange(self.base_map.size, dtype=np.float64).reshape(
            (1,) + self.base_map.shape), {})[0][0].astype(np.int64)
        column = np.empty_like(places)
        column[places] = np.arange(places.size)
        weights = network.params_of(index + 1, params)["weights"]
        # W's columns laid out as the map, the outputs last: a box's columns are a block of this
        self.columns = np.ascontiguousarray(weights.T[column].reshape(channels, height, width, -1))

    def outputs(self, values: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                channels: np.ndarray | None) -> np.ndarray:
        """The fc's output (copies, outputs) for copies whose map entering the flatten is the
        unperturbed one with ``values`` (copies, C or 1, h, w) at rows ``rows[k]``, columns
        ``cols[k]`` (of channel ``channels[k]``, or all channels when None)."""
        count, depth, box_h, box_w = values.shape
        box_rows = (rows[:, None] + np.arange(box_h))[:, :, None]
        box_cols = (cols[:, None] + np.arange(box_w))[:, None, :]
        if channels is None:
            unmoved = self.base_map[:, box_rows, box_cols].transpose(1, 0, 2, 3)
        else:
            unmoved = self.base_map[channels[:, None, None], box_rows, box_cols][:, None]
        change = (values - unmoved).reshape(count, -1)
        # copies that move the same box share its block of W: one product per tile of them
        key = rows * self.base_map.shape[2] + cols
        if channels is not None:
            key = channels * self.base_map[0].size + key
        tile, slot, first, size = tiles(key)
        stacked = np.zeros((len(first), size, change.shape[1]))
        stacked[tile, slot] = change
        blocks = self.block(first, rows, cols, channels, (box_h, box_w))
        return self.base_out + (stacked @ blocks)[tile, slot]

    def block(self, copies: np.ndarray, rows, cols, channels, box) -> np.ndarray:
        """The columns of W that the box of each of ``copies`` reads, (len(copies), box entries, outputs)."""
        box_rows = (rows[copies, None] + np.arange(box[0]))[:, :, None]
        box_cols = (cols[copies, None] + np.arange(box[1]))[:, None, :]
        outputs = self.columns.shape[-1]
        if channels is None:
            block = self.columns[:, box_rows, box_cols].transpose(1, 0, 2, 3, 4)
        else:
            block = self.columns[channels[copies, None, None], box_rows, box_cols]
        return block.reshape(len(copies), -1, outputs)



def floats_per_copy(network: Network, index: int, entries: int) -> int:
    """Roughly how many floats one copy moving ``entries`` entries of the map entering flatten
    ``index`` holds in ``FlatFC.outputs``: its change (and its place in a tile), its share of the
    blocks of W (a tile per two copies at most: each entry's four steps share their box; ``tiles``),
    and the fc's output."""
    outputs = network.out_shapes[index + 1][0]
    return 3 * entries + entries * outputs // 2 + 2 * outputs


def operations(network: Network, index: int, entries: int) -> int:
    """Multiply-adds of ``FlatFC.outputs`` for one copy moving ``entries`` map entries."""
    return entries * network.out_shapes[index + 1][0]


def tiles(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Copies grouped by ``key`` into tiles of one size, each tile within one key: each copy's tile
    and slot in it, a copy of each tile's key, and the tile size (the mean group size, so the tiles
    hold at most twice the copies and there are at most twice as many tiles as keys)."""
    order = np.argsort(key, kind="stable")
    keys, group, counts = np.unique(key[order], return_inverse=True, return_counts=True)
    size = -(-len(key) // len(keys))
    per_group = -(-counts // size)
    group_tile = np.concatenate(([0], np.cumsum(per_group)[:-1]))
    rank = np.arange(len(key)) - np.concatenate(([0], np.cumsum(counts)[:-1]))[group]
    tile, slot = np.empty_like(key), np.empty_like(key)
    tile[order] = group_tile[group] + rank // size
    slot[order] = rank % size
    first = np.empty(int(per_group.sum()), dtype=np.int64)
    first[tile[order]] = order           # any copy of the tile: all share its key
    return tile, slot, first, size

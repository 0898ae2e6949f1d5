"""What every layer kind provides, and the registry that finds a kind by its spec word.

A layer is a pair of pure functions over float64 arrays with a leading batch axis:
``forward(x, params) -> (y, cache)`` and ``backward(dy, cache, params) -> (dx, param_grads)``.
Maps are ``(B, C, H, W)`` and vectors ``(B, N)``; shapes given to ``output_shape`` omit ``B``.
Parameter gradients are summed over the batch (the batch's loss is the sum of its examples').
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..quantities import shape_text
from .explanation import Explanation

REGISTRY: dict[str, type["Layer"]] = {}


class ShapeError(ValueError):
    """A layer cannot take an input of the shape it is given: ``reason`` says why (of "its
    input"), ``setting`` names the spec setting to blame (None: the layer as a whole) and ``fix``
    what to write instead, if there is one thing to write."""

    def __init__(self, reason: str, setting: str | None = None, fix: str | None = None):
        super().__init__(reason if fix is None else f"{reason}; {fix}")
        self.reason, self.setting, self.fix = reason, setting, fix

    def naming(self, source: str) -> str:
        """The message with the input named: ``reason (source); fix``."""
        return f"{self.reason} ({source})" + (f"; {self.fix}" if self.fix else "")


class ParamError(ValueError):
    """A parameter or setting as written cannot be one of its kind, whatever the input (a kernel of
    the wrong rank): the message is complete, ``setting`` names the setting to blame."""

    def __init__(self, message: str, setting: str):
        super().__init__(message)
        self.setting = setting


class Setting(NamedTuple):
    """One setting a layer kind reads from its spec entry, declared beside the kind so that spec
    reading, the JSON Schema and the build all derive from it.

    ``reads`` is what is written: ``array`` (a value: number, list, random or file; kept as the
    parameter of that name, its shape the one ``param_shapes`` gives; ``default`` is then the
    number every entry takes when the key is absent, None for a required one), ``pair`` (an int or
    [h, w], each at least ``minimum``), ``padding``, ``word`` (one of ``choices``), ``number``,
    ``integer`` (at least ``minimum``) or ``flag`` (true or false). ``default`` is used when the key is absent (a
    string ``"=key"`` copies another setting, e.g. pooling's stride is its size); ``only`` =
    (setting, word, words) allows the key only when that setting has that word. ``description``
    is the schema's text.
    """

    name: str
    reads: str
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: int = 0
    only: tuple[str, str, str] | None = None
    description: str | None = None


def register(cls):
    """Class decorator: make a layer kind findable by its spec word (``cls.kind``)."""
    REGISTRY[cls.kind] = cls
    return cls


class Layer:
    """Base of every layer kind: no parameters, smooth, shape-preserving unless overridden.

    The interface has three parts, in this order in every layer file: the engine (shape rule,
    forward, backward and what they cost), the explanation (``explain_input``, ``explain_param``:
    the chain rule one step, for ``cnngrad explain``) and the checker's hooks (rounding size, kinks,
    work, and the exact shortcuts a layer affine in its input or parameters offers). Each shortcut
    is declared by a class flag, so the checker asks the flag, never whether a method exists.
    """

    kind = ""
    settings: tuple[Setting, ...] = ()   # what the spec entry may write (besides ``name``)
    param_names: tuple[str, ...] = ()
    channelwise = False   # output channel c depends on input channel c alone (pooling, f(x) per entry)
    # reads several values (add, concat): ``forward`` takes a tuple of arrays, ``backward`` gives a
    # tuple of their gradients, shape methods take a tuple of shapes, ``explain_operand`` explains
    joins = False
    # the checker's exact shortcuts this kind implements (see the hooks below)
    linear_in_input = False        # ``input_change``
    affine_in_params = False       # ``output_change``
    param_moves_one_unit = False   # ``output_unit`` (each parameter entry moves one output unit)
    param_moves_one_channel = False  # ``channel_change`` (each parameter entry moves one output channel)
    # how the output moves when the input moves along a line x + s·Δ (``--fast`` carries its
    # directions' changes through such layers, ``finite.Evaluator.run_lines``): along a line too
    affine_in_input = False        # y = A x + c for fixed parameters (conv, fc, flatten, average pooling)
    piecewise_linear = False       # affine on each smooth piece of ``pattern`` (relu, leaky relu, max pooling)
    # the output of an example depends on the other examples of its batch (batch norm). Such a
    # kind is built with the batch size N (``self.batch``) and sees the rows of a run in groups of N
    # consecutive examples, one group per perturbed copy; its explain methods take an index with
    # the example first and the whole batch's arrays, and ``statistics(cache)`` names what
    # ``forward`` shows of the batch (its mean and variance)
    mixes_examples = False

    # --- building from a spec entry: the engine and each parameter's checks

    @classmethod
    def from_spec(cls, options: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> "Layer":
        """The engine for the read settings ``options`` and the shapes ``shapes`` of the parameters
        written (by name; an omitted one is absent). Raises ``ParamError`` when a written shape cannot
        be this kind's; ``cls(**options)`` unless overridden by a kind whose parameters size it."""
        return cls(**options)

    def param_mismatch(self, pname: str, written: tuple[int, ...], wanted: tuple[int, ...], layer: str) -> str:
        """The message for parameter ``pname`` written with shape ``written`` where this input needs
        ``wanted`` (both as the user writes them; ``layer`` is the layer's name)."""
        return (f"{layer}.{pname} has shape {shape_text(written, 'a scalar')} but its input needs "
                f"{shape_text(wanted, 'a scalar')}; write that shape, or one number for every entry")

    # --- engine: shape rule, forward, backward, and the memory they take

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one example's output (no batch axis) for an input of ``in_shape``; raises
        ``ShapeError`` when the layer cannot take that input. Identity unless overridden."""
        return tuple(in_shape)

    @property
    def fusable_as(self) -> str | None:
        """The kind a loss's ``fuses_with`` may name to compute from this layer's input (its own
        kind unless overridden: a softmax over channels is not the one cross-entropy fuses)."""
        return self.kind

    def param_shapes(self, in_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Internal shape of each parameter for an input of ``in_shape`` (none unless overridden);
        the spec build checks each written parameter against it (a 2-D map's parameter of shape
        (1, H, W) is written (H, W))."""
        return {}

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]):
        """``(y, cache)``: the output ``(B, *output_shape)`` of the input ``x`` ``(B, *in_shape)``,
        and whatever ``backward``, ``pattern`` and the explanation need. Every kind overrides it."""
        raise NotImplementedError

    def backward(self, dy: np.ndarray, cache, params: dict[str, np.ndarray]):
        """``(dx, param_grads)``: ∂E/∂x (shape of x) from ∂E/∂y (shape of y) and the forward's
        cache; ``param_grads`` maps each parameter name to ∂E/∂θ summed over the batch. Every kind
        overrides it."""
        raise NotImplementedError

    def memory(self, in_shape: tuple[int, ...]) -> tuple[int, int]:
        """Floats one example's forward and backward pass allocate here: (what is kept until the run
        ends, the largest temporary). Entry-wise: the output and the input's gradient are kept, and
        a derivative or two as large as the output come and go. Overridden where windows, copies or
        matrices take more."""
        size = math.prod(self.output_shape(in_shape))
        return size + math.prod(in_shape), 2 * size

    # --- explanation: the chain rule one step, for ``cnngrad explain``

    def explain_input(self, index: tuple[int, ...], x: np.ndarray, cache, dy: np.ndarray,
                      params: dict[str, np.ndarray]) -> Explanation:
        """∂E/∂x[index] as a sum of terms over this layer's outputs, with its formula and notes.

        ``index`` is an engine index into one example's input (no batch axis); ``x``, ``cache`` and
        ``dy`` (∂E/∂y) are the forward's and backward's arrays with a batch of 1, ``params`` this
        layer's. Every kind overrides it.
        """
        raise NotImplementedError(f"{self.kind} cannot explain its input's gradient")

    def explain_param(self, pname: str, index: tuple[int, ...], x: np.ndarray, cache, dy: np.ndarray,
                      params: dict[str, np.ndarray]) -> Explanation:
        """∂E/∂``pname``[index] as a sum of terms, as ``explain_input``; overridden by every kind
        that has parameters (never called on one that has none)."""
        raise NotImplementedError(f"{self.kind} has no parameter {pname}")

    # --- checker hooks: rounding size, kinks, work, and exact shortcuts

    def term_magnitude(self, x: np.ndarray, y: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        """Σ |terms| the forward adds up into each output entry, shape of ``y``: the size its rounding
        errors scale with (ε · this, even where the terms cancel). |y| for a layer that sums nothing;
        overridden by layers that sum (conv, fc, average pooling) or round nothing (0: relu, max)."""
        return np.abs(y)

    def forward_each(self, x: np.ndarray, params: dict[str, np.ndarray], pname: str,
                     values: np.ndarray) -> np.ndarray:
        """The output for each of ``values`` of parameter ``pname`` (the others as in ``params``),
        shape ``(len(values), B, ...)``: one forward each; conv and fc batch them."""
        return np.stack([self.forward(x, {**params, pname: value})[0] for value in values])

    def pattern(self, cache) -> np.ndarray | None:
        """Which smooth piece each input sits on, shape ``(B, ...)``; None for a smooth layer.

        Two evaluations whose patterns differ straddle a non-differentiable point (a kink).
        Overridden by the layers with kinks (relu, leaky relu, max and L2 pooling).
        """
        return None

    def operations(self, in_shape: tuple[int, ...]) -> int:
        """Roughly how many multiply-adds one example's forward pass costs here (for bounding a check);
        one per output entry unless overridden."""
        return int(np.prod(self.output_shape(in_shape)))

    def work_size(self, in_shape: tuple[int, ...]) -> int:
        """Roughly how many floats one example's forward pass holds here (for sizing batches):
        input and output twice over unless overridden."""
        return 2 * (int(np.prod(in_shape)) + int(np.prod(self.output_shape(in_shape))))

    def input_change(self, x: np.ndarray, params: dict[str, np.ndarray], entries: np.ndarray) -> np.ndarray:
        """∂y/∂x for each flat entry of the input ``x`` (batch axis of 1), shape
        ``(len(entries), *output_shape)``: exact, so a perturbed copy's output is y + s · this without
        a forward. Only for kinds with ``linear_in_input`` (conv)."""
        raise NotImplementedError(f"{self.kind} is not linear in its input")

    def output_change(self, x: np.ndarray, params: dict[str, np.ndarray], pname: str,
                      entries: np.ndarray) -> np.ndarray:
        """∂y/∂θ for each flat entry of parameter ``pname``, shape ``(len(entries), *output_shape)``:
        exact, so a perturbed copy's output is y + s · this without a forward. ``x`` is the layer's
        input with a batch axis of 1. Only for kinds with ``affine_in_params`` (conv, fc)."""
        raise NotImplementedError(f"{self.kind} is not affine in its parameters")

    def output_unit(self, x: np.ndarray, params: dict[str, np.ndarray], pname: str,
                    entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(units, factors)``: the one flat output unit each flat entry of ``pname`` moves, and by
        how much per unit step, so all entries of a unit share its perturbed runs. Only for kinds
        with ``param_moves_one_unit`` (fc)."""
        raise NotImplementedError(f"{self.kind}'s parameters do not each move one output unit")

    def channel_change(self, x: np.ndarray, params: dict[str, np.ndarray], pname: str,
                       entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(channels, change)``: the one output channel each flat entry of ``pname`` moves, and ∂y/∂θ
        in it, ``(len(entries), Ho, Wo)`` (``output_change`` of that channel alone, which is
        ``spread_channels`` of this), so channel-wise layers after it may run on that channel alone.
        ``x`` has a batch axis of 1. Only for kinds with ``param_moves_one_channel`` (conv)."""
        raise NotImplementedError(f"{self.kind}'s parameters do not each move one output channel")


def spread_channels(channels: np.ndarray, change: np.ndarray, depth: int) -> np.ndarray:
    """∂y/∂θ ``(len(channels), depth, Ho, Wo)`` of entries that each move one output channel, from
    that channel's change (``Layer.channel_change``): zero in every other channel."""
    full = np.zeros((len(channels), depth) + change.shape[1:])
    full[np.arange(len(channels)), channels] = change
    return full


def pair(value) -> tuple[int, int]:
    """An int or an ``[h, w]`` pair as a ``(h, w)`` tuple."""
    if np.ndim(value) == 0:
        return int(value), int(value)
    h, w = value
    return int(h), int(w)


def resolve_padding(padding, window: tuple[int, int], stride=(1, 1),
                    size: tuple[int, int] | None = None) -> tuple[tuple[int, int], tuple[int, int]]:
    """Padding as ``((top, bottom), (left, right))``.

    Accepts an int, ``[ph, pw]``, ``[[top, bottom], [left, right]]``, ``"valid"`` (none) or
    ``"same"``: ⌈H/s⌉ outputs per axis, as TensorFlow and ONNX (SAME_UPPER) pad, a total of
    max((⌈H/s⌉ − 1)·s + k − H, 0), the smaller half on top/left; at stride 1 that is k − 1 whatever
    H is (PyTorch's ``padding='same'``). ``window`` is the effective (dilated) window size k, and
    ``size`` the input's (H, W), needed for ``same`` at a stride above 1.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            return same_padding(window, stride, size)
        raise ValueError(f"unknown padding {padding!r}")
    if np.ndim(padding) == 0:
        p = int(padding)
        return (p, p), (p, p)
    first, second = padding
    if np.ndim(first) == 0:
        return (int(first), int(first)), (int(second), int(second))
    return (int(first[0]), int(first[1])), (int(second[0]), int(second[1]))


def same_padding(window, stride, size) -> tuple[tuple[int, int], tuple[int, int]]:
    """``same``'s ((top, bottom), (left, right)): per axis a total of max((⌈H/s⌉ − 1)·s + k − H, 0),
    k − 1 at stride 1 (where ``size`` may be None), the smaller half first."""
    if size is None and tuple(stride) != (1, 1):
        raise ValueError("padding 'same' at a stride above 1 needs the input's size")
    sides = []
    for axis, k in enumerate(window):
        step = stride[axis]
        total = k - 1 if step == 1 else max((-(-size[axis] // step) - 1) * step + k - size[axis], 0)
        sides.append((total // 2, total - total // 2))
    return sides[0], sides[1]


def pad_map(x: np.ndarray, padding, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of ``x`` by ``((top, bottom), (left, right))`` with ``value``."""
    (top, bottom), (left, right) = padding
    if top == bottom == left == right == 0:
        return x
    height, width = x.shape[-2:]
    padded = np.full(x.shape[:-2] + (height + top + bottom, width + left + right), value, dtype=x.dtype)
    padded[..., top:top + height, left:left + width] = x   # as np.pad, without its ~0.1 ms of set-up
    return padded


def crop_map(x: np.ndarray, padding) -> np.ndarray:
    """Undo ``pad_map``: explicit end indices, so a zero pad keeps everything."""
    (top, bottom), (left, right) = padding
    height, width = x.shape[-2:]
    return x[..., top:height - bottom, left:width - right]


SLICED_TAPS = 9      # window_max reads windows of up to this many taps as strided slices
NEGATIVE_ZERO = np.int64(-2**63)   # the bits of −0.0, read as an int64


def windows(x: np.ndarray, size, stride, dilation=(1, 1)) -> np.ndarray:
    """Read-only view ``(B, C, Ho, Wo, kh, kw)`` of every window of the map ``x`` ``(B, C, H, W)``:
    entry [b, c, i, j, m, n] is x[b, c, s·i + r·m, s·j + r·n] (s stride, r dilation). The one window
    layout of the engine (conv's columns and scatter_windows' input use it too)."""
    (kh, kw), (sh, sw), (dh, dw) = size, stride, dilation
    batch, channels, height, width = x.shape
    out_h = window_output_size(height, dh * (kh - 1) + 1, sh)
    out_w = window_output_size(width, dw * (kw - 1) + 1, sw)
    sb, sc, sy, sx = x.strides
    return np.lib.stride_tricks.as_strided(
        x, (batch, channels, out_h, out_w, kh, kw), (sb, sc, sh * sy, sw * sx, dh * sy, dw * sx), writeable=False)


def window_entries(win: np.ndarray) -> np.ndarray:
    """The windows ``(B, C, Ho, Wo, kh, kw)`` as ``(B, C, Ho, Wo, kh·kw)``, row-major within each
    window (a copy unless that is a view); windows already so shaped are returned as they are."""
    return win.reshape(win.shape[:4] + (-1,))


def window_max(win: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each window's maximum and the row-major index of its first maximum, from the windows ``win``
    ``(B, C, Ho, Wo, kh, kw)``: exactly what ``argmax`` over each copied window and the value there
    give (ties to the first, a NaN winning as the first NaN, a zero keeping its winner's sign).

    Windows of up to ``SLICED_TAPS`` taps are read tap by tap (the maximum, then the first tap equal
    to it): a few passes over the output instead of argmax along a short axis, about half the time
    for a 2×2 pool. Windows that do not overlap are first copied tap-major, so that each tap is one
    contiguous row (the copy moves each input once); overlapping ones are read as strided slices.
    Larger windows are copied and searched by ``argmax``."""
    kh, kw = win.shape[-2:]
    if kh * kw > SLICED_TAPS:
        flat = window_entries(win)
        first = flat.argmax(axis=-1)
        return np.take_along_axis(flat, first[..., None], axis=-1)[..., 0], first
    taps = _taps(win)
    y = taps[0].copy()
    for tap in taps[1:]:
        np.maximum(y, tap, out=y)
    missed = taps[0] != y           # first: how many taps come before the first equal to y
    first = missed.astype(np.intp)
    for tap in taps[1:-1]:
        missed &= tap != y
        first += missed
    _as_argmax(win, y, first)
    return y, first


def _taps(win: np.ndarray) -> list[np.ndarray]:
    """The windows' taps in row-major order, each ``(B, C, Ho, Wo)``: windows that do not overlap
    copied tap-major first (each tap one contiguous row), overlapping ones as strided slices."""
    kh, kw = win.shape[-2:]
    if win.strides[2] >= kh * win.strides[4] and win.strides[3] >= kw * win.strides[5]:   # apart
        return list(win.transpose(4, 5, 0, 1, 2, 3).reshape(kh * kw, *win.shape[:4]))
    return [win[..., m, n] for m in range(kh) for n in range(kw)]


def _as_argmax(win: np.ndarray, y: np.ndarray, first: np.ndarray) -> None:
    """Set ``y`` and ``first`` in place to argmax's answer where the taps' may differ: a window with
    a NaN (its first NaN wins), a zero maximum where some tap is −0.0 (the first zero, of either
    sign, wins; −0.0's bits are the least int64, so one reduction finds any)."""
    kh, kw = win.shape[-2:]
    odd = np.isnan(y)
    zero = y == 0
    if zero.any() and win.view(np.int64).min() == NEGATIVE_ZERO:
        odd |= zero
    if odd.any():
        entries = win[odd].reshape(-1, kh * kw)
        nan = np.isnan(entries)
        first[odd] = np.where(nan.any(axis=1), nan.argmax(axis=1), first[odd])
        y[odd] = entries[np.arange(len(entries)), first[odd]]


def scatter_windows(dwin: np.ndarray, padded_shape, stride, dilation=(1, 1)) -> np.ndarray:
    """Adjoint of ``windows``: add each window's entries back where they were read from.

    ``dwin`` is ``(B, C, Ho, Wo, kh, kw)`` (any strides). Windows that cannot overlap (stride at least
    the window, no dilation) are written through one strided view of the output; overlapping ones
    are summed by a single ``bincount`` over the flat position each entry was read from. Both add
    each entry's contributions in kernel-offset order (m, n), so the result is the same, bit for
    bit, as a loop over offsets adding one strided slice at a time — only far fewer numpy calls.
    """
    batch, channels, out_h, out_w, kh, kw = dwin.shape
    (sh, sw), (dh, dw) = stride, dilation
    out = np.zeros(padded_shape, dtype=np.float64)
    sb, sc, sy, sx = out.strides
    if dh == dw == 1 and sh >= kh and sw >= kw:
        tiles = np.lib.stride_tricks.as_strided(
            out, (batch, channels, out_h, out_w, kh, kw), (sb, sc, sh * sy, sw * sx, sy, sx))
        tiles += dwin
        return out
    # the flat index in ``out`` of every window entry, laid out (B, C, kh, kw, Ho, Wo)
    flat = np.arange(out.size).reshape(padded_shape)
    fb, fc, fy, fx = flat.strides
    index = np.lib.stride_tricks.as_strided(
        flat, (batch, channels, kh, kw, out_h, out_w),
        (fb, fc, dh * fy, dw * fx, sh * fy, sw * fx), writeable=False)
    values = dwin.transpose(0, 1, 4, 5, 2, 3)
    return np.bincount(index.ravel(), weights=values.ravel(), minlength=out.size).reshape(padded_shape)


def padded_size(in_shape: tuple[int, ...], padding) -> tuple[int, int]:
    """Entries of a map ``(C, H, W)`` once padded, and of the copy ``pad_map`` makes (0 for none)."""
    (top, bottom), (left, right) = padding
    channels, height, width = in_shape
    padded = channels * (height + top + bottom) * (width + left + right)
    return padded, 0 if top == bottom == left == right == 0 else padded


def scatter_memory(padded: int, window_entries: int, stride, size, dilation=(1, 1)) -> int:
    """Floats ``scatter_windows`` allocates besides its result (a padded map): none when the windows
    cannot overlap; else a zero map and the flat positions (padded entries each), and the position
    and value of every window entry."""
    (sh, sw), (kh, kw) = stride, size
    if tuple(dilation) == (1, 1) and sh >= kh and sw >= kw:
        return 0
    return 2 * padded + 2 * window_entries


def window_output_size(size: int, window: int, stride: int) -> int:
    """Number of whole windows along one axis (a remainder that fills no window is dropped)."""
    return (size - window) // stride + 1


def unread(size: int, before: int, taps: int, dilation: int, stride: int, count: int) -> np.ndarray:
    """The entries 0..size−1 along one axis of a map that no window reads: ``count`` windows,
    ``stride`` apart on the map padded by ``before`` in front, each reading ``taps`` entries
    ``dilation`` apart. Window i reads i·s + d·m = c + d·(q_i + m) with c = i·s mod d: for each
    residue c the windows cover intervals of q, summed as a difference array (no loop over windows)."""
    starts = np.arange(count) * stride
    residue, first = starts % dilation, starts // dilation
    width = int(first.max()) + taps + 1
    edges = np.zeros((dilation, width), dtype=np.int64)
    np.add.at(edges, (residue, first), 1)
    np.add.at(edges, (residue, first + taps), -1)
    covered = np.cumsum(edges, axis=1) > 0                # covered[c, q]: entry c + d·q is read
    residues, quotients = np.nonzero(covered)
    positions = residues + dilation * quotients - before
    read = np.zeros(size, dtype=bool)
    read[positions[(positions >= 0) & (positions < size)]] = True
    return np.flatnonzero(~read)

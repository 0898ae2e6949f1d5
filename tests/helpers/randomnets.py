"""Random valid cnngrad specs, for property tests of the checker (and of the CLI and engine).

``random_spec(rng)`` returns a spec as plain Python data (what ``yaml.safe_load`` of a spec file
gives), covering every layer kind and setting of docs/reference.md §1: conv with stride, padding (int, pair,
pairs, valid, same), dilation, both modes and every bias form (omitted, scalar, one per filter,
untied); relu, leaky_relu, sigmoid, tanh, softmax (over all, or over channels on a map of
several); max/avg/l2 pooling with stride, padding,
``ceil_mode``, ``count_include_pad`` (avg), ``dilation`` (max) and both ``ties``; dropout (a
written mask or a seed); flatten in C and F order; fc; every loss, including the fused softmax +
cross_entropy and sigmoid + binary_cross_entropy, their logits forms, class-index targets,
multiclass_svm (margins 0 to 10, class index or one-hot),
``loss: none`` and loss-only examples (no layers); 2-D and 3-D inputs, and 2-D, 3-D and 4-D
kernels; grouped and depthwise conv, ``padding: same`` at any stride (conv and pool),
conv_transpose (stride, padding, output_padding, dilation), layer_norm and group_norm;
branches: residual blocks (``add``) and Inception-style ones (``from:`` and ``concat``).
About a quarter of the specs hold a batch (``batch: N``, N of 2 or 3, each example's input and
target drawn alike); batch norm follows conv layers and (in a batch) fc layers; any loss may carry
``reduction: sum | mean``; and a fifth of the specs with parameters add an L2 ``regularization``
of some of them.

The settings and kinds the transposed conv and norms brought (groups, same at a stride,
conv_transpose, layer_norm, group_norm) are decided by a side stream (``_side``) that does not
advance the main one, so a seed that draws none of them still gives the network it gave before.

About a third of the specs use small integers for the input and kernels, so conv outputs are
exact integers: ReLU inputs exactly 0, tied maxima and all-zero L2 windows (kinks) happen often.

``to_model(spec)`` runs it through the real spec loader (YAML text → ``load_model``).
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import yaml

from cnngrad.spec import load_model

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "softmax")
LOSSES = ("squared_error", "mse", "cross_entropy", "binary_cross_entropy", "none", "multiclass_svm")
MAX_MAP_ENTRIES = 200        # keeps a check of one random network in the tens of milliseconds


def _hw(shape):
    return shape[-2], shape[-1]


def _values(rng, shape, integer: bool, scale: float = 1.0):
    if integer:
        return rng.integers(-2, 3, size=shape).astype(float)
    return np.round(scale * rng.standard_normal(shape), 6)


def _listed(array):
    array = np.asarray(array, dtype=float)
    return float(array) if array.ndim == 0 else array.tolist()


def _pair(rng, low, high):
    """An int or an [h, w] pair (both spec forms), and the (h, w) it means."""
    if rng.random() < 0.6:
        value = int(rng.integers(low, high + 1))
        return value, (value, value)
    value = [int(v) for v in rng.integers(low, high + 1, size=2)]
    return value, tuple(value)


def _padding(rng, limit, allow_same: bool):
    """A padding in one of its forms, at most ``limit`` (h, w) per side, and its (top, bottom, left, right)."""
    form = rng.integers(5)
    if form == 0 and allow_same:
        return "same", None
    if form == 1:
        return "valid", (0, 0, 0, 0)
    if form == 2:
        p = int(rng.integers(0, min(limit) + 1))
        return p, (p, p, p, p)
    if form == 3:
        ph, pw = int(rng.integers(0, limit[0] + 1)), int(rng.integers(0, limit[1] + 1))
        return [ph, pw], (ph, ph, pw, pw)
    t, b = (int(v) for v in rng.integers(0, limit[0] + 1, size=2))
    l_, r = (int(v) for v in rng.integers(0, limit[1] + 1, size=2))
    return [[t, b], [l_, r]], (t, b, l_, r)


def _side(rng):
    """A generator seeded from ``rng``'s current state, leaving ``rng`` where it was."""
    return np.random.default_rng(rng.bit_generator.state["state"]["state"])


def _same(hw, span, stride):
    """``padding: same``'s (top, bottom, left, right): TensorFlow's rule, ⌈H/s⌉ outputs."""
    sides = []
    for size, k, s in zip(hw, span, stride):
        total = max((-(-size // s) - 1) * s + k - size, 0)
        sides += [total // 2, total - total // 2]
    return tuple(sides)


def _out_hw(hw, span, stride, pads):
    t, b, l_, r = pads
    padded = (hw[0] + t + b, hw[1] + l_ + r)
    if span[0] > padded[0] or span[1] > padded[1]:
        return None
    return tuple((padded[i] - span[i]) // stride[i] + 1 for i in range(2))


def _conv(rng, shape, integer):
    """A conv layer fitting a map of user shape ``shape``, or None; and its output shape."""
    channels = shape[0] if len(shape) == 3 else 1
    k, (kh, kw) = _pair(rng, 1, 3)
    stride_v, stride = _pair(rng, 1, 2) if rng.random() < 0.4 else (None, (1, 1))
    dil_v, dil = _pair(rng, 1, 2) if rng.random() < 0.3 else (None, (1, 1))
    span = (dil[0] * (kh - 1) + 1, dil[1] * (kw - 1) + 1)
    side = _side(rng)
    if side.random() < 0.15:
        pad_v = "same"
    else:
        pad_v, pads = _padding(rng, (kh, kw), stride == (1, 1)) if rng.random() < 0.6 else (None, (0,) * 4)
    if pad_v == "same":
        pads = _same(_hw(shape), span, stride)
    out_hw = _out_hw(_hw(shape), span, stride, pads)
    if out_hw is None:
        return None, None
    # kernel rank: 2-D only for a 2-D input; 3-D is one filter over C channels; 4-D a bank
    ranks = [3, 4] + ([2] if len(shape) == 2 else [])
    rank = int(rng.choice(ranks))
    filters = int(rng.integers(1, 4)) if rank == 4 else 1
    groups = 1
    if rank == 4 and channels > 1 and side.random() < 0.5:      # grouped; depthwise when groups = channels
        groups = int(side.choice([g for g in range(2, channels + 1) if channels % g == 0]))
        filters *= groups
    bank = (filters, channels // groups, kh, kw)
    kernel_shape = {2: (kh, kw), 3: (channels, kh, kw), 4: bank}[rank]
    out = (filters,) + out_hw if rank == 4 else out_hw
    if np.prod(out) > MAX_MAP_ENTRIES:
        return None, None
    fan = channels // groups * kh * kw
    settings = {"kernel": _listed(_values(rng, kernel_shape, integer, 1.5 / np.sqrt(fan)))}
    if groups > 1:
        settings["groups"] = groups
    form = rng.integers(4)
    if form == 1:
        settings["bias"] = float(_values(rng, (), integer, 0.5))
    elif form == 2 and rank == 4:
        settings["bias"] = _listed(_values(rng, (filters,), integer, 0.5))
    elif form == 3:
        settings["bias"] = _listed(_values(rng, out, integer, 0.5))
    for key, value in (("stride", stride_v), ("dilation", dil_v), ("padding", pad_v)):
        if value is not None:
            settings[key] = value
    if rng.random() < 0.4:
        settings["mode"] = str(rng.choice(["convolution", "cross_correlation"]))
    return {"conv": settings}, out


def _pooled(n, before, after, span, stride, ceil):
    """Windows along one axis, as PyTorch counts them (ceil: a last window must start inside the
    input or its front padding)."""
    padded = n + before + after
    if not ceil:
        return (padded - span) // stride + 1
    count = -(-(padded - span) // stride) + 1
    return count - 1 if (count - 1) * stride >= n + before else count


def _pool(rng, shape):
    kind = str(rng.choice(["max", "avg", "l2"]))
    size_v, size = _pair(rng, 1, 3)
    if size == (1, 1):
        size_v, size = 2, (2, 2)
    stride_v, stride = _pair(rng, 1, 3) if rng.random() < 0.4 else (None, size)
    dil_v, dil = _pair(rng, 1, 2) if kind == "max" and rng.random() < 0.3 else (None, (1, 1))
    span = (dil[0] * (size[0] - 1) + 1, dil[1] * (size[1] - 1) + 1)
    limit = (size[0] // 2, size[1] // 2)     # PyTorch's bound; max pooling requires it
    if _side(rng).random() < 0.15:
        pad_v = "same"
    else:
        pad_v, pads = _padding(rng, limit, False) if rng.random() < 0.4 else (None, (0,) * 4)
    ceil = rng.random() < 0.3
    hw = _hw(shape)
    if pad_v == "same":
        pads = _same(hw, span, stride)
        if kind == "max" and (max(pads[:2]) > limit[0] or max(pads[2:]) > limit[1]):
            return None, None               # a dilated window's same padding past half the window
    if _out_hw(hw, span, stride, pads) is None:
        return None, None
    sides = ((pads[0], pads[1]), (pads[2], pads[3]))
    out_hw = tuple(_pooled(hw[a], *sides[a], span[a], stride[a], ceil) for a in range(2))
    for a in range(2):     # every window must read an input entry (not only padding)
        taps = np.arange(out_hw[a])[:, None] * stride[a] + np.arange(size[a])[None, :] * dil[a] - sides[a][0]
        if not ((taps >= 0) & (taps < hw[a])).any(axis=1).all():
            return None, None
    settings = {"type": kind, "size": size_v}
    if stride_v is not None:
        settings["stride"] = stride_v
    if pad_v is not None:
        settings["padding"] = pad_v
    if dil_v is not None:
        settings["dilation"] = dil_v
    if ceil:
        settings["ceil_mode"] = True
    if kind == "avg" and rng.random() < 0.4:
        settings["count_include_pad"] = bool(rng.random() < 0.5)
    if kind == "max" and rng.random() < 0.7:
        settings["ties"] = str(rng.choice(["first", "split"]))
    return {"pool": settings}, shape[:-2] + out_hw


def _activation(rng, choices=ACTIVATIONS):
    kind = str(rng.choice(choices))
    if kind == "leaky_relu" and rng.random() < 0.7:
        return {"leaky_relu": {"slope": float(rng.choice([0.01, 0.1, 0.2, -0.5]))}}
    return kind


def _fc(rng, inputs, integer):
    outputs = int(rng.integers(1, 6))
    settings = {"weights": _listed(_values(rng, (outputs, inputs), integer, 1.5 / np.sqrt(inputs)))}
    form = rng.integers(3)
    if form == 1:
        settings["bias"] = float(_values(rng, (), integer, 0.5))
    elif form == 2:
        settings["bias"] = _listed(_values(rng, (outputs,), integer, 0.5))
    return {"fc": settings}, (outputs,)


def _conv_transpose(rng, shape, integer):
    """A conv_transpose fitting a map of user shape ``shape`` (kernel (C_in, C_out, kh, kw)), or None."""
    channels = shape[0] if len(shape) == 3 else 1
    outputs, kh, kw = (int(v) for v in rng.integers(1, 4, size=3))
    stride_v, stride = _pair(rng, 1, 2)
    dil_v, dil = _pair(rng, 1, 2) if rng.random() < 0.3 else (None, (1, 1))
    pad_v, pads = _pair(rng, 0, 1) if rng.random() < 0.5 else (None, (0, 0))
    extra = [int(rng.integers(0, max(stride[a], dil[a]))) for a in range(2)]
    out = tuple((size - 1) * stride[a] - 2 * pads[a] + dil[a] * ((kh, kw)[a] - 1) + extra[a] + 1
                for a, size in enumerate(_hw(shape)))
    if min(out) < 1 or outputs * np.prod(out) > MAX_MAP_ENTRIES:
        return None, None
    settings = {"kernel": _listed(_values(rng, (channels, outputs, kh, kw), integer, 1.0 / np.sqrt(channels)))}
    if rng.random() < 0.5:
        settings["bias"] = _listed(_values(rng, (outputs,), integer, 0.5))
    for key, value in (("stride", stride_v), ("dilation", dil_v), ("padding", pad_v)):
        if value is not None:
            settings[key] = value
    if any(extra):
        settings["output_padding"] = extra
    # a 2-D input's single output channel stays 2-D (the rank the user wrote)
    return {"conv_transpose": settings}, out if len(shape) == 2 and outputs == 1 else (outputs,) + out


def _norm(rng, shape, integer):
    """A layer_norm (any input) or, for a map, a group_norm; γ and β written, scalar or omitted.
    Sets of fewer than 3 entries are not drawn: one standardises to 0, two to ±1 whatever the
    input (a gradient of the size of eps, all cancellation)."""
    channels = shape[0] if len(shape) == 3 else 1
    size = int(np.prod(shape))
    divisors = [g for g in range(1, channels + 1) if channels % g == 0 and size // g >= 3]
    if len(shape) == 1 or rng.random() < 0.5 or not divisors:
        if size < 3:
            return None, None
        kind, settings, param_shape = "layer_norm", {}, shape
    else:
        kind, param_shape = "group_norm", (channels,)
        settings = {"groups": int(rng.choice(divisors))}
    for name, centre in (("gamma", 1.0), ("beta", 0.0)):
        form = rng.integers(3)
        if form == 1:
            settings[name] = float(centre + _values(rng, (), integer, 0.5))
        elif form == 2:
            settings[name] = _listed(centre + _values(rng, param_shape, integer, 0.5))
    if rng.random() < 0.3:
        settings["eps"] = float(rng.choice([1e-3, 0.1]))
    return {kind: settings}, shape


def _dropout(rng, shape):
    """Dropout over ``shape`` with a written 0/1 mask or a seed."""
    p = float(rng.choice([0.0, 0.2, 0.5, 0.75]))
    if rng.random() < 0.5:
        return {"dropout": {"p": p, "seed": int(rng.integers(0, 1000))}}
    return {"dropout": {"p": p, "mask": _listed((rng.random(shape) >= p).astype(float))}}


def _batch_norm(rng, features: int):
    """A batch norm of ``features`` features or channels, with γ, β and eps drawn or left out."""
    settings = {}
    if rng.random() < 0.7:
        settings["gamma"] = _listed(np.round(rng.uniform(0.5, 2.0, features), 6))
    if rng.random() < 0.7:
        settings["beta"] = _listed(np.round(rng.standard_normal(features), 6))
    if rng.random() < 0.3:
        settings["eps"] = float(rng.choice([1e-3, 0.1]))
    return {"batch_norm": settings} if settings else "batch_norm"


def _kind(entry):
    return entry if isinstance(entry, str) else next(iter(k for k in entry if k != "name"))


def _name_last(layers, name):
    """The name of the last of ``layers``, naming it ``name`` (a sibling ``name:``) if it has none."""
    layers[-1] = entry = {layers[-1]: None} if isinstance(layers[-1], str) else layers[-1]
    return entry.setdefault("name", name)


def _same_conv(rng, shape, filters, integer, source=None):
    """A stride-1 conv with ``padding: same`` (the map's H×W kept) of ``filters`` filters (a 2-D
    kernel for a 2-D map when ``filters`` is 0: its output stays 2-D), reading ``source``."""
    channels = shape[0] if len(shape) == 3 else 1
    _, (kh, kw) = _pair(rng, 1, 3)
    kernel_shape = (kh, kw) if filters == 0 else (filters, channels, kh, kw)
    settings = {"kernel": _listed(_values(rng, kernel_shape, integer, 1.5 / np.sqrt(channels * kh * kw))),
                "padding": "same"}
    if rng.random() < 0.5:
        settings["bias"] = float(_values(rng, (), integer, 0.5))
    if source is not None:
        settings["from"] = source
    return {"conv": settings}


def _branch(rng, start, shape, integer, tag):
    """A block that reads the value ``start`` of user shape ``shape`` and gives that shape again,
    so it can go anywhere in the map part: ResNet-style (conv, activation, maybe a second conv,
    ``add`` with ``start``, maybe an activation) or Inception-style (two branches of ``start``
    by ``from:``, each a same-size conv, activation or max pool, ``concat``, then a 1×1 conv back
    to the channels ``start`` had). The entries, or None when a map would be too large."""
    channels = shape[0] if len(shape) == 3 else 1
    if rng.random() < 0.5:                              # residual: F(x) + x
        width = 0 if len(shape) == 2 and rng.random() < 0.5 else channels   # 0: 2-D kernels
        body = [_same_conv(rng, shape, width, integer), _activation(rng, ("relu", "leaky_relu", "tanh", "sigmoid"))]
        if rng.random() < 0.6:
            body.append(_same_conv(rng, shape, width, integer))
        last = _name_last(body, f"{tag}f")
        # add keeps its first operand's rank: a 2-D map through 4-D kernels is (1, H, W), so x first
        swap = rng.random() < 0.5 and (width == 0 or len(shape) == 3)
        body.append({"add": {"inputs": [last, start] if swap else [start, last]}})
        if rng.random() < 0.5:
            body.append(_activation(rng, ("relu", "tanh")))
        return body
    branches, total = [], 0
    for k in range(2):
        roll, filters = rng.random(), int(rng.integers(1, 3))
        if roll < 0.6:
            entry = _same_conv(rng, shape, filters, integer, start)
        elif roll < 0.8:
            entry, filters = {_activation(rng, ("relu", "tanh", "sigmoid")): {"from": start}}, channels
        else:
            entry, filters = {"pool": {"from": start, "type": "max", "size": 3, "stride": 1, "padding": 1}}, channels
        entry["name"] = f"{tag}b{k}"
        branches.append(entry)
        total += filters
    if total * np.prod(_hw(shape)) > MAX_MAP_ENTRIES:
        return None
    branches.append({"concat": {"inputs": [f"{tag}b0", f"{tag}b1"]}})
    projection = (channels, total, 1, 1) if len(shape) == 3 else (total, 1, 1)   # 3-D: one filter, a 2-D map
    branches.append({"conv": {"kernel": _listed(_values(rng, projection, integer, 1.0 / np.sqrt(total)))}})
    return branches


def _with_branches(rng, layers, maps, integer) -> None:
    """Insert residual and Inception-style blocks (``_branch``) at some of the places ``maps``
    lists (index into ``layers``, the map's user shape there). Every block gives back the shape
    it reads, so the rest of the spec is unchanged; ``rng`` is a child of the spec's generator
    (``Generator.spawn``), drawn after everything else, so networks without branches are drawn
    exactly as before branches existed."""
    for place, (index, shape) in reversed(list(enumerate(maps))):
        if rng.random() >= 0.12 or index == len(layers):   # not after a final softmax the loss reads
            continue
        start = "input"
        if index:
            head = layers[:index]
            start = _name_last(head, f"k{place}in")
            layers[index - 1] = head[-1]
        block = _branch(rng, start, shape, integer, f"k{place}")
        if block is not None:
            layers[index:index] = block


def random_spec(rng: np.random.Generator) -> dict:
    """One random valid spec (plain data, ready for ``yaml.safe_dump``)."""
    integer = rng.random() < 0.35
    if rng.random() < 0.5:
        shape = tuple(int(v) for v in rng.integers(3, 8, size=2))
    else:
        shape = (int(rng.integers(1, 4)),) + tuple(int(v) for v in rng.integers(3, 7, size=2))
    spec = {"name": "random", "input": _listed(_values(rng, shape, integer))}
    batch = int(rng.integers(2, 4)) if rng.random() < 0.25 else None   # a batch of N examples
    layers = []
    branch_rng = rng.spawn(1)[0]                        # branches draw from their own stream
    maps = [(0, shape)]                                 # where a block may go, and the map there
    for _ in range(int(rng.integers(0, 4))):          # the map part
        roll, side = rng.random(), _side(rng).random()
        if side < 0.12:
            entry, out = _conv_transpose(rng, shape, integer)
        elif side < 0.24:
            entry, out = _norm(rng, shape, integer)
        elif roll < 0.45:
            entry, out = _conv(rng, shape, integer)
        elif roll < 0.7:
            entry, out = _pool(rng, shape)
        elif roll < 0.76:
            entry, out = _dropout(rng, shape), shape
        elif roll < 0.82:   # per channel over N, H, W (a 1×1 map needs N ≥ 2)
            entry, out = _batch_norm(rng, shape[0] if len(shape) == 3 else 1), shape
            if batch is None and np.prod(shape[-2:]) < 2:
                entry = None
        else:
            entry, out = _activation(rng), shape
            if entry == "softmax" and len(shape) == 3 and shape[0] > 1 and rng.random() < 0.5:
                entry = {"softmax": {"axis": "channels"}}      # one distribution per pixel
        if entry is not None:
            layers.append(entry)
            shape = out
            maps.append((len(layers), shape))
    if rng.random() < 0.6:                             # the vector part
        order = rng.random()
        layers.append({"flatten": {"order": "F"}} if order < 0.3 else
                      ({"flatten": {"order": "C"}} if order < 0.5 else "flatten"))
        shape = (int(np.prod(shape)),)
        for _ in range(int(rng.integers(0, 3))):
            entry, shape = _fc(rng, shape[0], integer)
            layers.append(entry)
            if batch is not None and rng.random() < 0.3:   # per feature over the N examples
                layers.append(_batch_norm(rng, shape[0]))
            if _side(rng).random() < 0.15 and shape[0] >= 3:
                layers.append(_norm(rng, shape, integer)[0])
            if rng.random() < 0.6:
                layers.append(_activation(rng))
            if rng.random() < 0.15:
                layers.append(_dropout(rng, shape))
    loss = str(rng.choice(LOSSES))
    logits = loss in ("cross_entropy", "binary_cross_entropy") and rng.random() < 0.4
    last = _kind(layers[-1]) if layers else None
    if loss == "cross_entropy" and not logits and last != "softmax":
        layers.append("softmax")                        # a distribution, fused with the loss
    if loss == "binary_cross_entropy" and not logits and last != "sigmoid":
        layers.append("sigmoid")                        # probabilities, fused with the loss
    if not layers and rng.random() < 0.5:
        layers.append(_activation(rng))                 # else a loss-only example: input is output
    _with_branches(branch_rng, layers, maps, integer)
    if loss == "multiclass_svm" and len(shape) != 1:
        layers.append("flatten")                        # class scores are a vector
        shape = (int(np.prod(shape)),)
    spec["layers"] = layers
    settings = {"from": "logits"} if logits else {}
    if loss == "multiclass_svm" and rng.random() < 0.5:
        settings["margin"] = float(rng.choice([1.0, 0.5, 2.0, 0.0, 10.0]))
    if rng.random() < 0.3 and loss != "none":   # upstream_grad is ∂E/∂output itself
        settings["reduction"] = str(rng.choice(["sum", "mean"]))
    spec["loss"] = {loss: settings} if settings else loss
    key = "upstream_grad" if loss == "none" else "target"
    class_index = (loss == "cross_entropy" and len(shape) == 1 and rng.random() < 0.4) or \
        (loss == "multiclass_svm" and rng.random() < 0.7)
    if batch is not None:                              # the N examples drawn alike
        first = np.asarray(spec["input"], dtype=float)
        more = [_values(rng, first.shape, integer) for _ in range(batch - 1)]
        spec = {"name": spec["name"], "batch": batch, "input": _listed(np.stack([first, *more])), **{
            k: v for k, v in spec.items() if k not in ("name", "input")}}
        spec[key] = [_target(rng, loss, shape, integer, class_index) for _ in range(batch)]
    else:
        spec[key] = _target(rng, loss, shape, integer, class_index)
    params = _param_names(layers)
    if params and rng.random() < 0.2 and loss != "none":   # a penalty adds to a loss
        chosen = rng.choice(params, size=int(rng.integers(1, len(params) + 1)), replace=False)
        spec["regularization"] = {"l2": float(rng.choice([0.0005, 0.05, 0.5, 2.0])),
                                  "params": [str(name) for name in chosen]}
    return spec


def _param_names(layers) -> list[str]:
    """The parameter names the loader gives ``layers``: a layer's own ``name``, else its kind
    counted among the layers of that kind (conv1.kernel, fc2.bias)."""
    counts, names = {}, []
    for entry in layers:
        kind = _kind(entry)
        counts[kind] = counts.get(kind, 0) + 1
        own = {"conv": ("kernel", "bias"), "conv_transpose": ("kernel", "bias"), "fc": ("weights", "bias"),
               "batch_norm": ("gamma", "beta"), "layer_norm": ("gamma", "beta"), "group_norm": ("gamma", "beta")
               }.get(kind, ())
        name = entry.get("name") or (entry[kind] or {}).get("name") if isinstance(entry, dict) else None
        names += [f"{name or kind + str(counts[kind])}.{p}" for p in own]
    return names


def _target(rng, loss: str, shape, integer: bool, class_index: bool):
    """One example's target (or upstream gradient) for ``loss`` and an output of ``shape``."""
    if loss in ("squared_error", "mse", "none"):
        return _listed(_values(rng, shape, integer))
    if loss == "multiclass_svm":
        label = int(rng.integers(shape[0]))
        return label if class_index else _listed(np.eye(shape[0])[label])
    if loss == "cross_entropy":
        if class_index:
            return int(rng.integers(shape[0]))
        if rng.random() < 0.5:
            return _listed(np.round(rng.dirichlet(np.ones(int(np.prod(shape)))), 6).reshape(shape))
        return _listed(rng.integers(0, 2, size=shape).astype(float))
    if rng.random() < 0.5:
        return _listed(rng.integers(0, 2, size=shape).astype(float))
    return _listed(np.round(rng.random(shape), 6))


def to_yaml(spec: dict) -> str:
    return yaml.safe_dump(spec, default_flow_style=None, sort_keys=False, width=1 << 16)


def to_model(spec: dict):
    """Build ``spec`` through the real loader, from a temporary YAML file."""
    handle, path = tempfile.mkstemp(suffix=".yaml", prefix="cnngrad-random-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(to_yaml(spec))
        return load_model(path)
    finally:
        os.unlink(path)


def random_models(seed: int, count: int):
    """``count`` (spec, model) pairs from one seed, reproducibly."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        spec = random_spec(rng)
        yield spec, to_model(spec)

"""A cnngrad ``Model`` rebuilt in PyTorch, for cross-checking whole networks against autograd.

Import only after ``pytest.importorskip("torch")``. Each layer is translated from its
hyperparameters (not from the engine's internals) into torch's own functions, by the per-layer
references below (each checked on its own in tests/unit/test_layers_torch.py): ``torch_conv`` (padding
handed to torch in the user's ((top, bottom), (left, right)) form, the kernel flipped for
``convolution``), ``torch_pool`` (max pads with −∞, avg counts padding; ``explicit_sides`` spells
out its pad widths), ``torch_softmax_all`` (one distribution per example), and ``rel_err``.
Two conventions torch has no pooling function for are written from their definitions: max
pooling with ``ties: split`` (each tied maximum gets an equal share) and L2 pooling as
``torch.linalg.vector_norm`` over each window (whose gradient at a zero window is 0, the engine's
convention; ``lp_pool2d`` would give NaN there). Pools with ``ceil_mode``, ``dilation`` or
``count_include_pad: false`` (possibly with asymmetric padding, which torch's pools cannot take)
run torch's pools on the explicitly padded map, cut to the size PyTorch's rule gives.
"""
from __future__ import annotations

import numpy as np
import torch

F = torch.nn.functional


def rel_err(a, b) -> float:
    """‖a − b‖ / max(‖a‖, ‖b‖, 1e-12): one number per array, robust to entries near zero."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    scale = max(np.linalg.norm(a), np.linalg.norm(b), 1e-12)
    return float(np.linalg.norm(a - b) / scale)


def torch_conv(cfg):
    """conv2d as torch does it, padding handed over in the user's form (asymmetric via F.pad), and
    ``groups`` (default 1) as ``F.conv2d``'s."""
    def run(x, p):
        kernel = p["kernel"]
        if cfg["mode"] == "convolution":  # the textbook convolution: kernel rotated 180°
            kernel = torch.flip(kernel, dims=(-2, -1))
        padding = cfg["padding"]
        if isinstance(padding, list) and isinstance(padding[0], list):
            (top, bottom), (left, right) = padding
            x = F.pad(x, (left, right, top, bottom))
            padding = 0
        elif isinstance(padding, list):
            padding = tuple(padding)
        y = F.conv2d(x, kernel, stride=tuple(cfg["stride"]), padding=padding,
                     dilation=tuple(cfg["dilation"]), groups=cfg.get("groups", 1))
        bias = p["bias"]
        return y + (bias if cfg["untied"] else bias[:, None, None])  # untied: b_ij per output entry
    return run


def explicit_sides(padding, size):
    """The four pad widths ((top, bottom), (left, right)) written out independently of the engine."""
    if padding == "same":
        (kh, kw) = size
        return ((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2)
    if isinstance(padding, int):
        return (padding, padding), (padding, padding)
    if isinstance(padding[0], int):
        return (padding[0], padding[0]), (padding[1], padding[1])
    return tuple(padding[0]), tuple(padding[1])


def torch_pool(cfg):
    """torch's pools: symmetric padding through the pool's own argument, the rest through F.pad."""
    size, stride, kind = tuple(cfg["size"]), tuple(cfg["stride"]), cfg["type"]
    (top, bottom), (left, right) = explicit_sides(cfg["padding"], size)
    symmetric = top == bottom and left == right

    def run(x, p):
        pad = (top, left) if symmetric else (0, 0)
        if not symmetric:
            fill = float("-inf") if kind == "max" else 0.0
            x = F.pad(x, (left, right, top, bottom), value=fill)
        if kind == "max":
            return F.max_pool2d(x, size, stride, padding=pad)
        if kind == "avg":
            return F.avg_pool2d(x, size, stride, padding=pad, count_include_pad=True)
        if symmetric:
            x = F.pad(x, (left, right, top, bottom))
        return F.lp_pool2d(x, 2, size, stride)  # (Σ x²)^(1/2) over each window
    return run


def torch_softmax_all(x, p):
    """Softmax over *all* entries of each example (a map is one distribution, not one per channel)."""
    return torch.softmax(x.reshape(x.shape[0], -1), dim=1).reshape(x.shape)


def pooled_size(n, before, after, span, stride, ceil):
    """Windows along one axis, by PyTorch's rule (docs of nn.MaxPool2d / AvgPool2d): floor, or
    with ``ceil`` rounded up less a last window starting past the input and its front padding."""
    padded = n + before + after
    if not ceil:
        return (padded - span) // stride + 1
    count = -(-(padded - span) // stride) + 1
    return count - 1 if (count - 1) * stride >= n + before else count


def _pool_sides(layer, height, width):
    """The padding written out with ``ceil_mode``'s overhang added at the bottom/right, and the
    output size: every window then lies inside the padded map."""
    sides, out = [], []
    for n, (before, after), k, r, s in zip((height, width), layer.padding, layer.size, layer.dilation,
                                           layer.stride):
        span = r * (k - 1) + 1
        count = pooled_size(n, before, after, span, s, layer.ceil_mode)
        sides.append((before, after + max(0, (count - 1) * s + span - (n + before + after))))
        out.append(count)
    return sides, out


def _pad(x, sides, fill):
    (top, bottom), (left, right) = sides
    return F.pad(x, (left, right, top, bottom), value=fill)


def _windows(x, layer, fill):
    """(B, C, Ho, Wo, kh·kw) windows of the padded map (overhang included), by F.unfold."""
    sides, (out_h, out_w) = _pool_sides(layer, *x.shape[2:])
    x = _pad(x, sides, fill)
    batch, channels, height, width = x.shape
    cols = F.unfold(x.reshape(batch * channels, 1, height, width), tuple(layer.size),
                    dilation=tuple(layer.dilation), stride=tuple(layer.stride))
    (kh, kw), (dh, dw), (sh, sw) = layer.size, layer.dilation, layer.stride
    rows, columns = (height - dh * (kh - 1) - 1) // sh + 1, (width - dw * (kw - 1) - 1) // sw + 1
    win = cols.reshape(batch, channels, -1, rows, columns).permute(0, 1, 3, 4, 2)
    return win[:, :, :out_h, :out_w]


def _pool_with_options(layer):
    """max and avg pooling with ceil_mode, dilation or count_include_pad: torch's own pools on the
    explicitly padded map, cut to the output size PyTorch's rule gives; an average as the window
    sums (divisor_override=1) over the entries counted (a mask pooled the same way)."""
    def run(x, p):
        sides, (out_h, out_w) = _pool_sides(layer, *x.shape[2:])
        size, stride = tuple(layer.size), tuple(layer.stride)
        if layer.type == "max":
            y = F.max_pool2d(_pad(x, sides, float("-inf")), size, stride, dilation=tuple(layer.dilation))
            return y[:, :, :out_h, :out_w]
        ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype)
        overhang = ((0, sides[0][1] - layer.padding[0][1]), (0, sides[1][1] - layer.padding[1][1]))
        counted = _pad(_pad(ones, layer.padding, 1.0), overhang, 0.0) if layer.count_include_pad \
            else _pad(ones, sides, 0.0)
        sums = F.avg_pool2d(_pad(x, sides, 0.0), size, stride, divisor_override=1)
        counts = F.avg_pool2d(counted, size, stride, divisor_override=1)
        return (sums / counts)[:, :, :out_h, :out_w]
    return run


def _split_max(layer):
    def run(x, p):
        win = _windows(x, layer, float("-inf"))
        top = win.max(dim=-1, keepdim=True).values
        share = (win == top).to(x.dtype)
        share = (share / share.sum(dim=-1, keepdim=True)).detach()     # the routing is constant
        return (torch.where(share > 0, win, torch.zeros_like(win)) * share).sum(dim=-1)
    return run


def _l2(layer):
    return lambda x, p: torch.linalg.vector_norm(_windows(x, layer, 0.0), dim=-1)


def torch_layer(layer):
    """``f(x, params)`` for one engine layer, on tensors in the engine's layout (B, C, H, W) / (B, N)."""
    kind = layer.kind
    if kind == "conv":
        cfg = dict(mode=layer.mode, padding=[list(layer.padding[0]), list(layer.padding[1])],
                   stride=list(layer.stride), dilation=list(layer.dilation), untied=layer.untied_bias,
                   groups=layer.groups)
        return torch_conv(cfg)
    if kind == "pool":
        if layer.type == "l2":
            return _l2(layer)
        if layer.type == "max" and layer.ties == "split":
            return _split_max(layer)
        if layer.ceil_mode or layer.dilation != (1, 1) or not layer.count_include_pad:
            return _pool_with_options(layer)
        cfg = dict(type=layer.type, size=list(layer.size), stride=list(layer.stride),
                   padding=[list(layer.padding[0]), list(layer.padding[1])])
        return torch_pool(cfg)
    if kind == "conv_transpose":
        return lambda x, p: F.conv_transpose2d(x, p["kernel"], p["bias"], stride=layer.stride, padding=layer.padding,
                                               output_padding=layer.output_padding, dilation=layer.dilation)
    if kind == "layer_norm":
        return lambda x, p: F.layer_norm(x, x.shape[1:], p["gamma"], p["beta"], layer.eps)
    if kind == "group_norm":
        return lambda x, p: F.group_norm(x, layer.groups, p["gamma"], p["beta"], layer.eps)
    if kind == "fc":
        return lambda x, p: F.linear(x, p["weights"], p["bias"])
    if kind == "flatten":
        if layer.order == "F":      # column-major over (C, H, W): the first index varies fastest
            return lambda x, p: x.permute(0, *range(x.dim() - 1, 0, -1)).reshape(x.shape[0], -1)
        return lambda x, p: x.reshape(x.shape[0], -1)
    if kind == "global_avg_pool":
        return lambda x, p: F.adaptive_avg_pool2d(x, 1).flatten(1)
    if kind == "dropout":          # the same mask torch would draw, applied as F.dropout applies it
        mask = torch.from_numpy(layer.mask)
        return lambda x, p: x * mask / (1 - layer.p)
    if kind == "relu":
        return lambda x, p: F.relu(x)
    if kind == "leaky_relu":
        return lambda x, p: F.leaky_relu(x, negative_slope=layer.slope)
    if kind == "sigmoid":
        return lambda x, p: torch.sigmoid(x)
    if kind == "tanh":
        return lambda x, p: torch.tanh(x)
    if kind == "softmax":
        return torch_softmax_all if layer.axis == "all" else (lambda x, p: F.softmax(x, dim=1))
    if kind == "batch_norm":   # training mode: the batch's statistics, over N (and H, W)
        return lambda x, p: _batch_norm(x, p["gamma"], p["beta"], layer.eps)
    raise AssertionError(f"no torch equivalent for layer kind {kind!r}")


def torch_join(kind, operands):
    """add or concat of several tensors (engine layout) by torch; autograd sums the gradients of
    a tensor used twice."""
    if kind == "add":
        return sum(operands[1:], operands[0])
    if kind == "concat":
        return torch.cat(operands, dim=1)
    raise AssertionError(f"no torch equivalent for joining layer kind {kind!r}")


def _batch_norm(x, gamma, beta, eps):
    """Training-mode batch norm written out in torch ops (autograd differentiates it): per feature
    of a vector, per channel over N, H, W of a map. Not F.batch_norm: fed a conv's (1, C, H, 1)
    output inside a graph (torch 2.13, CPU), its input gradient disagreed with this form and with
    finite differences, though on a fresh tensor of that shape it agrees; tests/unit/test_batch_norm.py
    compares F.batch_norm itself on plain tensors."""
    over = (0,) + tuple(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = x.mean(over, keepdim=True), x.var(over, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * gamma.view(shape) + beta.view(shape)


def _rows(values):
    """Each example's sum of ``values`` (N, ...) → (N,)."""
    return values.reshape(values.shape[0], -1).sum(dim=1)


def _losses(name, fused, z, y, t, margin=1.0):
    """The loss of each example, (N,), from the last layer's input ``z`` and output ``y``
    (``margin``: multiclass_svm's Δ)."""
    n = y.shape[0]
    if name == "squared_error":
        return 0.5 * _rows((y - t) ** 2)
    if name == "mse":
        return F.mse_loss(y, t, reduction="none").reshape(n, -1).mean(dim=1)
    if name == "cross_entropy":
        if fused:
            return -_rows(t * torch.log_softmax(z.reshape(n, -1), dim=1).reshape(z.shape))
        mask = t != 0
        rows = torch.arange(n).reshape((n,) + (1,) * (t.dim() - 1)).expand(t.shape)
        return -torch.zeros(n, dtype=y.dtype).index_add(0, rows[mask], t[mask] * torch.log(y[mask]))
    if name == "binary_cross_entropy":
        if fused:
            return _rows(F.binary_cross_entropy_with_logits(z, t, reduction="none"))
        return _rows(F.binary_cross_entropy(y, t, reduction="none"))
    if name == "cross_entropy from logits":      # the final output y is the logits
        return F.cross_entropy(y.reshape(n, -1), t.reshape(n, -1), reduction="none")
    if name == "binary_cross_entropy from logits":
        return _rows(F.binary_cross_entropy_with_logits(y, t, reduction="none"))
    if name == "none":
        return _rows(t * y)
    if name == "multiclass_svm":     # torch divides by the number of classes C
        classes = y.shape[1]
        return classes * F.multi_margin_loss(y.reshape(n, -1), t.reshape(n, -1).argmax(dim=1), p=1,
                                             margin=margin, reduction="none")
    raise AssertionError(f"no torch equivalent for loss {name!r}")


def _loss(name, fused, z, y, t, reduction="sum", margin=1.0):
    """The data loss: the examples' losses summed or averaged (``reduction``)."""
    losses = _losses(name, fused, z, y, t, margin)
    return losses.mean() if reduction == "mean" else losses.sum()


def penalty(net, params):
    """The L2 penalty λ Σ θ² of the network's regularization (0 without one)."""
    if net.regularization is None:
        return 0.0
    factor, names = net.regularization
    return factor * sum((params[name] ** 2).sum() for name in names)


def torch_gradients(model):
    """(loss or None, ∂E/∂input, {parameter: ∂E/∂parameter}) by torch autograd, float64, in the
    engine's internal layout (the batch axis, N rows, on the input gradient)."""
    net = model.network
    x = torch.tensor(model.input, dtype=torch.float64, requires_grad=True)
    params = {name: torch.tensor(np.asarray(value, dtype=np.float64), requires_grad=True)
              for name, value in model.params.items()}
    loss, _ = _torch_loss(model, x, params)
    loss.backward()
    grads = {name: value.grad.numpy() for name, value in params.items()}
    reported = None if net.loss.name == "none" else float(loss.detach())
    return reported, x.grad.numpy(), grads


def _torch_loss(model, x, params, apart=None):
    """(E, the values) of the network on ``x`` in torch; value k + 1 is layer k's output, each
    layer reads ``net.reads``. With ``apart`` = (value, reader, copy), layer ``reader`` reads
    ``copy`` in place of that value (its other readers the value itself)."""
    net = model.network
    t = torch.tensor(model.target, dtype=torch.float64)
    h = z = x
    values = [x]
    for index, (name, layer, reads) in enumerate(zip(net.names, net.layers, net.reads)):
        operands = [apart[2] if apart is not None and (v, index) == apart[:2] else values[v] for v in reads]
        z = operands[0]
        local = {p: params[f"{name}.{p}"] for p in layer.param_names}
        h = torch_join(layer.kind, operands) if layer.joins else torch_layer(layer)(z, local)
        values.append(h)
    loss = _loss(net.loss.label, net.fused, z, h, t, net.loss.reduction, getattr(net.loss, "margin", 1.0)) \
        + penalty(net, params)
    return loss, values


def torch_reader_part(model, value, reader):
    """Layer ``reader``'s part of ∂E/∂(value ``value``) by torch autograd, (N, ...): the gradient
    of E with respect to a copy of the value that layer alone reads."""
    x = torch.tensor(model.input, dtype=torch.float64)
    params = {name: torch.tensor(np.asarray(v, dtype=np.float64)) for name, v in model.params.items()}
    _, values = _torch_loss(model, x, params)
    copy = values[value].detach().clone().requires_grad_(True)
    loss, _ = _torch_loss(model, x, params, (value, reader, copy))
    loss.backward()
    return copy.grad.numpy()

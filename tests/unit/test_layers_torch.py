"""Every layer and loss of the engine against PyTorch autograd (float64, CPU).

Each test draws many random configurations from a seeded numpy Generator, runs the engine's
forward and backward, and compares the output, ∂E/∂input and every parameter gradient with what
torch.autograd gives for the same numbers. The torch side is written from the layer's *definition*
(torch's own conv/pool/softmax/loss functions, padding given to torch in the user's form), not
from the engine's internals, so a wrong padding resolution, a missing kernel flip or a transposed
axis shows up as a mismatch.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from cnngrad.layers.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh  # noqa: E402
from cnngrad.layers.conv import Conv  # noqa: E402
from cnngrad.layers.fc import FC  # noqa: E402
from cnngrad.layers.flatten import Flatten  # noqa: E402
from cnngrad.layers.pooling import Pool  # noqa: E402
from cnngrad.losses import LOSSES  # noqa: E402
from cnngrad.network import Network  # noqa: E402
from helpers.torchnet import rel_err, torch_conv, torch_pool, torch_softmax_all  # noqa: E402

RTOL = 1e-10
CASES = 40  # random configurations per test


def assert_close(ours, theirs, what: str, config=None):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    err = rel_err(ours, theirs)
    assert err <= RTOL, f"{what}: relative error {err:.3e} for config {config}"


def t64(a, grad=True):
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64, requires_grad=grad)


def compare_layer(layer, x, params, torch_fn, rng, config=None):
    """Run ``layer`` and ``torch_fn(x, params)`` forward and backward on the same numbers.

    The upstream gradient is random, so every output entry's contribution is exercised.
    """
    y, cache = layer.forward(x, params)
    dy = rng.standard_normal(y.shape)
    dx, pgrads = layer.backward(dy, cache, params)

    tx = t64(x)
    tparams = {name: t64(value) for name, value in params.items()}
    ty = torch_fn(tx, tparams)
    assert tuple(ty.shape) == y.shape, f"output shape {y.shape} vs torch {tuple(ty.shape)} ({config})"
    ty.backward(torch.from_numpy(dy))
    assert_close(y, ty, "forward", config)
    assert_close(dx, tx.grad, "grad input", config)
    assert set(pgrads) == set(params)
    for name in params:
        assert_close(pgrads[name], tparams[name].grad, f"grad {name}", config)
    return y, dx, pgrads


# --------------------------------------------------------------------------------------------
# convolution

def draw_conv_config(rng):
    """A random valid conv: channels, filters, kernel, stride, dilation, padding form, mode, bias."""
    channels, filters = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    dilation = [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
    form = rng.choice(["int", "pair", "asym", "valid", "same"])
    if form == "same":
        stride = [1, 1]  # `same` is only defined (and accepted by torch) for stride 1
    else:
        stride = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
    padding = {
        "int": int(rng.integers(0, 3)),
        "pair": [int(rng.integers(0, 3)), int(rng.integers(0, 3))],
        "asym": [[int(rng.integers(0, 3)), int(rng.integers(0, 3))],
                 [int(rng.integers(0, 3)), int(rng.integers(0, 3))]],
        "valid": "valid",
        "same": "same",
    }[form]
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    height = int(rng.integers(span[0], span[0] + 6))
    width = int(rng.integers(span[1], span[1] + 6))
    return dict(channels=channels, filters=filters, kernel=(kh, kw), stride=stride,
                dilation=dilation, padding=padding, height=height, width=width,
                mode=str(rng.choice(["cross_correlation", "convolution"])),
                untied=bool(rng.integers(0, 2)), batch=int(rng.integers(1, 4)))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv_matches_torch():
    rng = np.random.default_rng(20240601)
    forms_seen = set()
    for _ in range(CASES * 3):
        cfg = draw_conv_config(rng)
        kh, kw = cfg["kernel"]
        layer = Conv((cfg["filters"], cfg["channels"], kh, kw), stride=cfg["stride"],
                     padding=cfg["padding"], dilation=cfg["dilation"], mode=cfg["mode"],
                     untied_bias=cfg["untied"])
        in_shape = (cfg["channels"], cfg["height"], cfg["width"])
        shapes = layer.param_shapes(in_shape)
        params = {name: rng.standard_normal(shape) for name, shape in shapes.items()}
        x = rng.standard_normal((cfg["batch"],) + in_shape)
        y, _, _ = compare_layer(layer, x, params, torch_conv(cfg), rng, cfg)
        assert y.shape[1:] == layer.output_shape(in_shape)
        forms_seen.add((str(type(cfg["padding"]).__name__), cfg["mode"], cfg["untied"]))
    assert len(forms_seen) >= 8  # every padding form, both modes and both bias forms were drawn


@pytest.mark.parametrize("kernel", [(1, 1), (2, 2), (3, 3), (4, 4), (2, 3), (3, 4), (5, 2)])
@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_conv_same_padding_matches_torch(kernel, dilation):
    """`same` keeps H×W for odd and even kernels; even totals put the smaller half on top/left."""
    rng = np.random.default_rng(kernel[0] * 100 + kernel[1] * 10 + dilation)
    cfg = dict(mode="cross_correlation", padding="same", stride=[1, 1],
               dilation=[dilation, dilation], untied=False)
    layer = Conv((2, 3) + kernel, padding="same", dilation=dilation)
    x = rng.standard_normal((2, 3, 7, 8))
    params = {"kernel": rng.standard_normal((2, 3) + kernel), "bias": rng.standard_normal(2)}
    y, _, _ = compare_layer(layer, x, params, torch_conv(cfg), rng, (kernel, dilation))
    assert y.shape == (2, 2, 7, 8)


def test_convolution_mode_is_correlation_with_flipped_kernel():
    """Cross-check of the two modes against each other through torch: conv2d of the flipped kernel."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 2, 6, 5))
    kernel = rng.standard_normal((3, 2, 3, 2))
    bias = rng.standard_normal(3)
    y, _ = Conv(kernel.shape, mode="convolution").forward(x, {"kernel": kernel, "bias": bias})
    ref = F.conv2d(t64(x, False), t64(kernel[..., ::-1, ::-1].copy(), False), t64(bias, False))
    assert_close(y, ref, "convolution mode")
    y_cc, _ = Conv(kernel.shape).forward(x, {"kernel": kernel, "bias": bias})
    assert rel_err(y, y_cc) > 1e-3  # the modes really differ for a non-symmetric kernel


# --------------------------------------------------------------------------------------------
# activations

ACTIVATIONS = {
    "relu": (lambda rng: ReLU(), lambda layer: (lambda x, p: F.relu(x))),
    "leaky_relu": (lambda rng: LeakyReLU(float(rng.uniform(0.001, 0.5))),
                   lambda layer: (lambda x, p: F.leaky_relu(x, negative_slope=layer.slope))),
    "sigmoid": (lambda rng: Sigmoid(), lambda layer: (lambda x, p: torch.sigmoid(x))),
    "tanh": (lambda rng: Tanh(), lambda layer: (lambda x, p: torch.tanh(x))),
    "softmax": (lambda rng: Softmax(), lambda layer: torch_softmax_all),
}


def random_activation_input(rng):
    """A vector batch or a map batch, with some exact zeros (ReLU's kink, where torch says 0)."""
    if rng.integers(0, 2):
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 12)))
    else:
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 6)),
                 int(rng.integers(1, 6)))
    x = rng.standard_normal(shape) * rng.choice([0.5, 3.0, 20.0])
    x[rng.random(shape) < 0.15] = 0.0
    return x


@pytest.mark.parametrize("kind", sorted(ACTIVATIONS))
def test_activation_matches_torch(kind):
    make_layer, make_torch = ACTIVATIONS[kind]
    rng = np.random.default_rng(sum(map(ord, kind)))
    for _ in range(CASES):
        layer = make_layer(rng)
        x = random_activation_input(rng)
        compare_layer(layer, x, {}, make_torch(layer), rng, (kind, x.shape))


def test_softmax_normalises_over_the_whole_map():
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 5))
    y, _ = Softmax().forward(x, {})
    np.testing.assert_allclose(y.sum(axis=(1, 2, 3)), [1.0, 1.0], rtol=0, atol=1e-14)
    assert abs(y[0, 0].sum() - 1.0) > 1e-3  # not per channel


# --------------------------------------------------------------------------------------------
# pooling

def draw_pool_config(rng, pool_type):
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    stride = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
    form = str(rng.choice(["none", "int", "pair", "asym", "same"]))
    half = (kh // 2, kw // 2)  # torch's max_pool2d allows at most half the window per side
    padding = {
        "none": 0,
        "int": int(rng.integers(0, min(half) + 1)),
        "pair": [int(rng.integers(0, half[0] + 1)), int(rng.integers(0, half[1] + 1))],
        "asym": [[int(rng.integers(0, half[0] + 1)), int(rng.integers(0, half[0] + 1))],
                 [int(rng.integers(0, half[1] + 1)), int(rng.integers(0, half[1] + 1))]],
        "same": "same",
    }[form]
    if form == "same":
        stride = [1, 1]
    height = int(rng.integers(kh, kh + 6))
    width = int(rng.integers(kw, kw + 6))
    return dict(type=pool_type, size=[kh, kw], stride=stride, padding=padding,
                shape=(int(rng.integers(1, 3)), int(rng.integers(1, 4)), height, width))


@pytest.mark.parametrize("pool_type", ["max", "avg", "l2"])
def test_pool_matches_torch(pool_type):
    rng = np.random.default_rng({"max": 1, "avg": 2, "l2": 3}[pool_type])
    for _ in range(CASES * 2):
        cfg = draw_pool_config(rng, pool_type)
        layer = Pool(pool_type, size=cfg["size"], stride=cfg["stride"], padding=cfg["padding"])
        x = rng.standard_normal(cfg["shape"])  # continuous values: ties have probability zero
        compare_layer(layer, x, {}, torch_pool(cfg), rng, cfg)


def test_l2_pool_matches_explicit_formula():
    """√(Σ x²) per window, written with unfold, so lp_pool2d's own conventions are not trusted blindly."""
    rng = np.random.default_rng(11)
    for _ in range(CASES):
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        x = rng.standard_normal((2, 2, kh + int(rng.integers(0, 5)), kw + int(rng.integers(0, 5))))

        def explicit(tx, p):
            batch, channels, height, width = tx.shape
            cols = F.unfold(tx.reshape(batch * channels, 1, height, width), (kh, kw), stride=(sh, sw))
            out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
            return torch.sqrt((cols ** 2).sum(dim=1)).reshape(batch, channels, out_h, out_w)

        compare_layer(Pool("l2", size=[kh, kw], stride=[sh, sw]), x, {}, explicit, rng)


def test_max_pool_ties_first_matches_torch_on_tied_windows():
    """Inputs drawn from {0, 1, 2}: most windows hold several maxima; torch sends δ to the first."""
    rng = np.random.default_rng(5)
    tied_windows = 0
    for _ in range(CASES * 2):
        cfg = draw_pool_config(rng, "max")
        x = rng.integers(0, 3, size=cfg["shape"]).astype(np.float64)
        layer = Pool("max", size=cfg["size"], stride=cfg["stride"], padding=cfg["padding"],
                     ties="first")
        _, cache = layer.forward(x, {})
        flat = cache[2]
        tied_windows += int(((flat == flat.max(axis=-1, keepdims=True)).sum(axis=-1) > 1).sum())
        compare_layer(layer, x, {}, torch_pool(cfg), rng, cfg)
    assert tied_windows > 100


def loop_split_reference(x, size, stride, dy):
    """Max pool backward with ties split, by plain loops over windows (no padding)."""
    kh, kw = size
    sh, sw = stride
    dx = np.zeros_like(x)
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    window = x[b, c, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    winners = np.argwhere(window == window.max())
                    for m, n in winners:
                        dx[b, c, i * sh + m, j * sw + n] += dy[b, c, i, j] / len(winners)
    return dx


def test_max_pool_ties_split_shares_equally():
    # Hand example: window [[1, 1], [0, 1]] has three maxima, so each gets 1/3 of δ = 0.6.
    x = np.array([[[[1.0, 1.0], [0.0, 1.0]]]])
    layer = Pool("max", size=2, ties="split")
    y, cache = layer.forward(x, {})
    dx, _ = layer.backward(np.array([[[[0.6]]]]), cache, {})
    assert y[0, 0, 0, 0] == 1.0
    np.testing.assert_allclose(dx[0, 0], [[0.2, 0.2], [0.0, 0.2]], rtol=0, atol=1e-15)
    # Overlapping windows, stride 1, on [[2, 2, 1], [2, 0, 2]]: windows [[2,2],[2,0]] (3 maxima)
    # and [[2,1],[0,2]] (2 maxima); δ = (0.3, 0.5) → entry (0,1) is in both: 0.1 + 0.25.
    x = np.array([[[[2.0, 2.0, 1.0], [2.0, 0.0, 2.0]]]])
    layer = Pool("max", size=2, stride=1, ties="split")
    _, cache = layer.forward(x, {})
    dx, _ = layer.backward(np.array([[[[0.3, 0.5]]]]), cache, {})
    np.testing.assert_allclose(dx[0, 0], [[0.1, 0.35, 0.0], [0.1, 0.0, 0.25]], rtol=0, atol=1e-15)
    # Random tied inputs against the loop reference.
    rng = np.random.default_rng(9)
    for _ in range(CASES):
        size = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
        stride = [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
        x = rng.integers(0, 2, size=(2, 2, size[0] + int(rng.integers(0, 4)),
                                     size[1] + int(rng.integers(0, 4)))).astype(np.float64)
        layer = Pool("max", size=size, stride=stride, ties="split")
        y, cache = layer.forward(x, {})
        dy = rng.standard_normal(y.shape)
        dx, _ = layer.backward(dy, cache, {})
        assert rel_err(dx, loop_split_reference(x, size, stride, dy)) <= RTOL


# --------------------------------------------------------------------------------------------
# flatten and fc

@pytest.mark.parametrize("order", ["C", "F"])
def test_flatten_matches_torch_and_numpy_order(order):
    rng = np.random.default_rng(ord(order))
    for _ in range(CASES):
        shape = (int(rng.integers(1, 4)),) + tuple(int(v) for v in rng.integers(1, 5, size=3))
        x = rng.standard_normal(shape)
        if order == "C":
            run = lambda tx, p: tx.reshape(tx.shape[0], -1)  # noqa: E731
        else:  # column-major: the first index varies fastest
            run = lambda tx, p: tx.permute(0, 3, 2, 1).reshape(tx.shape[0], -1)  # noqa: E731
        y, _, _ = compare_layer(Flatten(order), x, {}, run, rng, shape)
        for b in range(shape[0]):
            np.testing.assert_array_equal(y[b], x[b].ravel(order=order))


def test_fc_matches_torch():
    rng = np.random.default_rng(12)
    for _ in range(CASES):
        outputs, inputs = int(rng.integers(1, 10)), int(rng.integers(1, 10))
        params = {"weights": rng.standard_normal((outputs, inputs)),
                  "bias": rng.standard_normal(outputs)}
        x = rng.standard_normal((int(rng.integers(1, 5)), inputs))
        compare_layer(FC((outputs, inputs)), x, params,
                      lambda tx, p: F.linear(tx, p["weights"], p["bias"]), rng, (outputs, inputs))


# --------------------------------------------------------------------------------------------
# losses, through a Network so the fused softmax/sigmoid paths are exercised as users meet them

def run_network(layers, loss_name, x, target):
    net = Network(x.shape[1:], layers, LOSSES[loss_name]())
    trace = net.forward(x, {})
    losses = net.losses(trace, target)
    grads = net.backward(trace, {}, target)
    return net, trace, losses, grads


def compare_loss(layers, loss_name, x, target, torch_loss, config=None):
    """Per-example losses and ∂(Σ losses)/∂input against torch; ``torch_loss`` gives (B,) losses."""
    _, trace, losses, grads = run_network(layers, loss_name, x, target)
    tx = t64(x)
    tlosses = torch_loss(tx, torch.from_numpy(np.asarray(target, dtype=np.float64)))
    tlosses.sum().backward()
    assert np.all(np.isfinite(losses)) and np.all(np.isfinite(grads.input))
    assert_close(losses, tlosses, f"{loss_name} loss", config)
    assert_close(grads.input, tx.grad, f"{loss_name} grad", config)
    return trace, losses, grads


def per_example(fn):
    """Apply a torch loss with reduction 'sum' (or 'mean') to each example separately."""
    return lambda tx, tt: torch.stack([fn(tx[b:b + 1], tt[b:b + 1]) for b in range(tx.shape[0])])


def random_shape(rng):
    if rng.integers(0, 2):
        return (int(rng.integers(1, 4)), int(rng.integers(1, 8)))
    return (int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(1, 4)),
            int(rng.integers(1, 4)))


def test_squared_error_and_mse_match_torch():
    rng = np.random.default_rng(21)
    for _ in range(CASES):
        shape = random_shape(rng)
        x, t = rng.standard_normal(shape), rng.standard_normal(shape)
        compare_loss([], "squared_error", x, t,
                     per_example(lambda a, b: 0.5 * F.mse_loss(a, b, reduction="sum")), shape)
        compare_loss([], "mse", x, t,
                     per_example(lambda a, b: torch.nn.MSELoss()(a, b)), shape)


def random_distribution(rng, shape):
    t = rng.random(shape)
    return t / t.reshape(shape[0], -1).sum(axis=1).reshape((-1,) + (1,) * (len(shape) - 1))


def test_cross_entropy_on_probabilities_matches_torch():
    """Plain −Σ t log y, with y given directly (no softmax before it); soft and one-hot targets."""
    rng = np.random.default_rng(22)
    for _ in range(CASES):
        shape = random_shape(rng)
        y = random_distribution(rng, shape) * rng.uniform(0.5, 1.0)  # any positive numbers
        t = random_distribution(rng, shape)
        compare_loss([], "cross_entropy", y, t,
                     lambda ty, tt: -(tt * torch.log(ty)).reshape(ty.shape[0], -1).sum(dim=1))
        # one-hot targets: torch's NLL of log y at the class index
        batch = shape[0]
        classes = rng.integers(0, int(np.prod(shape[1:])), size=batch)
        onehot = np.zeros((batch, int(np.prod(shape[1:]))))
        onehot[np.arange(batch), classes] = 1.0
        compare_loss([], "cross_entropy", y, onehot.reshape(shape),
                     lambda ty, tt: F.nll_loss(torch.log(ty.reshape(batch, -1)),
                                               torch.from_numpy(classes), reduction="none"))


def test_cross_entropy_fused_after_softmax_matches_torch():
    rng = np.random.default_rng(23)
    for _ in range(CASES):
        batch, classes = int(rng.integers(1, 4)), int(rng.integers(2, 9))
        z = rng.standard_normal((batch, classes)) * rng.choice([1.0, 10.0])
        soft = random_distribution(rng, (batch, classes))
        trace, _, grads = compare_loss(
            [("softmax1", Softmax())], "cross_entropy", z, soft,
            lambda tz, tt: F.cross_entropy(tz, tt, reduction="none"), (batch, classes))
        # the delta reported at the softmax output is −t / y, the plain loss's gradient
        np.testing.assert_allclose(grads.outputs["softmax1"], -soft / trace.output, rtol=1e-12)
        index = rng.integers(0, classes, size=batch)
        onehot = np.eye(classes)[index]
        compare_loss([("softmax1", Softmax())], "cross_entropy", z, onehot,
                     lambda tz, tt: F.nll_loss(F.log_softmax(tz, dim=1), torch.from_numpy(index),
                                               reduction="none"))
    # a map ending in softmax: one distribution over all entries of the example
    z = rng.standard_normal((2, 2, 3, 3))
    t = random_distribution(rng, z.shape)
    compare_loss([("softmax1", Softmax())], "cross_entropy", z, t,
                 lambda tz, tt: F.cross_entropy(tz.reshape(2, -1), tt.reshape(2, -1),
                                                reduction="none"))


def test_binary_cross_entropy_matches_torch():
    rng = np.random.default_rng(24)
    for _ in range(CASES):
        shape = random_shape(rng)
        y = rng.uniform(0.02, 0.98, size=shape)
        t = rng.random(shape)
        t[rng.random(shape) < 0.3] = 1.0
        t[rng.random(shape) < 0.3] = 0.0
        sum_rows = lambda v: v.reshape(v.shape[0], -1).sum(dim=1)  # noqa: E731
        compare_loss([], "binary_cross_entropy", y, t,
                     lambda ty, tt: sum_rows(F.binary_cross_entropy(ty, tt, reduction="none")))
        z = rng.standard_normal(shape) * rng.choice([1.0, 10.0])
        compare_loss([("sigmoid1", Sigmoid())], "binary_cross_entropy", z, t,
                     lambda tz, tt: sum_rows(F.binary_cross_entropy_with_logits(
                         tz, tt, reduction="none")))


def test_none_loss_passes_the_upstream_gradient():
    """With `none`, the target is ∂E/∂output: E = Σ t·y, so torch's y.backward(t) is the reference."""
    rng = np.random.default_rng(25)
    for _ in range(CASES):
        shape = random_shape(rng)
        x, upstream = rng.standard_normal(shape), rng.standard_normal(shape)
        _, _, grads = compare_loss(
            [("tanh1", Tanh())], "none", x, upstream,
            lambda tx, tt: (torch.tanh(tx) * tt).reshape(tx.shape[0], -1).sum(dim=1))
        np.testing.assert_array_equal(grads.outputs["tanh1"], upstream)


@pytest.mark.parametrize("scale", [1000.0, -1000.0])
def test_extreme_logits_stay_finite_and_match_torch(scale):
    """Logits of ±1000: exp overflows in a naive softmax/sigmoid, the fused forms must not."""
    z = np.array([[scale, 0.0, -scale, 0.5 * scale], [-scale, scale, 1.0, -0.5 * scale]])
    t = np.array([[0.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    t[0, np.argmin(z[0])] = 1.0  # all mass on the smallest logit: loss = max − min = 2000, not inf
    _, losses, grads = compare_loss(
        [("softmax1", Softmax())], "cross_entropy", z, t,
        lambda tz, tt: F.cross_entropy(tz, tt, reduction="none"))
    assert losses[0] == pytest.approx(2 * abs(scale), rel=1e-12)
    tb = np.array([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.5, 1.0]])
    _, losses, _ = compare_loss(
        [("sigmoid1", Sigmoid())], "binary_cross_entropy", z, tb,
        lambda tz, tt: F.binary_cross_entropy_with_logits(tz, tt, reduction="none").sum(dim=1))
    assert np.all(losses > 0)


# --------------------------------------------------------------------------------------------
# a whole network: the layers composed, parameters by name, against the same torch model

def test_small_network_matches_torch():
    rng = np.random.default_rng(31)
    for _ in range(10):
        x = rng.standard_normal((2, 2, 9, 8))
        layers = [("conv1", Conv((3, 2, 3, 3), padding=1, mode="convolution")),
                  ("relu1", ReLU()),
                  ("pool1", Pool("max", size=2)),
                  ("conv2", Conv((2, 3, 2, 2), stride=[1, 2], untied_bias=True)),
                  ("tanh1", Tanh()),
                  ("flatten1", Flatten("F")),
                  ("fc1", FC((4, 2 * 3 * 2))),  # conv2 gives 2×3×2
                  ("softmax1", Softmax())]
        net = Network(x.shape[1:], layers, LOSSES["cross_entropy"]())
        params = {name: rng.standard_normal(shape) for name, shape in net.param_shapes.items()}
        target = random_distribution(rng, (2, 4))
        trace = net.forward(x, params)
        losses = net.losses(trace, target)
        grads = net.backward(trace, params, target)

        tp = {name: t64(value) for name, value in params.items()}
        tx = t64(x)
        h = F.conv2d(tx, torch.flip(tp["conv1.kernel"], (-2, -1)), tp["conv1.bias"], padding=1)
        h = F.max_pool2d(F.relu(h), 2)
        h = torch.tanh(F.conv2d(h, tp["conv2.kernel"], stride=(1, 2)) + tp["conv2.bias"])
        h = h.permute(0, 3, 2, 1).reshape(2, -1)
        logits = F.linear(h, tp["fc1.weights"], tp["fc1.bias"])
        tlosses = F.cross_entropy(logits, torch.from_numpy(target), reduction="none")
        tlosses.sum().backward()
        assert_close(losses, tlosses, "loss")
        assert_close(grads.input, tx.grad, "grad input")
        for name in params:
            assert_close(grads.params[name], tp[name].grad, f"grad {name}")

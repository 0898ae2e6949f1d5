"""Forward + backward time of one 3×32×32 example through a LeNet-like network, cnngrad vs PyTorch.

    conv 6@5×5 → relu → maxpool 2 → conv 16@5×5 → relu → maxpool 2 → flatten → fc 120 → fc 10
    → softmax → cross_entropy

Both run the same float64 numbers on the CPU (PyTorch with its default thread count) in the same
process; the script first checks that they agree, then prints the median of many repeats and
the ratio. cnngrad is timed twice: with glibc's default allocator settings, then after
``cnngrad.memory.keep_freed_memory()`` (meant for the command line), which stops glibc from
handing the engine's ~0.5 MB temporaries back to the OS after every pass.
Usage: python benchmarks/bench_engine.py [--repeats N] [--profile]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from cnngrad.layers.activations import ReLU, Softmax
from cnngrad.layers.conv import Conv
from cnngrad.layers.fc import FC
from cnngrad.layers.flatten import Flatten
from cnngrad.layers.pooling import Pool
from cnngrad.losses import LOSSES
from cnngrad.memory import keep_freed_memory
from cnngrad.network import Network


def build(rng):
    layers = [("conv1", Conv((6, 3, 5, 5))), ("relu1", ReLU()), ("pool1", Pool("max", size=2)),
              ("conv2", Conv((16, 6, 5, 5))), ("relu2", ReLU()), ("pool2", Pool("max", size=2)),
              ("flatten1", Flatten()), ("fc1", FC((120, 16 * 5 * 5))), ("fc2", FC((10, 120))),
              ("softmax1", Softmax())]
    net = Network((3, 32, 32), layers, LOSSES["cross_entropy"]())
    params = {}
    for name, shape in net.param_shapes.items():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        params[name] = rng.standard_normal(shape) / np.sqrt(fan_in)
    x = rng.standard_normal((1, 3, 32, 32))
    target = np.eye(10)[[3]]
    return net, params, x, target


def cnngrad_step(net, params, x, target):
    trace = net.forward(x, params)
    loss = net.losses(trace, target)
    grads = net.backward(trace, params, target)
    return loss, grads


def torch_step(torch, tparams, tx, ttarget):
    F = torch.nn.functional
    for p in tparams.values():
        p.grad = None
    tx.grad = None
    h = F.max_pool2d(F.relu(F.conv2d(tx, tparams["conv1.kernel"], tparams["conv1.bias"])), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, tparams["conv2.kernel"], tparams["conv2.bias"])), 2)
    h = F.linear(h.reshape(1, -1), tparams["fc1.weights"], tparams["fc1.bias"])
    logits = F.linear(h, tparams["fc2.weights"], tparams["fc2.bias"])
    loss = F.cross_entropy(logits, ttarget, reduction="sum")
    loss.backward()
    return loss


def median_time(fn, repeats, warmup=20):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="cProfile the cnngrad step")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    net, params, x, target = build(rng)
    run_ours = lambda: cnngrad_step(net, params, x, target)  # noqa: E731

    if args.profile:
        keep_freed_memory()
        import cProfile
        import pstats
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.repeats):
            run_ours()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        return

    default = median_time(run_ours, args.repeats)
    print(f"cnngrad: {default * 1e3:8.3f} ms  (median of {args.repeats}, forward + backward, "
          "1×3×32×32, default malloc)")
    kept = keep_freed_memory()
    ours = median_time(run_ours, args.repeats)
    print(f"cnngrad: {ours * 1e3:8.3f} ms  (median of {args.repeats}, forward + backward, "
          f"1×3×32×32, keep_freed_memory() {'on' if kept else 'unavailable'})")

    try:
        import torch
    except ImportError:
        print("torch:   not installed, no comparison")
        return
    tparams = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True)
               for name, value in params.items()}
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ttarget = torch.tensor(target.argmax(axis=1))

    loss, grads = run_ours()
    tloss = torch_step(torch, tparams, tx, ttarget)
    worst = max(float(np.max(np.abs(grads.params[n] - tparams[n].grad.numpy())) /
                      max(float(np.max(np.abs(grads.params[n]))), 1e-300)) for n in params)
    worst = max(worst, float(np.max(np.abs(grads.input - tx.grad.numpy()))
                             / float(np.max(np.abs(grads.input)))))
    assert abs(loss[0] - tloss.item()) <= 1e-12 * abs(tloss.item()), (loss, tloss)
    assert worst <= 1e-10, f"cnngrad and torch disagree: {worst:.3e}"

    theirs = median_time(lambda: torch_step(torch, tparams, tx, ttarget), args.repeats)
    print(f"torch:   {theirs * 1e3:8.3f} ms  (median of {args.repeats}, float64, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__})")
    print(f"ratio:   {ours / theirs:8.2f}×  cnngrad / torch   (same numbers; max rel. diff {worst:.1e})")
    print(f"         {default / theirs:8.2f}×  with the default malloc settings")


if __name__ == "__main__":
    main()

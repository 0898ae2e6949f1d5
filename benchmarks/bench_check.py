"""Speed of ``cnngrad check`` (issue 6): LeNet-5 full and --fast, start-up, peak memory, vs PyTorch.

Every figure is measured in this run, on this machine, and printed beside its target:

- wall time of the installed command ``cnngrad check configs/lenet5.yaml`` (a subprocess, start-up
  included; median of --repeats runs) and of ``cnngrad check --fast``;
- ``torch.autograd.gradcheck`` on the same network and the same float64 numbers (built from the
  loaded cnngrad model; checked w.r.t. the input and every parameter together), in full mode
  (~46 s on 2 cores, run once; --quick skips it) and in fast mode (median of --repeats);
- start-up: ``cnngrad check`` on a small seed example against ``python -c "import numpy"``
  and, for reference, ``python -c "import numpy, yaml, click"`` (the libraries every command
  needs; all subprocesses, taking turns, median of --startup-repeats);
- peak memory: the maximum resident set size of the full LeNet-5 check's process (os.wait4);
- the warm fast checks again, cnngrad's in-process and torch's, each alone in a fresh process
  that keeps freed memory as the command does, taking turns (--turns rounds of 60 runs each):
  neither's threads or memory state touch the other's.

The children run with stdout piped (so tables are plain text, as in a pipe or a CI log) and, as
after ``pip install``, with byte-compiled modules: PYTHONDONTWRITEBYTECODE is dropped from their
environment and one warm-up run writes the caches. Other work on the machine adds noise; the
medians damp it, and the spread is printed.

Usage: python benchmarks/bench_check.py [--quick] [--repeats N] [--startup-repeats N] [--turns N]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LENET = "configs/lenet5.yaml"
SMALL = "configs/seed000_maxpool_3x3_stride1_routing.yaml"
ENTRY_POINT = Path(sys.executable).parent / "cnngrad"
sys.path.insert(0, str(ROOT))               # this checkout's cnngrad, for the in-process figures
sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import median_time  # noqa: E402  (one timing helper for both benchmarks)

TARGET_FULL_S = 1.5          # full LeNet-5 check, wall, start-up included
TARGET_SPEEDUP = 30.0        # … and at least this much faster than torch's full gradcheck
TARGET_PEAK_BYTES = 2**30    # 1 GiB
TARGET_STARTUP_RATIO = 1.3   # small example / bare `import numpy`
WARM_UP = 5                  # runs before a warm median (cnngrad's and torch's fast checks alike)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")}
    return env


def run_once(command: list[str], expect_codes=(0,)) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one run of ``command`` (stdout piped away)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=child_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if process.returncode not in expect_codes:
        sys.exit(f"{' '.join(command)} exited {process.returncode}:\n{stderr}")
    return elapsed, usage.ru_maxrss * 1024          # Linux reports kilobytes


def timed(command: list[str], repeats: int) -> dict:
    return timed_together([command], repeats)[0]


def timed_together(commands: list[list[str]], repeats: int) -> list[dict]:
    """Each command ``repeats`` times, taking turns, so that a change in the machine's load
    affects all alike (a ratio of two figures is then steadier than either figure)."""
    runs = [[] for _ in commands]
    for _ in range(repeats):
        for command, done in zip(commands, runs):
            done.append(run_once(command))
    figures = []
    for done in runs:
        times = [t for t, _ in done]
        figures.append({"median": statistics.median(times), "min": min(times), "max": max(times),
                        "p10": statistics.quantiles(times, n=10)[0] if repeats > 1 else times[0],
                        "peak": max(rss for _, rss in done), "n": repeats})
    return figures


# PyTorch on the same network and numbers

def torch_loss_function(torch, model):
    """``f(x, *params) -> loss`` in PyTorch for ``model`` (the layer kinds LeNet-5 uses), and the
    gradcheck inputs, all float64 tensors that require grad."""
    F = torch.nn.functional
    net = model.network
    names = list(model.params)

    def apply(index, kind, layer, h, p):
        name = net.names[index]
        if kind == "conv":
            if layer.mode != "cross_correlation" or layer.untied_bias:
                raise NotImplementedError(f"{name}: only tied-bias cross-correlation")
            (top, bottom), (left, right) = layer.padding
            h = F.pad(h, (left, right, top, bottom))
            return F.conv2d(h, p[f"{name}.kernel"], p[f"{name}.bias"], stride=layer.stride,
                            dilation=layer.dilation)
        if kind == "pool" and layer.type == "max" and layer.padding == ((0, 0), (0, 0)):
            return F.max_pool2d(h, layer.size, layer.stride)
        if kind == "pool" and layer.type == "avg" and layer.padding == ((0, 0), (0, 0)):
            return F.avg_pool2d(h, layer.size, layer.stride)
        if kind == "relu":
            return F.relu(h)
        if kind == "sigmoid":
            return torch.sigmoid(h)
        if kind == "tanh":
            return torch.tanh(h)
        if kind == "flatten" and layer.order == "C":
            return h.reshape(h.shape[0], -1)
        if kind == "fc":
            return F.linear(h, p[f"{name}.weights"], p[f"{name}.bias"])
        raise NotImplementedError(f"{name}: {kind} is not translated to PyTorch here")

    kinds = [layer.kind for layer in net.layers]
    if net.loss.name != "cross_entropy" or kinds[-1] != "softmax":
        raise NotImplementedError("only a final softmax with cross_entropy")
    target = torch.tensor(model.target, dtype=torch.float64)

    def loss(x, *values):
        p = dict(zip(names, values))
        h = x
        for index, (kind, layer) in enumerate(zip(kinds[:-1], net.layers[:-1])):
            h = apply(index, kind, layer, h, p)
        return -(target * F.log_softmax(h.reshape(h.shape[0], -1), dim=1)).sum()

    inputs = [torch.tensor(model.input, dtype=torch.float64, requires_grad=True)]
    inputs += [torch.tensor(model.params[n], dtype=torch.float64, requires_grad=True) for n in names]
    return loss, tuple(inputs)


def torch_figures(args) -> dict | None:
    """torch.autograd.gradcheck on LeNet-5 in this process: fast mode's first call (its lazy set-up
    included, as in a fresh run) and warm median, full mode once (unless --quick); and the wall
    time of a fresh process that imports torch and runs the fast check (like the cnngrad command)."""
    try:
        import torch
    except ImportError:
        return None
    loss, inputs, entries = torch_lenet(torch)
    gradcheck = torch.autograd.gradcheck
    start = time.perf_counter()
    gradcheck(loss, inputs, fast_mode=True)
    first = time.perf_counter() - start
    fast = median_time(lambda: gradcheck(loss, inputs, fast_mode=True), args.repeats, warmup=WARM_UP)
    process = timed([sys.executable, __file__, "--torch-fast-child"], max(args.repeats // 2, 1))
    full = None
    if not args.quick:
        print(f"  torch.autograd.gradcheck, full mode, {entries:,} entries (about 46 s on 2 cores) …",
              file=sys.stderr, flush=True)
        full = median_time(lambda: gradcheck(loss, inputs), 1, warmup=0)
    return {"first": first, "fast": fast, "process": process, "full": full, "entries": entries,
            "version": torch.__version__, "threads": torch.get_num_threads()}


def torch_lenet(torch):
    """LeNet-5 of configs/ as a PyTorch loss function, its gradcheck inputs, their entry count;
    the loss is compared with cnngrad's, so both check the same network and numbers."""
    from cnngrad.spec import load_model
    model = load_model(str(ROOT / LENET))
    loss, inputs = torch_loss_function(torch, model)
    ours, theirs = model.loss(model.forward()), loss(*inputs).item()
    if abs(ours - theirs) > 1e-12 * abs(ours):
        sys.exit(f"torch loss {theirs!r} differs from cnngrad's {ours!r}: not the same network")
    return loss, inputs, sum(t.numel() for t in inputs)


def in_process(repeats: int) -> dict:
    """cnngrad's check of LeNet-5 inside this process (no start-up), full and fast, medians."""
    from cnngrad.gradcheck import check_model
    from cnngrad.memory import keep_freed_memory
    from cnngrad.spec import load_model
    keep_freed_memory()                      # as the command line does
    model = load_model(str(ROOT / LENET))
    return {"fast": median_time(lambda: check_model(model, fast=True), repeats, warmup=WARM_UP),
            "full": median_time(lambda: check_model(model), max(repeats // 2, 1), warmup=0)}


def warm_fast(which: str, runs: int = 60) -> float:
    """Median seconds of ``runs`` warm fast checks of LeNet-5 by ``which`` (cnngrad in-process, or
    torch's gradcheck), alone in this fresh process, neither's threads or memory touching the
    other's; both keep freed memory as the command does (torch gains from it too, 12-13 → 10-11 ms)."""
    from cnngrad.memory import keep_freed_memory
    keep_freed_memory()
    if which == "torch":
        import torch
        loss, inputs, _ = torch_lenet(torch)
        return median_time(lambda: torch.autograd.gradcheck(loss, inputs, fast_mode=True), runs, warmup=10)
    from cnngrad.gradcheck import check_model
    from cnngrad.spec import load_model
    model = load_model(str(ROOT / LENET))
    return median_time(lambda: check_model(model, fast=True), runs, warmup=10)


def fast_in_turns(rounds: int) -> dict[str, list[float]]:
    """``warm_fast`` of cnngrad and of torch, each in a fresh process, taking turns ``rounds`` times."""
    medians = {"cnngrad": [], "torch": []}
    for _ in range(rounds):
        for which in medians:
            out = subprocess.run([sys.executable, __file__, "--warm-fast-child", which], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout
            medians[which].append(float(out.split()[-1]))
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip torch's full gradcheck (~46 s)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per LeNet-5 figure [5]")
    parser.add_argument("--startup-repeats", type=int, default=51, help="runs per start-up figure [51]")
    parser.add_argument("--turns", type=int, default=4,
                        help="fresh-process rounds of the warm fast checks taken in turns [4]")
    parser.add_argument("--torch-fast-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warm-fast-child", choices=("cnngrad", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_fast_child:                # a fresh process: import torch, one fast gradcheck
        import torch
        loss, inputs, _ = torch_lenet(torch)
        torch.autograd.gradcheck(loss, inputs, fast_mode=True)
        return
    if args.warm_fast_child:
        print(warm_fast(args.warm_fast_child))
        return
    if not ENTRY_POINT.exists():
        sys.exit(f"{ENTRY_POINT} not found: install cnngrad into this Python first (pip install .)")

    cnngrad = [str(ENTRY_POINT), "check"]
    numpy_only = [sys.executable, "-c", "import numpy"]
    libraries = [sys.executable, "-c", "import numpy, yaml, click"]
    for command in (cnngrad + [LENET], cnngrad + [SMALL], numpy_only, libraries):   # warm-up, byte-compile
        run_once(command)

    print(f"# cnngrad check benchmark — {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} cores, {platform.machine()}, load average {os.getloadavg()[0]:.2f}",
          flush=True)
    full = timed(cnngrad + [LENET], args.repeats)
    fast = timed(cnngrad + ["--fast", LENET], args.repeats)
    small, bare, floor = timed_together([cnngrad + [SMALL], numpy_only, libraries], args.startup_repeats)
    inside = in_process(args.repeats)
    torch = torch_figures(args)
    turns = fast_in_turns(args.turns) if torch is not None and args.turns else None

    rows = []

    def row(what, value, target, ok, spread=""):
        rows.append((what, value, target, "" if ok is None else ("ok" if ok else "MISSED"), spread))

    def spread(figure):
        return f"{figure['min']:.3f}–{figure['max']:.3f} s, n={figure['n']}"

    row("cnngrad check lenet5 (full, wall)", f"{full['median']:.3f} s", f"≤ {TARGET_FULL_S} s",
        full["median"] <= TARGET_FULL_S, spread(full))
    row("  peak memory (max RSS)", f"{full['peak'] / 2**20:.0f} MiB", "≤ 1024 MiB",
        full["peak"] <= TARGET_PEAK_BYTES)
    row("cnngrad check --fast lenet5 (wall)", f"{fast['median']:.3f} s", "≤ torch fast", None, spread(fast))
    row("in-process check_model lenet5, full", f"{inside['full']:.3f} s", "", None)
    row("in-process check_model lenet5, fast", f"{inside['fast'] * 1e3:.1f} ms", "", None)
    if torch is None:
        row("torch.autograd.gradcheck", "torch not installed", "", None)
    else:
        if torch["full"] is not None:
            ratio = torch["full"] / full["median"]
            row("torch gradcheck full (in-process)", f"{torch['full']:.1f} s", "", None, "n=1")
            row("  torch full / cnngrad check (wall)", f"{ratio:.1f}×", f"≥ {TARGET_SPEEDUP:.0f}×",
                ratio >= TARGET_SPEEDUP)
            row("  torch full / cnngrad in-process full", f"{torch['full'] / inside['full']:.1f}×", "", None)
        else:
            row("torch gradcheck full", "skipped (--quick)", "", None)
        row("torch gradcheck fast, first call", f"{torch['first']:.3f} s", "", None, "n=1")
        row("torch gradcheck fast, warm", f"{torch['fast'] * 1e3:.1f} ms", "", None, f"n={args.repeats}")
        row("torch gradcheck fast, fresh process", f"{torch['process']['median']:.3f} s", "", None,
            spread(torch["process"]))
        row("  torch fast first call / cnngrad --fast (wall)", f"{torch['first'] / fast['median']:.2f}×",
            "≥ 1×", torch["first"] >= fast["median"])
        row("  torch fast process / cnngrad --fast (wall)",
            f"{torch['process']['median'] / fast['median']:.2f}×", "≥ 1×",
            torch["process"]["median"] >= fast["median"])
        row("  torch fast warm / cnngrad fast in-process", f"{torch['fast'] / inside['fast']:.2f}×", "", None,
            "one process, one after the other: see the turns below")
    if turns:
        ours, theirs = (statistics.median(turns[which]) for which in ("cnngrad", "torch"))
        listed = {which: ", ".join(f"{t * 1e3:.1f}" for t in times) for which, times in turns.items()}
        row("fast, warm, fresh processes in turns: cnngrad", f"{ours * 1e3:.1f} ms", "", None, f"{listed['cnngrad']} ms")
        row("  torch", f"{theirs * 1e3:.1f} ms", "", None, f"{listed['torch']} ms")
        row("  torch / cnngrad", f"{theirs / ours:.2f}×", "≥ 1×", theirs >= ours,
            f"medians of {len(turns['torch'])} processes × 60 runs")
    row("cnngrad check (small seed example)", f"{small['median'] * 1e3:.0f} ms", "", None,
        f"{small['min'] * 1e3:.0f}–{small['max'] * 1e3:.0f} ms, n={small['n']}")
    row('python -c "import numpy"', f"{bare['median'] * 1e3:.0f} ms", "", None,
        f"{bare['min'] * 1e3:.0f}–{bare['max'] * 1e3:.0f} ms, n={bare['n']}")
    row('python -c "import numpy, yaml, click"', f"{floor['median'] * 1e3:.0f} ms",
        "", None, f"{floor['median'] / bare['median']:.2f}× import numpy: the libraries alone")
    ratio = small["median"] / bare["median"]
    row("  start-up ratio: small check / import numpy", f"{ratio:.2f}×", f"≤ {TARGET_STARTUP_RATIO}×",
        ratio <= TARGET_STARTUP_RATIO, f"10th percentiles: {small['p10'] / bare['p10']:.2f}×")

    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    header = ("figure", "measured", "target", "", "spread")
    widths = [max(w, len(h)) for w, h in zip(widths, header)]
    for cells in (header, *rows):
        print("  ".join(c.ljust(w) if i != 1 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(cells, widths + [0]))).rstrip())
    if torch is not None:
        print(f"# torch {torch['version']}, {torch['threads']} threads, float64, "
              f"{torch['entries']:,} entries (input and all parameters); cnngrad: median of "
              f"{args.repeats} runs of the installed command, stdout piped")
    print(f"# small seed example: {SMALL}; load average now {os.getloadavg()[0]:.2f} "
          "(other work on the machine slows every figure; rerun when it is near 0)")


if __name__ == "__main__":
    main()

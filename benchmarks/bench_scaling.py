"""How the full check grows with the network (issue 18): input size, filters, input channels, fc width.

The network is LeNet-5's shape, conv F@5×5 → relu → max pool 2 → conv 16@5×5 → relu → max pool 2 →
flatten → fc W → relu → fc 10 → softmax → cross-entropy, on a C×P×P input (seeded random values, He
scales), varied one setting at a time from P = 32, F = 6, C = 1, W = 120 (LeNet-5 on 32 px):

- input size P: 16, 32, 48, 64, 96, 128 px;
- filters F of the first conv: 4, 8, 16, 32, 64;
- input channels C: 1, 2, 4, 8;
- fc width W: 30, 120, 480.

Each figure is one fresh process (so its peak memory, the high-water mark of its resident set that
the process reads from /proc/self/status, is its own; os.wait4's ru_maxrss also counts the pages a
child shares with this script until its exec): cnngrad's full check in-process (the check itself, no start-up; every input and
parameter entry, ``--max-work`` lifted), and ``torch.autograd.gradcheck`` on the same network and
numbers, fast mode (warm, second call) and full mode where it finishes within 60 s (else skipped).
Each series prints wall and CPU time (the machine is shared: CPU time, both BLAS threads counted,
is the steadier figure of work), peak memory, the ratio to its first row, and the fitted growth exponent k
of time ∝ x^k (least squares on logs; for the input size x is P, so time ∝ pixels is k = 2).

Usage: python benchmarks/bench_scaling.py [--quick] [--no-torch] [--torch-full-limit S]
(--quick: fewer points, P up to 96, no torch full mode).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

BASE = {"pixels": 32, "filters": 6, "channels": 1, "width": 120}
SERIES = {   # setting → values (full run, --quick)
    "pixels": ([16, 32, 48, 64, 96, 128], [16, 32, 64, 96]),
    "filters": ([4, 8, 16, 32, 64], [4, 16, 64]),
    "channels": ([1, 2, 4, 8], [1, 8]),
    "width": ([30, 120, 480], [30, 480]),
}
TORCH_FULL_LIMIT = 60.0


def spec(pixels: int, filters: int, channels: int, width: int) -> dict:
    """The network as a spec mapping (LeNet-5's shape; He-scaled seeded random values)."""
    side = ((pixels - 4) // 2 - 4) // 2
    flat = 16 * side * side

    def normal(shape, fan, seed):
        return {"random": {"shape": list(shape), "distribution": "normal", "scale": math.sqrt(2 / fan), "seed": seed}}

    def small(n, seed):
        return {"random": {"shape": [n], "distribution": "normal", "scale": 0.01, "seed": seed}}

    return {
        "name": f"LeNet-5 shape, {channels}x{pixels}x{pixels}, {filters} filters, fc {width}",
        "input": {"random": {"shape": [channels, pixels, pixels], "distribution": "uniform", "scale": 1.0, "seed": 1}},
        "layers": [
            {"conv": {"kernel": normal((filters, channels, 5, 5), 25 * channels, 2), "bias": small(filters, 3)}},
            "relu", {"pool": {"type": "max", "size": 2}},
            {"conv": {"kernel": normal((16, filters, 5, 5), 25 * filters, 4), "bias": small(16, 5)}},
            "relu", {"pool": {"type": "max", "size": 2}},
            "flatten",
            {"fc": {"weights": normal((width, flat), flat, 6), "bias": small(width, 7)}},
            "relu",
            {"fc": {"weights": normal((10, width), width, 8), "bias": small(10, 9)}},
            "softmax",
        ],
        "loss": "cross_entropy",
        "target": 3,
    }


# --- one measurement, in its own process

def high_water_mark() -> int | None:
    """This process's peak resident set in bytes since it started its program (Linux's VmHWM):
    unlike ``ru_maxrss``, which also counts the parent's pages a child shares until its exec."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


def child(kind: str, settings: dict) -> dict:
    """Run one measurement in this process and return its figures (with its peak memory)."""
    figures = measure_here(kind, settings)
    peak = high_water_mark()
    return figures if peak is None else {**figures, "peak": peak}


def measure_here(kind: str, settings: dict) -> dict:
    """One measurement in this process: seconds (and CPU seconds, pass or fail for cnngrad)."""
    from cnngrad.api import load
    from cnngrad.spec import Limits
    model = load(spec(**settings), limits=Limits(max_entries=10**8))
    entries = model.input.size + sum(v.size for v in model.params.values())
    if kind == "cnngrad":
        from cnngrad.gradcheck import check_model
        from cnngrad.memory import keep_freed_memory
        keep_freed_memory()                          # as the command line does
        start, cpu = time.perf_counter(), time.process_time()
        result = check_model(model, max_work=math.inf)
        return {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                "passed": result.passed, "entries": entries}
    import torch
    from bench_check import torch_loss_function
    loss, inputs = torch_loss_function(torch, model)
    if kind == "torch-fast":
        torch.autograd.gradcheck(loss, inputs, fast_mode=True)       # its lazy set-up, not timed
        start = time.perf_counter()
        torch.autograd.gradcheck(loss, inputs, fast_mode=True)
    else:
        start = time.perf_counter()
        torch.autograd.gradcheck(loss, inputs)
    return {"seconds": time.perf_counter() - start, "entries": entries}


def measure(kind: str, settings: dict, limit: float | None = None) -> dict | None:
    """One measurement in a fresh process: its figures and peak memory; None past ``limit`` seconds."""
    command = [sys.executable, __file__, "--child", kind, json.dumps(settings)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = None if limit is None else time.monotonic() + limit + 30   # start-up and set-up on top
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if deadline is not None and time.monotonic() > deadline:
            process.kill()
            process.wait()
            return None
        time.sleep(0.05)
    out, err = process.stdout.read(), process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed:\n{err.decode(errors='replace')}")
    figures = json.loads(out)
    if limit is not None and figures["seconds"] > limit:
        return None
    figures.setdefault("peak", usage.ru_maxrss * 1024)   # where /proc is missing; Linux reports kilobytes
    return figures


# --- the tables

def growth(xs, ys) -> float:
    """k of y ∝ x^k, least squares on logs."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def series(setting: str, values, args) -> list[dict]:
    rows = []
    for value in values:
        settings = {**BASE, setting: value}
        row = {"value": value, "cnngrad": measure("cnngrad", settings)}
        if not args.no_torch:
            row["fast"] = measure("torch-fast", settings)
            full_ok = not args.quick and (not rows or rows[-1].get("full") is not None)
            row["full"] = measure("torch-full", settings, args.torch_full_limit) if full_ok else None
        rows.append(row)
        print(f"  {setting} {value}: {row['cnngrad']['seconds']:.2f} s", file=sys.stderr, flush=True)
    return rows


def table(setting: str, rows: list[dict], args) -> str:
    label = {"pixels": "input P×P", "filters": "conv1 filters", "channels": "input channels",
             "width": "fc1 width"}[setting]
    head = f"| {label} | entries | cnngrad full, wall | × first | CPU | × first | peak memory |"
    rule = "|---|--:|--:|--:|--:|--:|--:|"
    if not args.no_torch:
        head += " torch gradcheck full | torch gradcheck fast |"
        rule += "--:|--:|"
    lines = [head, rule]
    first, first_cpu = rows[0]["cnngrad"]["seconds"], rows[0]["cnngrad"]["cpu"]
    for row in rows:
        ours = row["cnngrad"]
        cells = [str(row["value"]), f"{ours['entries']:,}", f"{ours['seconds']:.2f} s",
                 f"{ours['seconds'] / first:.1f}×", f"{ours['cpu']:.2f} s", f"{ours['cpu'] / first_cpu:.1f}×",
                 f"{ours['peak'] / 2**20:.0f} MiB"]
        if not args.no_torch:
            full = row.get("full")
            cells.append(f"{full['seconds']:.1f} s ({full['seconds'] / ours['seconds']:.0f}×)" if full else
                         "not run (--quick)" if args.quick else f"skipped (> {args.torch_full_limit:.0f} s)")
            cells.append(f"{row['fast']['seconds']:.3f} s")
        lines.append("| " + " | ".join(cells) + " |")
    xs = [row["value"] for row in rows]
    k = growth(xs, [row["cnngrad"]["seconds"] for row in rows])
    k_cpu = growth(xs, [row["cnngrad"]["cpu"] for row in rows])
    lines.append(f"\nfitted growth: wall time ∝ {label.split()[-1]}^{k:.2f}, CPU time ∝ {label.split()[-1]}^{k_cpu:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer points, no torch full gradcheck")
    parser.add_argument("--no-torch", action="store_true", help="cnngrad only")
    parser.add_argument("--only", choices=list(SERIES), action="append", help="one series (repeatable)")
    parser.add_argument("--torch-full-limit", type=float, default=TORCH_FULL_LIMIT,
                        help=f"skip torch's full gradcheck past this many seconds [{TORCH_FULL_LIMIT:.0f}]")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], json.loads(args.child[1]))))
        return
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            args.no_torch = True
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} at the start; {time.strftime('%Y-%m-%d')}")
    pixels = None
    for setting, (values, quick) in SERIES.items():
        if args.only and setting not in args.only:
            continue
        rows = series(setting, quick if args.quick else values, args)
        print(f"\n{table(setting, rows, args)}")
        if setting == "pixels":
            pixels = {row["value"]: row["cnngrad"] for row in rows}
    if pixels and 32 in pixels and 96 in pixels:
        print(f"\n96 px / 32 px: {pixels[96]['seconds'] / pixels[32]['seconds']:.1f}× the wall time, "
              f"{pixels[96]['cpu'] / pixels[32]['cpu']:.1f}× the CPU time, for 9× the pixels")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

"""Diagnosing wrong numbers costs at most 2× a plain check (issue 14): LeNet-5 with 10 wrong values.

The plain check is ``check_model`` of ``configs/lenet5.yaml`` (every gradient entry against finite
differences); the diagnosed one is the same check with 10 of LeNet-5's gradients handed over
wrong (as ``check --against`` does: scaled, sign-flipped, rounded, slipped entries): its 10
parameter gradients, so every one is recomputed from the output back and every step on the way
is run through the catalogue of mistakes.
Both in-process, medians of --repeats runs taking turns.

Usage: python benchmarks/bench_diagnose.py [--repeats N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnngrad.gradcheck import check_model  # noqa: E402
from cnngrad.model import CODE_TOLERANCE  # noqa: E402
from cnngrad.spec import load_model  # noqa: E402
from cnngrad.spec.against import expectation_of  # noqa: E402

WRONG = 10


def wrong_values(model) -> dict:
    """LeNet-5's 10 parameter gradients, each wrong in its own way. No delta is given, so each is
    recomputed from the output back and every step on the way tried for mistakes: the slowest case."""
    values = model.values()
    names = [f"grad.{name}" for name in model.params][:WRONG]
    rng = np.random.default_rng(0)
    ways = [lambda v: 2 * v, lambda v: -v, lambda v: np.round(v, 3),
            lambda v: v * (1 + 0.05 * (rng.random(v.shape) < 0.1))]
    return {name: ways[k % len(ways)](values[name]) for k, name in enumerate(names)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.chdir(ROOT)
    plain, diagnosed = [], []
    for _ in range(args.repeats):
        model = load_model("configs/lenet5.yaml")
        start = time.perf_counter()
        check_model(model)
        plain.append(time.perf_counter() - start)
        model = load_model("configs/lenet5.yaml")
        wrong = wrong_values(model)
        model.expect = [expectation_of(name, value, model, CODE_TOLERANCE) for name, value in wrong.items()]
        start = time.perf_counter()
        result = check_model(model)
        diagnosed.append(time.perf_counter() - start)
    failed = sum(not e.passed for e in result.expect)
    print(f"LeNet-5 plain check      {statistics.median(plain):6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in plain)})")
    print(f"with {failed} wrong values   {statistics.median(diagnosed):6.2f} s  "
          f"(runs: {', '.join(f'{t:.2f}' for t in diagnosed)})")
    print(f"ratio {statistics.median(diagnosed) / statistics.median(plain):.2f} (target at most 2)")
    print("first wrong:", result.first_wrong)
    for entry in result.expect:
        print(f"  {entry.quantity:22} {entry.origin:11} {[d.mistake for d in entry.diagnosis]}")


if __name__ == "__main__":
    main()

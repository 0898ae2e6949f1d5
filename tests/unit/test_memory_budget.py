"""Memory the per-array limits do not see (issue 17.10): a one-hot class target, padded maps,
window copies and the sum of every layer's activations. A run's memory is estimated from the
shapes before anything big is allocated; beyond --max-memory (default 2 GiB) the spec is refused
with the estimate, the layer that passes the limit and the option. Each hostile case runs in a
subprocess whose address space is capped (RLIMIT_AS), so a regression fails instead of paging."""
from __future__ import annotations

import resource
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from cnngrad.spec import Limits, SpecError, load_model
from cnngrad.spec.limits import format_size, parse_size
from helpers.layerchecks import spec_path

GiB = 1 << 30
CAP = 1 * GiB   # the address space each hostile run may use, interpreter and numpy included

AVG_POOL = "input: [[1]]\nlayers:\n  - pool: {type: avg, size: 20001, padding: 10000}\n" \
           "loss: none\nupstream_grad: [[1]]\n"     # a 20001×20001 padded map: 3 GiB
DILATED = "input: [[1, 2, 3], [4, 5, 6], [7, 8, 9]]\nlayers:\n" \
          "  - conv: {kernel: [[1, 1], [1, 1]], dilation: 100000, padding: 50000}\n" \
          "loss: none\nupstream_grad: {random: {shape: [3, 3]}}\n"   # 100003² padded: 75 GiB
MANY_CONVS = "input: {random: {shape: [2000, 2000]}}\nlayers:\n" + "  - conv: {kernel: [[1.0]]}\n" * 50 + \
             "loss: none\nupstream_grad: {random: {shape: [2000, 2000]}}\n"   # 50 maps of 32 MB, twice


def run_capped(args: list[str], cap: int = CAP):
    """``python -m cnngrad ARGS`` with its address space capped at ``cap`` bytes; also the CPU
    seconds it used (not wall time, which other processes on the machine stretch)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "cnngrad", *args], capture_output=True, text=True,
                          preexec_fn=limit, timeout=120, env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)



# --- sizes as people write them ---------------------------------------------------------------

@pytest.mark.parametrize("text, size", [("4G", 4 * GiB), ("512M", 512 << 20), ("1.5G", 3 * GiB // 2),
                                        ("2GiB", 2 * GiB), ("64k", 64 << 10), ("1T", 1 << 40),
                                        ("1000", 1000), ("300MB", 300 << 20)])
def test_sizes_are_read_with_binary_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "4X", "-1G", "0", "1e3G", "nan", "4 G G", "0.1"])
def test_a_size_that_is_not_one_is_refused(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_sizes_are_shown_in_the_largest_unit_under_them():
    assert [format_size(n) for n in (512, 3 << 19, 2 * GiB, 12_300_000_000, 298 << 40)] == \
        ["512 bytes", "1.5 MiB", "2.0 GiB", "11.5 GiB", "298.0 TiB"]


# --- a class index is a one-hot vector, not a row of an n×n identity ------------------------

def test_a_million_way_class_target_runs_in_bounded_memory(tmp_path):
    """np.eye(n)[k] asked for 8 TB here; the loss is −log softmax(x)[k], computed apart."""
    spec = spec_path(tmp_path, "input: {random: {shape: [1000000], seed: 3}}\nlayers: [softmax]\n"
                           "loss: cross_entropy\ntarget: 999998\n")
    code = (f"from cnngrad.spec import load_model\nm = load_model({spec!r})\n"
            "v = m.values()\nprint(repr(float(v['loss'])), int(m.target.sum()), int(m.target[0, 999998]), "
            "repr(float(v['grad.input'][999998])), repr(float(v['grad.input'].sum())))")
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=limit,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    loss, ones, hot, delta_k, delta_sum = done.stdout.split()
    x = np.random.default_rng(3).normal(0.0, 1.0, 1000000)
    shift = x.max()
    expected = -(x[999998] - shift - np.log(np.exp(x - shift).sum()))
    assert float(loss) == pytest.approx(expected, rel=1e-12)
    assert (ones, hot) == ("1", "1")
    y_k = np.exp(x[999998] - shift) / np.exp(x - shift).sum()
    assert float(delta_k) == pytest.approx(y_k - 1.0, rel=1e-12)   # ∂E/∂z = y − t
    assert float(delta_sum) == pytest.approx(0.0, abs=1e-9)        # sums to 1 − 1


# --- refused before allocating -----------------------------------------------------------------

@pytest.mark.parametrize("text, layer, place", [(AVG_POOL, "pool1", "net.yaml:3:5: layers[0]"),
                                                (DILATED, "conv1", "net.yaml:3:5: layers[0]"),
                                                (MANY_CONVS, "conv33", "net.yaml:35:5: layers[32]")],
                         ids=["avg-pool-padding", "dilation", "fifty-1x1-convs"])
@pytest.mark.parametrize("command", [["forward"], ["backward"], ["check", "--fast"], ["explain", "grad.input[0,0]"]],
                         ids=lambda c: c[0])
def test_a_run_beyond_the_memory_limit_is_refused_at_once_in_bounded_memory(tmp_path, text, layer, place, command):
    spec = spec_path(tmp_path, text)
    done, seconds = run_capped([command[0], spec, *command[1:]])
    assert done.returncode == 2, done.stderr[-500:]
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"error: {tmp_path}/{place}") and layer in first
    assert "needs about" in first and "GiB" in first and "--max-memory" in first
    assert "Traceback" not in done.stderr and (command[0] == "check" or done.stdout == "")
    assert seconds < 1.0


def test_the_estimate_is_what_the_message_says(tmp_path):
    """AVG_POOL pads [[1]] to 20001² = 400,040,001 floats (3.0 GiB) before any window is taken."""
    with pytest.raises(SpecError) as info:
        load_model(spec_path(tmp_path, AVG_POOL))
    message = info.value.message
    figure = float(message.split("needs about ")[1].split(" GiB")[0])
    assert 20001 ** 2 * 8 / GiB <= figure < 5 * 20001 ** 2 * 8 / GiB


def test_the_layer_named_is_the_one_that_passes_the_limit(tmp_path):
    """Fifty equal layers, each keeping its 2000×2000 output and its input's gradient (64 MB) and
    needing a third map for a while, pass 2 GiB at the 33rd: 32 · 64 MB + 32 MB < 2 GiB, 33 · 64 MB
    + 32 MB is not (plus the input, the kernels and the upstream gradient)."""
    with pytest.raises(SpecError) as info:
        load_model(spec_path(tmp_path, MANY_CONVS))
    err = info.value
    assert err.path == "layers[32]" and err.message.startswith("conv33 takes the run past the memory limit")
    assert "needs about 3.1 GiB, conv33 alone about 91.6 MiB (Limits.max_memory_bytes; raise it with " \
           "--max-memory, e.g. --max-memory 4G)" in err.message


# --- the option raises the bound ---------------------------------------------------------------

TEN_CONVS = "input: {random: {shape: [1000, 1000]}}\nlayers:\n" + "  - conv: {kernel: [[1.0]]}\n" * 10 + \
            "loss: none\nupstream_grad: {random: {shape: [1000, 1000]}}\n"


def test_max_memory_lowers_and_raises_the_bound(tmp_path):
    spec = spec_path(tmp_path, TEN_CONVS)
    with pytest.raises(SpecError):
        load_model(spec, limits=Limits(max_memory_bytes=100 << 20))
    assert load_model(spec, limits=Limits(max_memory_bytes=400 << 20)).network.names[-1] == "conv10"


@pytest.mark.parametrize("command", [["forward"], ["backward"], ["check", "--fast"], ["explain", "grad.input[0]"]],
                         ids=lambda c: c[0])
def test_max_memory_option_on_every_command(tmp_path, command):
    spec = spec_path(tmp_path, "input: {random: {shape: [5000]}}\nlayers: [relu, sigmoid, tanh]\n"
                           "loss: none\nupstream_grad: {random: {shape: [5000]}}\n")   # about 400 KB
    done, _ = run_capped([command[0], spec, *command[1:], "--format", "json", "--max-memory", "100K"])
    assert done.returncode == 2 and "--max-memory" in done.stderr.splitlines()[0]
    assert "limit of 100.0 KiB" in done.stderr
    done, _ = run_capped([command[0], spec, *command[1:], "--format", "json", "--max-memory", "64M"])
    assert done.returncode == 0, done.stderr[-500:]


def test_a_bad_max_memory_is_a_usage_error(tmp_path):
    spec = spec_path(tmp_path, TEN_CONVS)
    done, _ = run_capped(["forward", spec, "--max-memory", "lots"])
    assert done.returncode == 2 and "--max-memory" in done.stderr and "Traceback" not in done.stderr


# --- the estimate is close to what a run really holds ------------------------------------------

NETWORKS = {
    "1x1 convs": TEN_CONVS,
    "padded, strided and dilated": """\
        input: {random: {shape: [3, 150, 150]}}
        layers:
          - conv: {kernel: {random: {shape: [8, 3, 3, 3]}}, padding: 1}
          - relu
          - pool: {size: 3, stride: 1, padding: 1}
          - conv: {kernel: {random: {shape: [4, 8, 3, 3]}}, padding: 2, dilation: 2}
          - pool: {type: avg, size: 2}
          - conv: {kernel: {random: {shape: [4, 4, 5, 5]}}, stride: 2}
          - pool: {type: l2, size: 3, stride: 2, padding: 1}
          - flatten
          - fc: {weights: {random: {shape: [10, 1296]}}}
          - softmax
        loss: cross_entropy
        target: 3
        """,
    "huge padding and dilation, overlapping windows": """\
        input: {random: {shape: [2, 3, 3]}}
        layers:
          - conv: {kernel: {random: {shape: [2, 2, 2, 2]}}, dilation: 300, padding: 300, mode: convolution}
          - pool: {type: max, size: 3, stride: 1, ties: split}
          - pool: {type: avg, size: 301, padding: 150}
          - flatten: {order: F}
        loss: mse
        target: [0.5, 0.5]
        """,
    "a wide fc": """\
        input: {random: {shape: [3000]}}
        layers:
          - fc: {weights: {random: {shape: [1500, 3000]}}}
          - sigmoid
          - fc: {weights: {random: {shape: [1000, 1500]}}}
        loss: squared_error
        target: {random: {shape: [1000]}}
        """,
}


@pytest.mark.parametrize("name", NETWORKS)
def test_the_estimate_is_within_a_factor_of_the_measured_peak(tmp_path, name):
    """tracemalloc sees every numpy buffer: the peak of a forward and backward pass, values and
    parameters included, against the estimate the limit is judged by."""
    spec = spec_path(tmp_path, NETWORKS[name])
    tracemalloc.start()
    try:
        model = load_model(spec)
        model.values()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    from cnngrad.spec.budget import run_bytes
    estimate = run_bytes(model.network, model.params)
    assert 0.8 * peak <= estimate <= 1.6 * peak, (estimate, peak)


def test_check_batches_count_each_copys_windows(tmp_path):
    """A 41×41 average pool at stride 1 copies 1681 entries per output: 48 MB per perturbed copy
    of a 60×60 map. check --fast's 24 copies must be split into batches of 256 MiB, not run at
    once (1.2 GB) as when a copy was sized by its input and output alone."""
    spec = spec_path(tmp_path, "input: {random: {shape: [60, 60]}}\nlayers:\n"
                           "  - pool: {type: avg, size: 41, stride: 1, padding: 20}\n"
                           "loss: none\nupstream_grad: {random: {shape: [60, 60]}}\n")
    done, _ = run_capped(["check", spec, "--fast"])
    assert done.returncode == 0, done.stderr[-500:]
    assert "1 spec: 1 passed" in done.stdout

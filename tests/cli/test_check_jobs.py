"""``check -j N``: spec files checked side by side in worker processes (cnngrad.jobs), with the
output, its order and the exit code of the one-at-a-time run; Ctrl-C ends it cleanly."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from helpers import ROOT
from helpers.cli import cnngrad_script

pytestmark = pytest.mark.skipif(os.name != "posix", reason="workers are forked")


@pytest.fixture(autouse=True)
def _from_the_repository_root(monkeypatch):
    """The specs are named as a user in the repository would, relative to its root."""
    monkeypatch.chdir(ROOT)


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([cnngrad_script(), "check", *args], capture_output=True)


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_jobs_give_the_output_and_exit_code_of_one_at_a_time(fmt):
    """Specs that pass, errata that fail on purpose, a missing file that cannot run (exit 2)."""
    args = ["configs/seed001_fc_sigmoid_deltas.yaml", "tests/errata", "no-such-spec.yaml",
            "configs/seed000_maxpool_3x3_stride1_routing.yaml", "--format", fmt]
    alone, together = run(*args, "-j", "1"), run(*args, "-j", "3")
    assert together.returncode == alone.returncode == 2
    assert together.stdout == alone.stdout and together.stderr == alone.stderr
    assert b"no-such-spec.yaml" in alone.stderr


def test_jobs_are_the_default_and_check_in_parallel(tmp_path):
    """Without -j a folder is checked by one worker per core (seen as child processes)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: no workers")
    for k in range(3):
        shutil.copy("configs/lenet5.yaml", tmp_path / f"net{k}.yaml")
    process = subprocess.Popen([cnngrad_script(), "check", str(tmp_path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    children = set()
    while process.poll() is None:
        with open(f"/proc/{process.pid}/task/{process.pid}/children") as listing:
            children.update(listing.read().split())
        time.sleep(0.02)
    out, _ = process.communicate()
    assert process.returncode == 0 and out.count(b"passed") >= 3
    assert len(children) >= 2


def test_ctrl_c_ends_a_parallel_check_with_one_line_and_no_workers_left(tmp_path):
    for k in range(6):
        shutil.copy("configs/lenet5.yaml", tmp_path / f"net{k}.yaml")
    process = subprocess.Popen([cnngrad_script(), "check", str(tmp_path), "-j", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    children = []
    while not children and time.monotonic() < deadline:
        with open(f"/proc/{process.pid}/task/{process.pid}/children") as listing:
            children = [int(pid) for pid in listing.read().split()]
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGINT
    assert err.endswith(b"error: interrupted\n") and err.count(b"error:") == 1
    time.sleep(0.2)
    assert not [pid for pid in children if os.path.exists(f"/proc/{pid}") and
                open(f"/proc/{pid}/stat").read().split()[2] != "Z"]


def test_one_spec_imports_neither_multiprocessing_nor_threadpoolctl():
    """Start-up: a single spec runs here (multiprocessing costs 5-20 ms to import), and the command
    line sets BLAS's threads through the environment, not threadpoolctl."""
    import sys
    code = ("import sys\nfrom cnngrad.cli import main\ntry:\n    main(['check', 'configs/seed001_fc_sigmoid_deltas.yaml'])\n"
            "except SystemExit:\n    pass\nprint('multiprocessing' in sys.modules, 'threadpoolctl' in sys.modules, file=sys.stderr)")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_THREADS")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "passed" in done.stdout and done.stderr.strip().splitlines()[-1] == "False False"

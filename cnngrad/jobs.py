"""``in_order``: run one function over many items in worker processes, results in the items' order.

``check -j N`` checks spec files side by side: a check is one process's arithmetic (one BLAS
thread, ``cnngrad.threads``), so a second core pays as a second process. Workers are forked (they
inherit the loaded modules and the command's state, so nothing is re-imported); what a worker
writes on stderr (an error line, a note) is handed back with its result and written by the parent
just before that result, so the output reads as the sequential run's. Workers ignore Ctrl-C: the
parent ends them at once and reports the interrupt itself.
"""
from __future__ import annotations

import io
import multiprocessing
import os
import signal
import sys

_WORK = None     # the function the forked workers run (set just before they fork)


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def in_order(work, items: list, jobs: int):
    """Yield ``work(item)`` for each item, in order, computed by up to ``jobs`` forked workers;
    each worker's stderr is written to this process's stderr before its result is yielded."""
    global _WORK
    _WORK = work
    with multiprocessing.get_context("fork").Pool(min(jobs, len(items)), initializer=_ignore_ctrl_c) as pool:
        for result, stderr in pool.imap(_run, items):    # leaving the block terminates the workers
            if stderr:
                sys.stderr.write(stderr)
                sys.stderr.flush()
            yield result


def _ignore_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(item):
    """In a worker: ``_WORK(item)`` and what it wrote on stderr."""
    captured, sys.stderr = sys.stderr, io.StringIO()
    try:
        result = _WORK(item)
        return result, sys.stderr.getvalue()
    finally:
        sys.stderr = captured

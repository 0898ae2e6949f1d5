"""Keep freed memory in the process, so the engine's arrays do not page-fault on every call.

glibc returns the top of its heap to the operating system once more than a (dynamically
adjusted) trim threshold lies free there, and serves blocks above the mmap threshold straight
from fresh mappings. The engine allocates and frees a few arrays of 0.1–1 MB per layer per pass
(im2col columns, their gradients, outer products), so with the defaults every forward/backward
pass touches fresh pages again: on the benchmark network that is about half of all the time
(2.2 ms instead of 1.1 ms per example; see benchmarks/bench_engine.py).

``keep_freed_memory()`` raises both thresholds, once, for the whole process. It is opt-in: meant
for the command line's entry point (a library user may call it too); importing cnngrad does not.
It changes nothing but how much freed memory the process keeps (at most ``trim`` bytes of free
heap), never a result, and does nothing where libc is not glibc.
"""
from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

_done = False


def keep_freed_memory(mmap: int = 32 * 2**20, trim: int = 256 * 2**20) -> bool:
    """Serve blocks below ``mmap`` bytes from the heap and keep up to ``trim`` bytes of it free.

    Returns True when glibc accepted both settings (or already had them from an earlier call).
    """
    global _done
    if _done:
        return True
    if not _glibc():
        return False
    try:
        libc = ctypes.CDLL(None)          # the process's own symbols, glibc's mallopt among them
        ok = libc.mallopt(M_MMAP_THRESHOLD, mmap) == 1 and libc.mallopt(M_TRIM_THRESHOLD, trim) == 1
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok


def _glibc() -> bool:
    """Whether this process runs on glibc. (os.confstr answers at once; ctypes.util.find_library
    and platform.libc_ver would cost the command line ~10 ms of start-up.)"""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False

"""How many BLAS threads the checker's matrix products use: one, unless the user says otherwise.

The checker's products are small (a batch of perturbed copies through LeNet-5's layers: tens of
rows by a few hundred columns), so a second BLAS thread mostly waits and synchronises. Measured on
the 2-core machine of the README's Performance section: one thread is 1.14× faster on LeNet-5's
full check when the machine is quiet and 2.3× when it is loaded; --fast is 5× faster loaded; only
wide convs (64 filters) gained from two threads (1.33×, quiet), and lost 2.4× loaded. The second
core pays better as a second process (``check -j``): --fast's batches on two threads in one
process saved nothing on LeNet-5 (11.8 ms wall either way, 1.7 ms more CPU; README Performance).
A user's own setting of any of ``VARIABLES`` wins.
"""
from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from functools import cache

BLAS_THREADS = 1
SET = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
VARIABLES = SET + ("GOTO_NUM_THREADS", "OMP_NUM_THREADS")   # OpenBLAS also reads these two


def user_chose() -> bool:
    """Whether the environment already says how many threads BLAS may use."""
    return any(os.environ.get(name) for name in VARIABLES)


def before_numpy() -> None:
    """The command line, before numpy loads: BLAS starts with ``BLAS_THREADS`` unless the user
    chose (costs nothing; worker processes of ``check -j`` inherit it). Once numpy is loaded, the
    environment no longer counts, and ``checker_threads`` sets the count instead."""
    if "numpy" not in sys.modules and not user_chose():
        for name in SET:
            os.environ[name] = str(BLAS_THREADS)


def checker_threads():
    """A context in which BLAS uses ``BLAS_THREADS`` (threadpoolctl, for a Python caller whose
    numpy was loaded without ``before_numpy``); nothing when the environment decided."""
    if user_chose():
        return nullcontext()
    return blas_controller().limit(limits=BLAS_THREADS, user_api="blas")


@cache
def blas_controller():
    """threadpoolctl's view of the loaded thread pools, found once (~3 ms: it walks every loaded
    library), only where the environment did not decide."""
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()

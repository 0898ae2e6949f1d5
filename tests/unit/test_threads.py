"""The checker's BLAS thread count (cnngrad.threads): one thread unless the user set one."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cnngrad import threads
from cnngrad.gradcheck import check_model
from test_gradcheck import small_net

THREADS_OF_THE_COMMAND_LINE = (
    "from cnngrad.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
    "import numpy, json, threadpoolctl\n"
    "print(json.dumps([p['num_threads'] for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas']))"
)


def blas_threads_of_a_program(env: dict[str, str]) -> list[int]:
    """The BLAS thread counts a fresh process sees after running the command line."""
    clean = {k: v for k, v in os.environ.items() if k not in threads.VARIABLES}
    out = subprocess.run([sys.executable, "-c", THREADS_OF_THE_COMMAND_LINE], env={**clean, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_the_command_line_starts_blas_with_one_thread():
    assert blas_threads_of_a_program({}) == [1]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores to tell 2 threads from 1")
def test_a_users_thread_count_wins():
    assert blas_threads_of_a_program({"OPENBLAS_NUM_THREADS": "2"}) == [2]
    assert blas_threads_of_a_program({"OMP_NUM_THREADS": "2"}) == [2]


def test_check_model_runs_its_products_on_one_thread(monkeypatch):
    """A Python caller whose numpy loaded with several threads still gets one inside a check."""
    import threadpoolctl
    for name in threads.VARIABLES:
        monkeypatch.delenv(name, raising=False)
    seen = []
    model = small_net()
    forward = model.network.forward

    def recording(*args, **kwargs):
        seen.extend(p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")
        return forward(*args, **kwargs)

    monkeypatch.setattr(model.network, "forward", recording)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        assert check_model(model).passed
    assert seen and set(seen) == {1}

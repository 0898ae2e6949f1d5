"""Shared test set-up: the repository root as working folder, and the hypothesis profiles for
the property tests (tests/properties/test_properties.py).

- ``ci`` (the default): 150 examples per property, derandomized so every CI run draws
  the same networks, no deadline (a check of one network takes tens of milliseconds, but CI
  machines are shared).
- ``long``: 2,000 examples per property, random each run. Select it with
  ``pytest tests/properties/test_properties.py --hypothesis-profile=long`` or
  ``CNNGRAD_HYPOTHESIS_PROFILE=long pytest tests/properties/test_properties.py``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _run_from_the_repository_root():
    """Tests name configs/ and tests/errata/ as a user in the repository would (and the CLI
    prints those paths back), so they run from the repository root wherever pytest started."""
    started = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(started)

settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("long", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.load_profile(os.environ.get("CNNGRAD_HYPOTHESIS_PROFILE", "ci"))

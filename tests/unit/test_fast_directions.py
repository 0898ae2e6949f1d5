"""--fast's balanced directions (``check.sharp_directions``): |∇E·v| comes to about ``SHARP`` of its
usual ‖∇E‖₂/√size (at most twice that) wherever entries below ‖∇E‖₂/32 can make that up, the
size on which their certain catch of a one-entry error rests (reference §5, --fast)."""
from __future__ import annotations

import numpy as np
import pytest

from cnngrad.gradcheck.check import SHARP, sharp_directions
from cnngrad.gradcheck.work import DIRECTIONS


def balanced_sizes(gradient: np.ndarray, seed: int) -> np.ndarray:
    """|∇E·v| of the balanced half of the directions, in units of SHARP · ‖∇E‖₂/√size."""
    vectors, along = sharp_directions(np.random.default_rng(seed), gradient)
    assert np.allclose(vectors @ gradient, along)
    return np.abs(along[DIRECTIONS // 2:]) / (SHARP * np.linalg.norm(gradient) / np.sqrt(gradient.size))


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("dominant", [0, 5, 700])
def test_a_gradient_with_one_dominant_entry_is_balanced_too(seed, dominant):
    """One entry of 1 among 999 of 1e-3 (most of the norm in one entry): the balance is reached by
    flipping small entries (|∇E·v| can be as small as 0.001/√size), not by flipping the large one,
    which overshoots to about 32 times the aim."""
    gradient = np.full(1000, 1e-3)
    gradient[dominant] = 1.0
    assert np.all(balanced_sizes(gradient, seed) <= 2.0)


@pytest.mark.parametrize("seed", range(10))
def test_a_gradient_of_spread_entries_is_balanced_to_its_aim(seed):
    """Entries over six orders of magnitude: no balanced direction above twice its aim (below it
    only catches more)."""
    gradient = np.random.default_rng(100 + seed).standard_normal(5000) * np.exp(np.linspace(-3, 3, 5000))
    sizes = balanced_sizes(gradient, seed)
    assert np.all(sizes <= 2.0)

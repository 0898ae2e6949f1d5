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
    vectors = vectors[1:]
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


# --- the fast paths against plain references: the same directions, bit for bit


def plain_signs(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """``count`` rows of ±1/√size: bit k of the drawn bytes (first bit first) set gives −1/√size."""
    unit = 1.0 / np.sqrt(size)
    bits = np.unpackbits(np.frombuffer(rng.bytes((count * size + 7) // 8), dtype=np.uint8), count=count * size)
    return bits.reshape(count, size) * (-2.0 * unit) + unit


def plain_balanced(signs: np.ndarray, gradient: np.ndarray, target: float) -> None:
    """``balanced`` as a loop over the entries: the pulling entries among the first 1024, 4096, …
    (the fewest that can make up the excess, else all; then any size of entry, if the small ones
    cannot), flipped in index order until their doubled parts make up the excess (or one past, if
    nearer), then the one flip that leaves the sum nearest its aim, if it helps."""
    total = float(signs @ gradient)
    if not np.isfinite(total) or abs(total) <= target:
        return
    excess, sign = abs(total) - target, np.sign(total)

    def visit(largest):
        size = min(len(signs), 1024)
        while True:
            pulling, moved, run = [], [], 0.0
            for i in range(size):
                part = signs[i] * gradient[i]
                if part * sign > 0 and abs(part) <= largest:
                    run += 2.0 * abs(part)
                    pulling.append(i)
                    moved.append(run)
            if size == len(signs) or moved and moved[-1] >= excess:
                return size, pulling, moved
            size = min(len(signs), 4 * size)

    size, pulling, moved = visit(target)
    if not moved or moved[-1] < excess:
        size, pulling, moved = visit(np.inf)
    count = sum(m < excess for m in moved)
    before = moved[count - 1] if count else 0.0
    if count < len(moved) and moved[count] - excess < excess - before:
        count += 1
    for i in pulling[:count]:
        signs[i] = -signs[i]
    rest = total - sign * (moved[count - 1] if count else 0.0) - sign * target
    gaps = [abs(rest - 2.0 * signs[i] * gradient[i]) for i in range(size)]
    best = min(range(size), key=gaps.__getitem__)
    if gaps[best] < abs(rest):
        signs[best] = -signs[best]


def plain_gradients():
    """Gradients that take every path of ``balanced``: balanced within the first 1024 entries, past
    them (small entries rare at the front), by large entries too (the small ones cannot make up
    the excess), not at all (non-finite, zero, one entry), at sizes around 1024 and 4096."""
    r = np.random.default_rng(5)
    for size in (1, 2, 6, 84, 1023, 1024, 1025, 3000, 4097):
        yield r.standard_normal(size)
        yield r.standard_normal(size) * np.exp(r.uniform(-20, 20, size))
        spread = np.full(size, 1e-3)
        spread[r.integers(size)] = 1.0
        yield spread
        front = r.standard_normal(size)
        front[:size * 2 // 3] *= 1e3          # the pulling small entries sit at the back
        yield front
        few = np.full(size, 1e-9)
        few[:3] = [3.0, -2.0, 1.0][:size]
        yield few
        yield r.integers(-2, 3, size).astype(float)
        yield np.zeros(size)
        yield np.where(np.arange(size) == size // 2, np.inf, r.standard_normal(size))
        yield np.abs(r.standard_normal(size)) * 1e-310


@pytest.mark.parametrize("seed", range(3))
def test_sharp_directions_are_the_plain_ones_bit_for_bit(seed):
    """Signs drawn from a table of bytes, balanced with array searches: the same bits as the plain
    bit-by-bit signs balanced entry by entry, and ∇E·v the same product of them."""
    for k, gradient in enumerate(plain_gradients()):
        with np.errstate(all="ignore"):
            vectors, along = sharp_directions(np.random.default_rng([seed, k]), gradient)
            assert not vectors[0].any()     # the origin row
            vectors = vectors[1:]
            plain = plain_signs(np.random.default_rng([seed, k]), DIRECTIONS, gradient.size)
            target = SHARP * (1.0 / np.sqrt(gradient.size)) * float(np.linalg.norm(gradient))
            for row in plain[DIRECTIONS // 2:]:
                plain_balanced(row, gradient, target)
            expected = plain @ gradient
        assert vectors.tobytes() == plain.tobytes(), (seed, k, gradient.size)
        assert along.tobytes() == expected.tobytes(), (seed, k, gradient.size)


def test_the_signs_take_the_drawn_bytes_and_no_more():
    """The generator is left where the plain draw leaves it, so the next quantity's directions
    are the same too."""
    fast, plain = np.random.default_rng(3), np.random.default_rng(3)
    sharp_directions(fast, np.ones(1001))
    plain_signs(plain, DIRECTIONS, 1001)
    assert fast.bytes(16) == plain.bytes(16)

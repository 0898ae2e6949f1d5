"""``check_model``: every analytic gradient of a model against finite differences, and its ``expect``.

An entry passes when |analytic − numeric| ≤ atol + rtol · max(|analytic|, |numeric|) + noise, where
noise = 4 ε S / h + |D(h/2) − D(h)| / 16 bounds the rounding error of the difference quotients
(S = |E| + Σ_layers Σ |y ⊙ δ| being the first-order size of the rounding errors the forward pass
makes) and what Richardson's extrapolation leaves where the curvature is steep. A difference that
overflowed verifies nothing and fails. A kink entry passes when
the analytic value lies between its one-sided quotients (widened by the same tolerance and by how
much those quotients move between the steps h and h/2). When the steps cross more than one kink, no
such bracket holds (each unit may sit on its own side): the entry is a kink and is not judged.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..model import Model, NonFiniteError
from ..quantities import value_of
from ..threads import checker_threads
from . import expect as expect_check
from .finite import Differences, Evaluator, central_differences, line_differences
from .probes import Probe, input_probe, output_probe, param_probe, reader_probe
from .results import QuantityResult, SpecResult
from .verdicts import FAIL, KINK, OK, UNSEEN, EntryVerdicts
from .work import DEFAULT_MAX_WORK, DIRECTIONS, check_work, refuse_beyond, run_copies

DEFAULT_EPS = 1e-4
DEFAULT_RTOL = 1e-7
DEFAULT_ATOL = 1e-10
UNRESOLVED = 1e-2       # finite differences that resolve no relative error below 1% verify nothing
ZERO = 1e-6             # a gradient below this fraction of S / max(1, |θ|) counts as 0
SIGNIFICANT = 1e3 * np.finfo(np.float64).eps   # … one above this fraction (a thousand roundings), and
#                         above ZERO · |E| / max(1, |θ|), matters: its own differences must resolve it
KINK_EDGE = 0.1         # a kink's analytic value in the outer tenth of its bracket is near an edge
KINK_WIDE = 1e-3        # … and a bracket wider than this fraction of the values is wide
SHARP = 1 / 32          # --fast's balanced directions: |∇E·v| this fraction of its usual ‖∇E‖₂/√size
SECOND_LOOKS = (4, 16)  # a failing entry's differences again at step h/4, then h/16 (``second_look``)


class UnknownQuantity(ValueError):
    """``--wrt`` named something that is neither the input, a parameter nor a layer."""


def judge(quantity: str, shape, analytic: np.ndarray, diffs: Differences, index_shape,
          rtol: float, atol: float, method: str = "full", zero: float = 0.0,
          significant=None) -> QuantityResult:
    """Turn differences into per-entry verdicts; the flat entries are those of an array of
    ``index_shape`` (the quantity's user shape, or the directions).

    The quantity's ``resolution`` is the smallest relative error the check could have caught,
    min over smooth entries of allowance / max(|analytic|, |numeric|, ``zero``) (``zero``, per entry
    or one for all: the size below which a gradient counts as 0, verified absolutely; see
    ``zero_gradient``). A quantity that passed but
    whose finite differences alone resolve no relative error below ``UNRESOLVED`` is
    ``unverified``, not passed. So is one with an ``unresolved`` entry: its analytic value is above
    ``significant`` (per entry or one for all; None: not asked) but its own finite differences
    resolve no relative error of it below ``UNRESOLVED`` (a sum that cancels: input [1e12, 1, −1e12]
    into fc [1, 1, 1], where a 50% error of ∂E/∂input[1] hides under the rounding of 1e12, and
    under the other entries' resolution). Kinks worth a look are marked ``notable`` (``notable_kinks``).
    The largest errors are over smooth entries, relative ones where a value exceeds the allowance.
    """
    numeric, kink = diffs.numeric, diffs.kink
    with np.errstate(all="ignore"):   # a difference that overflowed fails below, without warnings
        error = np.abs(analytic - numeric)
        scale = np.maximum(np.abs(analytic), np.abs(numeric))
        tolerance = atol + rtol * scale + diffs.noise
        finite, bounded = np.isfinite(numeric), np.isfinite(tolerance)
        measured = finite & bounded       # else nothing was verified
        smooth = ~kink
        # an allowance past float64 (the sums behind E overflowed) verifies nothing, fails nothing
        blind = finite & ~bounded & smooth
        ok = (error <= tolerance) & measured | blind
        informative = smooth & measured
        resolution, resolved = resolutions(tolerance, diffs.noise, scale, zero, informative & (scale > 0))
        resolved = np.inf if blind.any() else resolved
        unresolved = unresolved_entries(analytic, scale, diffs.noise, significant, informative)
        kinks = np.flatnonzero(kink)      # usually few (often none): their brackets are judged on them alone
        notable = np.zeros(len(kink), dtype=bool)
        if len(kinks):
            at = (analytic[kinks], tolerance[kinks], diffs.left[kinks], diffs.right[kinks])
            low, high = np.minimum(at[2], at[3]), np.maximum(at[2], at[3])
            widen = at[1] + diffs.spread[kinks]
            kink_ok = (((at[0] >= low - widen) & (at[0] <= high + widen)) | diffs.several[kinks]) & measured[kinks]
            notable[kinks] = notable_kinks(at[0], low, high, at[1], diffs.several[kinks])
        # a relative error says nothing where both values are within the entry's allowance (0 against 1e-17)
        relative = np.divide(error, scale, out=np.zeros_like(error), where=np.isfinite(scale) & (scale > tolerance))
    del scale, tolerance
    relative[~np.isfinite(error)] = np.inf
    # an entry outside its tolerance, or a kink outside its bracket, whose two step sizes disagree
    # (``finite.UNSETTLED``) is unresolved, not failed: its differences are not yet a derivative
    status = np.full(len(kink), FAIL, dtype=np.int8)
    status[ok] = OK
    status[ok & unresolved | ~ok & diffs.unsettled & measured] = UNSEEN
    if len(kinks):
        status[kinks] = np.where(kink_ok, KINK, np.where(diffs.unsettled[kinks] & measured[kinks], UNSEEN, FAIL))
    verdicts = EntryVerdicts(tuple(index_shape), analytic, diffs.numeric, error, status, kink,
                             diffs.left, diffs.right, notable)
    verdict = "failed" if (status == FAIL).any() else \
        "unverified" if resolved is not None and resolved >= UNRESOLVED or (status == UNSEEN).any() else "passed"
    return QuantityResult(
        quantity=quantity, shape=tuple(shape), passed=verdict == "passed",
        max_abs_error=_largest(error, smooth), max_rel_error=_largest(relative, smooth),
        kinks=len(kinks), verdicts=verdicts, method=method, status=verdict,
        resolution=resolution, difference_resolution=resolved)


def _largest(values: np.ndarray, where: np.ndarray) -> float:
    """max(values[where]) without copying them out (NaN if one is), 0.0 where nothing holds."""
    return float(values.max(where=where, initial=-np.inf)) if where.any() else 0.0


def unresolved_entries(analytic, scale, noise, significant, smooth) -> np.ndarray:
    """The smooth entries whose analytic value exceeds ``significant`` while their finite
    differences' noise is at least ``UNRESOLVED`` of max(|analytic|, |numeric|); none when
    ``significant`` is None."""
    if significant is None:
        return np.zeros(len(analytic), dtype=bool)
    return smooth & (np.abs(analytic) > significant) & (noise >= UNRESOLVED * scale)


def resolutions(tolerance, noise, scale, zero, informative) -> tuple[float | None, float | None]:
    """The smallest relative error the check could have caught, and its finite differences alone
    could have (noise instead of the whole allowance), min over the ``informative`` entries of
    allowance / max(|analytic|, |numeric|, ``zero``); None for both when no entry informs."""
    if not informative.any():
        return None, None
    reference = np.maximum(scale, zero)
    ratio = np.divide(tolerance, reference, out=np.full(len(scale), np.inf), where=informative)
    caught = float(ratio.min())
    np.divide(noise, reference, out=ratio, where=informative)   # in place: these are the largest arrays
    return caught, float(ratio.min())


def notable_kinks(analytic, low, high, tolerance, several) -> np.ndarray:
    """Kinks worth a look: those whose bracket [low, high] of one-sided quotients is wider than the
    entry's tolerance and either holds the analytic value in its outer tenth (``KINK_EDGE``), or
    outside it, or is wide: wider than ``KINK_WIDE`` times the largest of |analytic|, |low|, |high|;
    and kinks left unjudged (``several``) whose analytic value lies outside their bracket. A
    narrower bracket says the kink made no measurable difference there."""
    width = high - low
    edge = np.minimum(analytic - low, high - analytic) <= KINK_EDGE * width
    wide = width > KINK_WIDE * np.maximum(np.abs(analytic), np.maximum(np.abs(low), np.abs(high)))
    outside = (analytic < low - tolerance) | (analytic > high + tolerance)
    return ((width > tolerance) & (edge | wide)) | (several & outside)


def zero_gradient(evaluator: Evaluator, probe: Probe, eps: float, steps):
    """The size below which a gradient entry counts as 0: ``ZERO`` · S / max(1, |θ|) (S the rounding
    magnitude of its copies, max(1, |θ|) its step over eps): moving θ by its own size would move E
    by less than a millionth of the sums behind it. So a gradient that is 0 by symmetry, or a
    network whose softmax has saturated, is verified absolutely, not called unresolved."""
    return ZERO * evaluator.magnitude[probe.start] * eps / steps


def significant_gradient(evaluator: Evaluator, probe: Probe, zero):
    """The size above which a gradient entry matters, so that its own differences must resolve it:
    moving θ by max(1, |θ|) would move E by more than ``SIGNIFICANT`` · S (a thousand roundings of
    the sums behind E) and more than ``ZERO`` · |E| (a part in a million of E itself). The second
    keeps a gradient that is tiny beside E (a saturated unit, a zero by symmetry) unflagged; the
    first, one that is a rounding residue where E is 0."""
    magnitude = evaluator.magnitude[probe.start]
    if not 0 < magnitude < np.inf:
        return np.inf
    return zero * max(SIGNIFICANT / ZERO, abs(evaluator.base_loss) / magnitude)


def check_entries(evaluator: Evaluator, probe: Probe, user_shape, eps, rtol, atol) -> QuantityResult:
    """Every entry of one quantity: four perturbed runs per entry, batched (entries that move one
    output unit of their layer share that unit's runs; those that move one channel of a map run
    the channel-wise layers after it on that channel alone)."""
    zero = zero_gradient(evaluator, probe, eps, probe.steps(eps))
    significant = significant_gradient(evaluator, probe, zero)
    return second_look(
        lambda diffs: judge(probe.quantity, user_shape, probe.analytic.reshape(-1), diffs, user_shape, rtol, atol,
                            zero=zero, significant=significant),
        probe.differences(evaluator, eps), lambda entries, finer: probe.finer(evaluator, entries, eps / finer))


def second_look(judged, diffs: Differences, finer) -> QuantityResult:
    """``judged(diffs)``, after a second look at the smooth entries that fail or are unresolved
    because their two step sizes disagree: their differences again at a quarter of the step,
    ``finer(entries, 4)``, then at a sixteenth, kept where they settle what the wider step left
    unsettled (``Differences.settled``). A failure is claimed only where the derivative is not
    still moving with the step; for a wrong gradient both steps agree. One that still fails after
    a look has two looks that agree (else it is unsettled): it is not looked at again (rounding
    grows 16-fold at h/16, beyond the allowance at times, and would unsettle it)."""
    result = judged(diffs)
    looked = np.zeros(len(diffs.numeric), dtype=bool)
    for factor in SECOND_LOOKS:
        if result.passed:           # (nothing failed, nothing unresolved: most quantities)
            break
        status = result.verdicts.status
        failing = np.flatnonzero(((status == FAIL) & ~looked | (status == UNSEEN) & diffs.unsettled) & ~diffs.kink)
        if not len(failing):
            break
        looked[failing] = True
        diffs = diffs.settled(failing, finer(failing, factor))
        result = judged(diffs)
    return result


BYTE_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1)   # row b: the bits of byte b, high first
BLOCK = 1024      # the leading entries ``balanced`` visits first (``_pulling``)


def origin_and_signs(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """A row of zeros, then ``count`` rows of ``size`` random signs ±1/√size, (1 + count, size):
    entry k of the drawn rows is −1/√size where bit k of ``rng.bytes`` is set (eight to a byte,
    first bit first), else +1/√size, as bit · (−2/√size) + 1/√size. Each byte becomes its eight
    signs at once (a table of 256 rows), straight into the array ``Directions`` runs (the origin
    ahead of the directions): no pass over bits, no copy to put the origin in front."""
    table = _sign_table(size)
    drawn = np.frombuffer(rng.bytes((count * size + 7) // 8), dtype=np.uint8)
    flat = np.empty(size + 8 * len(drawn))         # up to 7 signs past the last row: drawn, unused
    flat[:size] = 0.0
    table.take(drawn, axis=0, out=flat[size:].reshape(-1, 8), mode="clip")   # every index is in range
    return flat[:(1 + count) * size].reshape(1 + count, size)


@functools.lru_cache(maxsize=64)
def _sign_table(size: int) -> np.ndarray:
    """Row b: the eight signs byte b gives, ±1/√size (one table per quantity size, kept)."""
    unit = 1.0 / np.sqrt(size)
    table = BYTE_BITS * (-2.0 * unit)    # -2u or 0 …
    table += unit                        # … −u or +u
    table.flags.writeable = False
    return table


def sharp_directions(rng: np.random.Generator, gradient: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``DIRECTIONS`` random unit directions v with every entry ±1/√size (Rademacher), behind a row
    of zeros (the origin ``Directions`` runs with them: ``origin_and_signs``), and ∇E·v: half as
    drawn, half with signs flipped until |∇E·v| is ``SHARP`` times its usual size ‖∇E‖₂/√size
    (``balanced``).

    Why: an error e in one entry of the gradient moves ∇E·v by e·v_entry and is caught where that
    exceeds the tolerance, atol + rtol·max(|∇E·v|, |numeric|) + noise. With signs every entry's
    weight |v_entry| is 1/√size in every direction, whatever the signs; with normal entries it is
    random, and ∇E·v with it. A balanced direction therefore catches, for certain (whichever entry,
    whatever the seed), every one-entry error with |e| > rtol·``SHARP``·‖∇E‖₂ + (atol + noise)·√size
    (to first order in rtol; at most twice the rtol part, where ``balanced`` can reach its aim): any of LeNet-5's three largest fc1 weights off by ±1e-6, which normal
    directions caught in 38 of 60 such cases (seeds 0–9). The half kept as drawn, of the usual
    |∇E·v| (the same spread as with normal entries), see a gradient off by a factor, an error
    relative to ∇E·v itself, farthest above the noise. Signs come from random bits: LeNet-5's
    370,000 entries take 0.4 ms, normal ones 4.7 ms."""
    stacked = origin_and_signs(rng, DIRECTIONS, gradient.size)
    vectors = stacked[1:]
    with np.errstate(all="ignore"):   # a gradient beyond float64 gives a non-finite ∇E·v: judged, not warned
        target = SHARP * (1.0 / np.sqrt(gradient.size)) * float(np.linalg.norm(gradient))
        for row in vectors[DIRECTIONS // 2:]:
            balanced(row, gradient, target)
        return stacked, vectors @ gradient


def balanced(signs: np.ndarray, gradient: np.ndarray, target: float) -> None:
    """Flip signs (entries ±u, in place) so that Σ signs·∇E, if beyond ±``target``, comes to within
    ``target`` of ±``target`` (its sign kept) where entries of at most ``target`` can make up the
    excess, else as near as flips in index order come: the entries pulling it away from 0 by at most
    ``target`` are flipped in index order until their doubled parts make up the excess (stopping
    before the last if that is nearer), then the one entry whose flip leaves it nearest, if that
    helps. A large entry is not flipped (it would overshoot to about −its part) unless the small
    ones cannot make up the excess. Only as many leading entries are visited as that needs (a few
    hundred of fc1's 48,000)."""
    total = float(signs @ gradient)
    if not math.isfinite(total) or abs(total) <= target:
        return
    excess = abs(total) - target
    sign = 1.0 if total > 0 else -1.0
    size, pulling, moved = _pulling(signs, gradient, sign, excess, target)
    count = int(moved.searchsorted(excess))
    before = moved[count - 1] if count else 0.0
    if count < len(moved) and moved[count] - excess < excess - before:
        count += 1                                  # overshooting a little leaves it nearer
    signs[pulling[:count]] *= -1.0
    rest = total - sign * (moved[count - 1] if count else 0.0) - sign * target   # from the aim
    gaps = np.abs(rest - 2.0 * signs[:size] * gradient[:size])   # 2·part: what flipping an entry takes off
    best = int(gaps.argmin())
    if gaps[best] < abs(rest):
        signs[best] *= -1.0


def _pulling(signs: np.ndarray, gradient: np.ndarray, sign: float, excess: float, target: float):
    """(size, pulling, moved): the fewest leading entries (``BLOCK``, 4·``BLOCK``, … or all) among
    which those pulling Σ signs·∇E away from 0 (its ``sign``, ±1) by at most ``target``
    (``pulling``) can together move it by ``excess``, else, where all those together cannot, the
    same among the entries that pull by any amount (too few small entries: any that pull);
    ``moved[k]`` is what flipping the first k + 1 of them takes off (2|part| each: the part times
    2·``sign``). Each entry's part is formed once for both searches."""
    parts = signs[:0]
    for largest in (target, np.inf):
        size = min(len(signs), BLOCK)
        while True:
            if len(parts) < size:
                parts = signs[:size] * gradient[:size]
            part = parts[:size]
            away = (part > 0) & (part <= largest) if sign > 0 else (part < 0) & (part >= -largest)
            pulling = away.nonzero()[0]
            moved = part[pulling]
            moved *= 2.0 * sign
            moved.cumsum(out=moved)
            if len(moved) and moved[-1] >= excess:
                return size, pulling, moved
            if size == len(signs):
                break
            size = min(len(signs), 4 * size)
    return size, pulling, moved


class Directions:
    """One quantity's ``DIRECTIONS`` random unit directions v (drawn from ``rng``), its step (no
    entry moves farther than its own step allows), and the inputs of layer ``probe.start`` for
    copies moved by s·v.

    With ``affine`` (what the probe moves reaches layer ``start`` through a layer affine in it),
    layer ``start``'s input at θ + s·v is y + (s/h)·d, d = y(θ + h·v) − y the change at the step h,
    a line (``finite.line_differences``): one run of that layer per direction, not per step; d
    rounds by ε|y| as each copy y(θ + s·v) would, and s/h is exactly ±1 or ±½."""

    def __init__(self, probe: Probe, rng: np.random.Generator, eps: float, affine: bool):
        self.probe = probe
        stacked, self.analytic = sharp_directions(rng, probe.analytic.reshape(-1))   # 0, v and ∇E·v
        vectors = stacked[1:]
        self.step = probe.smallest_step(eps)
        self.change = None
        # the directions themselves only where copies are formed from them (all quantities' are
        # drawn before any runs, so an affine one keeps just its output's change: fc weights' are large)
        self.vectors = vectors if not affine or probe.penalty is not None else None
        if affine:   # θ + 0 and θ + h·v, formed over the directions where they are not kept
            at = stacked if self.vectors is None else stacked.copy()
            at[1:] *= self.step
            moved = probe.moved(at.reshape((-1,) + probe.values.shape), overwrite=self.vectors is None)
            self.change = moved[1:] - moved[0]

    def moves(self, items: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """s_k · v_{items[k]} for each copy k, in the quantity's shape."""
        return (steps[:, None] * self.vectors[items]).reshape((-1,) + self.probe.values.shape)

    def perturbed(self, items: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """The inputs of layer ``start`` for copies moved by s_k · v_{items[k]} (not ``affine``)."""
        return self.probe.moved(self.moves(items, steps))

    def finer(self, evaluator: Evaluator, items: np.ndarray, step: float) -> Differences:
        """The differences of directions ``items`` alone at ``step`` (a second look at a failure,
        ``second_look``)."""
        h = np.full(len(items), step)
        penalty = None if self.probe.penalty is None else (lambda k, steps: self.penalty(items[k], steps))
        if self.change is not None:   # the change at ``step``: at the quantity's step scaled (by a power of 2)
            return line_differences(evaluator, h, [(self.probe.start, self.change[items] * (step / self.step))],
                                    penalty)
        return central_differences(evaluator, self.probe.start, h, lambda k, steps: self.perturbed(items[k], steps),
                                   penalty=penalty)

    def penalty(self, items: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """How much each copy moves the L2 penalty (0 for a quantity without one)."""
        if self.probe.penalty is None:
            return np.zeros(len(items))
        return self.probe.penalty.moved(self.moves(items, steps))


def together(parts: list[Directions], method: str):
    """``(items, steps) → array``: item ``k·DIRECTIONS + i`` is direction i of ``parts[k]``, each
    part's ``method`` (perturbed or penalty) giving its items' rows of one array."""
    def run(items: np.ndarray, steps: np.ndarray) -> np.ndarray:
        owner, local = np.divmod(items, DIRECTIONS)
        if len(parts) == 1:
            return getattr(parts[0], method)(local, steps)
        out = None
        for k, part in enumerate(parts):
            mine = owner == k
            if mine.any():
                rows = getattr(part, method)(local[mine], steps[mine])
                out = np.empty((len(items),) + rows.shape[1:]) if out is None else out
                out[mine] = rows
        return out
    return run


def check_directions(evaluator: Evaluator, probes: list[Probe], user_shapes, eps, rtol, atol,
                     rng: np.random.Generator, affine: list[bool]) -> list[QuantityResult]:
    """Directional derivatives along a few random unit directions v: ∇E·v against the quotient,
    for each of ``probes`` (``affine``: see ``Directions``). The directions are drawn probe by
    probe. Those of probes that move their first re-run layer along a line run as one batch of
    lines (``finite.line_differences``: each joins the others where their layers meet); the
    copies of the other probes that start at the same layer run as one batch."""
    along = [Directions(probe, rng, eps, moves_affinely) for probe, moves_affinely in zip(probes, affine)]
    results = [None] * len(probes)
    for members in _batches(along):
        judged = _judge_together(evaluator, [along[k] for k in members], [user_shapes[k] for k in members],
                                 eps, rtol, atol)
        for k, result in zip(members, judged):
            results[k] = result
    return results


def _batches(along: list[Directions]) -> list[list[int]]:
    """The positions of the quantities whose copies run together: all that move along lines, then
    the others by the layer their copies start at."""
    batches = {"lines": []}
    for k, part in enumerate(along):
        batches.setdefault("lines" if part.change is not None else part.probe.start, []).append(k)
    return [members for members in batches.values() if members]


def _judge_together(evaluator: Evaluator, parts: list[Directions], user_shapes, eps, rtol,
                    atol) -> list[QuantityResult]:
    """The directional checks of ``parts``, quantities that all move along lines, or whose copies
    all start at the same layer: their copies run as one batch, each quantity judged on its own
    ``DIRECTIONS`` of them."""
    regularized = any(part.probe.penalty is not None for part in parts)
    steps = np.repeat([part.step for part in parts], DIRECTIONS)
    penalty = together(parts, "penalty") if regularized else None
    if parts[0].change is not None:
        diffs = line_differences(evaluator, steps, [(part.probe.start, part.change) for part in parts], penalty)
    else:
        diffs = central_differences(evaluator, parts[0].probe.start, steps, together(parts, "perturbed"),
                                    penalty=penalty)
    return [_judge_directions(evaluator, part, user_shape, diffs.along(np.arange(m * DIRECTIONS, (m + 1) * DIRECTIONS),
                                                                   np.ones(DIRECTIONS)), eps, rtol, atol)
            for m, (part, user_shape) in enumerate(zip(parts, user_shapes))]   # factor 1: the directions as they are


def _judge_directions(evaluator: Evaluator, part: Directions, user_shape, diffs: Differences, eps, rtol,
                      atol) -> QuantityResult:
    """One quantity's verdict on its directions' differences, with a second look at failures."""
    zero = zero_gradient(evaluator, part.probe, eps, part.step)
    significant = significant_gradient(evaluator, part.probe, zero)
    return second_look(
        lambda settled: judge(part.probe.quantity, user_shape, part.analytic, settled, (DIRECTIONS,), rtol, atol,
                              method="fast", zero=zero, significant=significant),
        diffs, lambda items, finer: part.finer(evaluator, items, part.step / finer))


def delta_probe(model: Model, trace, grads, index: int, shortcuts: bool = True) -> Probe:
    """Probe ∂E/∂(output of layer ``index``).

    After a fused loss the reported ∂E/∂y of the final softmax/sigmoid comes from the logits; a
    finite difference can only move the stored, rounded y, so it is compared with the plain
    formula at that y (the two differ by the rounding of y, ε/(1−y) relative near y = 1).
    ``shortcuts``: as for ``probes.input_probe``.
    """
    net = model.network
    analytic = grads.outputs[net.names[index]]
    if net.fused and index == len(net.layers) - 1:
        analytic = net.output_grad(trace.output, model.target)
    return output_probe(net, trace, index, analytic, shortcuts)


def probes_for(model: Model, trace, grads, wrt, shortcuts: bool = True) -> tuple[list[Probe], list[Probe]]:
    """The gradient probes (input and parameters) and delta probes (layer outputs) asked for
    (``shortcuts=False``: without the entry-by-entry speed-ups, for --fast)."""
    net = model.network
    everything = {"input": lambda: input_probe(net, trace, model.params, grads.input, shortcuts=shortcuts)}
    for name in model.params:
        everything[name] = (lambda n=name: param_probe(net, trace, model.params, n, grads.params[n],
                                                       shortcuts=shortcuts))
    layers = {name: (lambda i=i: delta_probe(model, trace, grads, i, shortcuts)) for i, name in enumerate(net.names)}
    if not wrt:
        return [make() for make in everything.values()], []
    chosen, deltas = [], []
    for name in wrt:
        bare = value_of(name)
        if bare in everything:
            chosen.append(everything[bare]())
        elif bare in layers:
            deltas.append(layers[bare]())
        else:
            from ..spec.nodes import suggest
            allowed = list(everything) + net.names
            raise UnknownQuantity(f"--wrt {name}: no such quantity{suggest(bare, allowed)} "
                                  f"(choose from {', '.join(allowed)})")
    return chosen, deltas


class Progress:
    """Tells ``report(advance, total)`` how many perturbed copies each batch ran and how many the
    check plans in all (the plan grows if the per-layer delta checks become necessary, and by the
    copies of a second look at failures, ``second_look``, as they run)."""

    def __init__(self, report, fast: bool):
        self.report, self.fast, self.total, self.done = report, fast, 0, 0

    def plan(self, probes: list[Probe]) -> None:
        """Count the copies ``probes`` will run: four per entry (or shared unit), or per direction."""
        self.total += sum(run_copies(p.runs, self.fast) for p in probes)

    def advance(self, count: int) -> None:
        self.done += count
        self.total = max(self.total, self.done)
        if self.report is not None:
            self.report(count, self.total)


class QuantityChecker:
    """Checks quantities against one unperturbed run: every entry, or with ``fast`` random
    directions; each result carries the quantity's place in the spec."""

    def __init__(self, model: Model, evaluator: Evaluator, eps: float, rtol: float, atol: float,
                 fast: bool, seed: int):
        self.model, self.evaluator = model, evaluator
        self.eps, self.rtol, self.atol, self.fast = eps, rtol, atol, fast
        self.rng = np.random.default_rng(seed) if fast else None   # numpy.random costs a small check ~8 ms

    def __call__(self, probes: list[Probe]) -> list[QuantityResult]:
        """The results of ``probes``, in order (with ``fast`` their directions run together, as lines
        or by start layer: ``check_directions``); the probes of a value as one layer reads it
        (``Probe.reader``) run through that reader's view (``Evaluator.read_by``)."""
        results = [None] * len(probes)
        for reader in dict.fromkeys(probe.reader for probe in probes):
            members = [k for k, probe in enumerate(probes) if probe.reader == reader]
            for k, result in zip(members, self.run(self.evaluator.read_by(reader), [probes[k] for k in members])):
                results[k] = result
        return results

    def run(self, evaluator: Evaluator, probes: list[Probe]) -> list[QuantityResult]:
        """The results of ``probes``, whose copies ``evaluator`` runs."""
        shapes = [self.model.user_shapes[probe.quantity] for probe in probes]
        if self.fast:
            results = check_directions(evaluator, probes, shapes, self.eps, self.rtol, self.atol, self.rng,
                                       [self.moves_affinely(probe) for probe in probes])
        else:
            results = [check_entries(evaluator, probe, shape, self.eps, self.rtol, self.atol)
                       for probe, shape in zip(probes, shapes)]
        for result in results:
            result.line, result.column = self.model.places.get(result.quantity, (None, None))
        return results

    def moves_affinely(self, probe: Probe) -> bool:
        """Whether the probe moves its first re-run layer's input along a line: it moves that value
        itself (a layer's output, the input where the first layer is re-run), or reaches it through
        a layer affine in what it moves (a parameter of conv or fc, the input through a first
        layer linear in it)."""
        net = self.model.network
        if probe.quantity in self.model.params:
            return net.layers[probe.start - 1].affine_in_params
        return probe.quantity != "input" or probe.start == 0 or net.layers[0].linear_in_input


def given(value, default):
    """``value``, or ``default`` where the caller left it None."""
    return default if value is None else value


def check_model(model: Model, *, eps: float | None = None, rtol: float | None = None,
                atol: float | None = None, wrt=(), fast: bool = False, deltas: bool = False,
                seed: int = 0, progress=None, max_work: float | None = None) -> SpecResult:
    """Check every gradient (or those in ``wrt``), the per-layer deltas when needed, and ``expect``.

    A check estimated (``work.check_work``) to take more than ``max_work`` multiply-adds is refused
    (``TooMuchWork``); the per-layer deltas that a failure calls for run only within it too.

    ``progress(advance, total)``, if given, hears how many perturbed copies each batch ran and how
    many the check needs in all (the total grows if per-layer delta checks become necessary).
    """
    max_work = given(max_work, DEFAULT_MAX_WORK)
    work = check_work(model.network, wrt, fast, deltas)
    refuse_beyond(work, max_work, model.path)
    with checker_threads():   # one BLAS thread: the checker's products are small (cnngrad.threads)
        trace = model.forward()
        model.loss(trace)   # raises if the loss is not finite: nothing to difference
        grads = model.backward(trace)
        finite_upstream_sum(model, trace)
        gradient_probes, delta_probes = probes_for(model, trace, grads, wrt, shortcuts=not fast)
        copies = Progress(progress, fast)
        evaluator = Evaluator(model.network, model.params, model.target, trace,
                              magnitude=rounding_magnitude(model, trace, grads, recompute=fast),
                              progress=copies.advance)
        check = QuantityChecker(model, evaluator, given(eps, DEFAULT_EPS), given(rtol, DEFAULT_RTOL),
                                given(atol, DEFAULT_ATOL), fast, seed)
        copies.plan(gradient_probes + delta_probes)
        gradients = check(gradient_probes)
        delta_results = check(delta_probes)
        if deltas or deltas_fit_after_failure(model, gradients, work, fast, max_work):
            delta_results = check_every_delta(model, trace, grads, check, copies)

        def parts(value: int):   # only where faulty_layer needs them, and within max_work
            if not reader_parts_fit(model, value, check_work(model.network, wrt, fast, True), fast, max_work):
                return None
            return check_reader_parts(model, trace, grads, check, copies, value)
        faulty = faulty_layer(model, gradients, delta_results, parts)
    expectations, first_wrong, first_wrong_layer = check_expectations(model, trace, grads)
    passed = all(q.passed for q in gradients + delta_results) and all(e.passed for e in expectations)
    return SpecResult(spec=model.path, name=model.name, passed=passed, gradients=gradients,
                      expect=expectations, deltas=delta_results,
                      faulty_layer=faulty, first_wrong=first_wrong,
                      first_wrong_layer=first_wrong_layer, notes=list(model.notes))


def deltas_fit_after_failure(model: Model, gradients: list[QuantityResult], work: float, fast: bool,
                             max_work: float) -> bool:
    """Which layer is wrong: a gradient failed, and checking every backpropagated layer's delta
    as well still fits within ``max_work``."""
    if not any(q.status == "failed" for q in gradients):
        return False
    layers = model.network.names[:backpropagated_layers(model)]
    return work + check_work(model.network, layers, fast) <= max_work


def check_every_delta(model: Model, trace, grads, check: QuantityChecker, copies: Progress) -> list[QuantityResult]:
    """Which layer is wrong: ∂E/∂(each backpropagated layer's output), from the loss back."""
    probes = [delta_probe(model, trace, grads, i, shortcuts=not check.fast)
              for i in reversed(range(backpropagated_layers(model)))]
    copies.plan(probes)
    return check(probes)


def check_reader_parts(model: Model, trace, grads, check: QuantityChecker, copies: Progress,
                       value: int) -> list[tuple[str, QuantityResult]]:
    """Which reader of value ``value`` is wrong: each reader j's part of its delta, J_jᵀ δ_j (j's
    backward of its own output's delta), against the differences of E with the value moved as j
    alone reads it (``reader_probe``); (reader name, result) in the order the readers run."""
    net = model.network
    probes = [reader_probe(net, trace, value, j,
                           net.read_part(j, value, grads.outputs[net.names[j]], trace.caches[j],
                                         net.params_of(j, model.params)))
              for j in dict.fromkeys(net.consumers[value])]
    copies.plan(probes)
    return [(net.names[probe.reader], result) for probe, result in zip(probes, check(probes))]


def reader_parts_fit(model: Model, value: int, spent: float, fast: bool, max_work: float) -> bool:
    """Whether checking each reader's part of value ``value``'s delta (as many checks of that
    value as it has readers) still fits within ``max_work`` after the ``spent`` work."""
    net = model.network
    each = check_work(net, [net.value_name(value)], fast)
    return spent + len(set(net.consumers[value])) * each <= max_work


def check_expectations(model: Model, trace, grads):
    """The spec's ``expect`` entries against the values of the check's own passes (``trace``,
    ``grads``), and where a wrong one first went wrong (``diagnose``): (results, first wrong
    quantity, its layer), the latter two None if all hold."""
    values = model.values(trace=trace, grads=grads) if model.expect else {}
    expectations = [expect_check.verify(e, values[e.quantity]) for e in model.expect]
    if all(e.passed for e in expectations):
        return expectations, None, None
    from ..diagnose import explain_failures   # only then: where it went wrong, and why
    return (expectations, *explain_failures(model, model.expect, expectations))


def rounding_magnitude(model: Model, trace, grads, recompute: bool = False) -> np.ndarray:
    """S per start layer: how much E moves, to first order, when every value the perturbed copies
    compute is off by one rounding of the size of the terms it sums,
        S[start] = T + Σ |y ⊙ δ| of layer start − 1 + Σ_{layers k ≥ start} Σ M_k ⊙ |δ_k|,
    M_k the Σ |terms| behind each output of layer k (Σ |W||a| + |b| for fc, even where the terms
    cancel; 0 for an exact one such as relu) and δ_k = ∂E/∂y_k; T the loss's own terms
    (``loss_terms``). Layers before ``start`` are not re-run (their rounding is the same in every
    copy); the output of layer start − 1 is formed as y + s · ∂y/∂θ (one rounding of y), or with
    ``recompute`` (--fast) by that layer's forward (M), and the input as x + s·v (one rounding of
    every entry; the full check's x ± h is exact). A fused loss reads the last layer's input, not
    its output, so that output is left out. E here is the data loss: the copies leave out the L2
    penalty, adding only its exact change."""
    net = model.network
    with np.errstate(invalid="ignore", over="ignore"):
        terms = loss_terms(net, trace, model.target)
        formed_input = _nansum(np.abs(model.input * grads.input)) if recompute else 0.0
        if not net.layers:   # a loss-only example: the input is the output the loss reads
            return np.array([terms + _nansum(np.abs(trace.output * grads.input))])
    layers = len(net.layers)
    inside, formed = np.zeros(layers + 1), np.zeros(layers + 1)
    with np.errstate(all="ignore"):
        for k in range(layers - (1 if net.fused else 0)):
            delta = np.abs(grads.outputs[net.names[k]])
            size = net.layers[k].term_magnitude(trace.inputs[k], trace.outputs[k], net.params_of(k, model.params))
            inside[k] = _nansum(size * delta)
            formed[k] = inside[k] if recompute else _nansum(np.abs(trace.outputs[k]) * delta)
    after = np.cumsum(inside[::-1])[::-1]              # after[k] = Σ_{j ≥ k} inside[j]
    before = np.concatenate([[formed_input], formed[:-1]])   # before[start] = formed[start − 1]
    with np.errstate(over="ignore"):                  # sizes past float64 are inf: nothing verified
        return terms + before + after


def loss_terms(net, trace, target) -> float:
    """Σ |terms| the loss adds up, whose rounding every copy's E carries: |E| for the losses whose
    terms share one sign, Σ |t ⊙ y| for ``none``'s Σ t·y (whose terms may cancel, after a layer
    that rounds nothing itself: a flatten, a relu)."""
    if net.loss.label == "none":
        return _nansum(np.abs(net.repeated(target, len(trace.output)) * trace.output))
    return abs(float(net.objective(trace, target)[0]))


def _nansum(values: np.ndarray) -> float:
    """``float(np.nansum(values))``, without its copy of ``values`` where no entry is NaN: the plain
    sum is then the same sum, bit for bit."""
    total = float(values.sum())
    return total if total == total else float(np.nansum(values))


def finite_upstream_sum(model: Model, trace) -> None:
    """With ``loss: none`` the check differences E = Σ upstream_grad · output, which ``Model.loss``
    does not compute; if it overflows there is nothing to difference: an error, as for a loss."""
    if model.network.loss.label != "none":
        return
    with np.errstate(all="ignore"):
        value = float(model.network.objective(trace, model.target)[0])
    if not np.isfinite(value):
        raise NonFiniteError(f"{model.path}: loss: none: E = Σ upstream_grad · output, which check "
                             f"differences, is {value}: the sum overflowed float64; scale upstream_grad "
                             f"or the output down")


def backpropagated_layers(model: Model) -> int:
    """How many layers the backward pass runs through: all but a final softmax/sigmoid whose
    input gradient the fused loss gives directly."""
    return len(model.network.layers) - (1 if model.network.fused else 0)


def faulty_layer(model: Model, gradients, deltas, parts=None) -> str | None:
    """The first layer, counting back from the loss, whose backward disagrees with the differences.

    If ∂E/∂(output of layer k) is right but ∂E/∂(output of layer k−1), or a parameter gradient of
    layer k, is wrong, layer k's backward is at fault; a wrong gradient where backprop starts
    (the last output, or the fused activation's input) blames the loss. In a branched network a
    value with a wrong delta whose readers all got right ones names its reader; if several layers
    read it, ``parts(value)`` gives each reader's part of that delta checked apart, (name, result)
    in reader order (``check_reader_parts``), and the reader whose part disagrees is named: if
    several do, the one nearest the loss (the last to run); none without ``parts`` (or when it
    gives None: beyond max_work) or when no part disagrees.
    None when not every backpropagated layer's delta was checked, or nothing disagrees.
    """
    network = model.network
    names = network.names[:backpropagated_layers(model)]
    below_ok = _values_ok(gradients, deltas, names)
    if below_ok is None:
        return None
    if not below_ok[-1]:
        return "loss"
    bad_params = layers_with_wrong_parameters(gradients)
    for k in reversed(range(len(names))):   # from the loss back: the first layer given a right delta
        if not below_ok[k + 1]:                # that hands back a wrong one (the errors before only follow)
            continue
        if names[k] in bad_params:
            return names[k]
        value = _wrong_read_value(network, k, below_ok)
        if value is not None:
            return names[k] if network.consumers[value] == [k] else _wrong_reader(parts, value)
    return None


def _wrong_reader(parts, value: int) -> str | None:
    """The reader of ``value`` nearest the loss whose part of its delta disagrees (``parts``, in
    reader order), or None (no parts measured, or none disagrees)."""
    measured = parts(value) if parts is not None else None
    wrong = [name for name, result in measured or () if result.disagrees()]
    return wrong[-1] if wrong else None


def _values_ok(gradients, deltas, names: list[str]) -> list[bool] | None:
    """below_ok[v]: the delta of value v is right (0 the input, k + 1 layer k's output; Network.reads);
    below_ok[-1] is the gradient where backprop starts. None when a layer's delta was not checked."""
    delta_ok = {q.quantity: not q.disagrees() for q in deltas}
    if any(name not in delta_ok for name in names):
        return None
    return [input_gradient_ok(gradients)] + [delta_ok[name] for name in names]


def _wrong_read_value(network, k: int, below_ok: list[bool]) -> int | None:
    """The first value layer ``k`` reads whose delta is wrong though every reader of it was handed a
    right one (so a reader's backward is at fault), or None."""
    for value in network.reads[k]:
        if not below_ok[value] and all(below_ok[reader + 1] for reader in network.consumers[value]):
            return value
    return None


def input_gradient_ok(gradients) -> bool:
    """∂E/∂input agrees with its differences (or was not checked)."""
    return not any(q.quantity == "input" and q.disagrees() for q in gradients)


def layers_with_wrong_parameters(gradients) -> set[str]:
    """The layers a parameter gradient of which disagrees with its differences."""
    return {q.quantity.rsplit(".", 1)[0] for q in gradients if q.disagrees() and q.quantity != "input"}

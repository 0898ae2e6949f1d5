"""Where a user's wrong values went wrong, and which classic mistake reproduces each.

For every failed expect value, in the chain's order: recompute it from the user's own value of
the nearest quantity before it (or from the chain's start). If that value is itself wrong and the
recomputation gives the user's numbers, the error only came along (``propagated``); if not it
entered on the way (``introduced``: a right value before it explains no error), and every
mistake of the catalogue is tried at every step on the way, the rest done right. Those that
reproduce every entry within the value's tolerance are its diagnosis, best first; none means
none is claimed. A backward step that read a forward value the user gave wrong is tried through
theirs and through the right one (a typo they did not compute with).
"""
from __future__ import annotations

import numpy as np

from .. import quantities
from ..gradcheck.expect import allowed_error, entry_tolerance
from ..gradcheck.results import Diagnosis
from ..record import Record
from .catalogue import CATALOGUE, Site
from .chain import Chain

SIGN_SAMPLES = 4     # random upstream changes by which a given value's rounding is carried along
EQUAL_SHARE = 1e-6   # mistakes reproducing a value this close (times its tolerance) rank as equal


class Match(Record):
    """A mistake that reproduces a value: the diagnosis and the quantity its step makes."""

    __slots__ = ("diagnosis", "node", "rank")

    def __init__(self, diagnosis: Diagnosis, node: str, rank: tuple):
        self.diagnosis, self.node, self.rank = diagnosis, node, rank


def explain_failures(model, expectations, results) -> tuple[str | None, str | None]:
    """Fill in ``origin`` and ``diagnosis`` of each failed result (``results[i]`` checks
    ``expectations[i]``); return the first quantity where an error entered and the layer whose
    step made it (``loss`` for the loss's; None for a value the spec gives), or (None, None)."""
    chain = Chain(model)
    given, rounding, wrong = _given(chain, expectations, results)
    chain.use_given(given, wrong)
    entries = [entry for expectation, result in zip(expectations, results) if not result.passed
               for entry in _entry(chain, expectation, result, given, rounding, wrong)]
    if not entries:
        return None, None
    node, shown = min(entries, key=lambda place: chain.order.get(place[0], -1))   # what the spec gives first
    step = chain.steps.get(node)
    return shown, None if step is None else (chain.layer_name(step) or "loss")


def _given(chain: Chain, expectations, results) -> tuple[dict, dict, set]:
    """The user's whole, finite values of the chain's quantities (the first of each), to recompute
    later ones from: {node: value}, {node: its rounding} (both internal), and the nodes that failed."""
    given, rounding, wrong = {}, {}, set()
    for expectation, result in zip(expectations, results):
        node = chain.name(expectation.quantity)
        if expectation.index is None and result.note is None and node in chain.right \
                and node not in given and np.all(np.isfinite(expectation.values)):   # no JSON null
            given[node] = chain.internal(node, expectation.values)
            right = chain.user(node, chain.right[node])
            rounding[node] = chain.internal(node, _rounding(expectation, right))
            if not result.passed:
                wrong.add(node)
    return given, rounding, wrong


def _entry(chain: Chain, expectation, result, given, rounding, wrong) -> list[tuple[str, str]]:
    """Explain one failed value: [(node, name shown)] where its error entered, or [] when it
    only came along."""
    node = chain.name(expectation.quantity)
    if result.note is not None or node not in chain.steps:   # a given value (the input, a
        result.origin = "introduced"                        # parameter) or a misshapen one
        return [(node, expectation.quantity)]
    entry = _explain(chain, node, expectation, result, given, rounding, wrong)
    if entry is None:
        return []
    return [(entry, expectation.quantity if entry == node else entry)]   # as the user wrote it (grad.output), if so


def _explain(chain: Chain, node: str, expectation, result, given, rounding, wrong) -> str | None:
    """Set the result's origin and diagnosis; the quantity where its error entered, if here.
    Backward steps that read a forward value the user gave wrong are tried through it (as they
    backpropagate their own numbers) and, unless that explains the error, through the right one (a
    value printed wrong, not computed with): propagated either way is propagated, else the
    mistakes found either way, best first."""
    propagated, matches = _through(chain, node, expectation, given, rounding, wrong)
    read = [] if propagated else chain.wrong_forward(chain.path(node, given)[1])
    if read:
        right_given = {name: value for name, value in given.items()
                       if name not in wrong or quantities.is_gradient(name)}
        with chain.through_right_forward():
            propagated, more = _through(chain, node, expectation, right_given, rounding, wrong)
        matches = _merged(matches, more, read)
    result.origin = "propagated" if propagated else "introduced"
    if propagated:
        return None
    result.diagnosis = [match.diagnosis for match in matches]
    return matches[0].node if matches else node


def _through(chain: Chain, node: str, expectation, given, rounding, wrong) -> tuple[bool, list]:
    """Recompute ``node`` from the user's nearest earlier value in ``given``: (True, []) when
    that gives the user's numbers and the recomputation read a wrong value (only a wrong upstream
    value can pass an error on: from right ones, or the chain's start, right by definition, the
    error entered on the way, however far that value's rounding carries); else (False, the
    mistakes that give them, best first)."""
    parent, steps = chain.path(node, given)
    start = given[parent] if parent in given else chain.right[parent]
    right = chain.user(node, chain.right[node])
    expected = np.asarray(expectation.values, dtype=np.float64)
    allowed = _allowed(expectation, right, expected)
    recomputed = chain.run(steps, start)
    if parent in given:
        allowed = allowed + _carried(chain, node, steps, start, recomputed, rounding[parent], expectation)
    read_wrong = parent in wrong or any(side in wrong for step in steps for side in chain.side_inputs(step))
    if read_wrong and _reproduces(chain, node, recomputed, expectation, expected, allowed) is not None:
        return True, []
    return False, _mistakes(chain, node, steps, start, given.get(node), expectation, expected, allowed)


def _merged(own: list, through_right: list, read: list[str]) -> list:
    """The mistakes found through the user's forward values and through the right ones, one per
    mistake and layer (the closer; the user's own on a tie), best first; one from the right ones
    says so, naming the wrong values ``read`` it did not use."""
    names = " and ".join(read)
    note = f"(from the right {names}, not the {names} given)" if len(read) == 1 else \
        f"(from the right {names}, not those given)"
    found = {(m.diagnosis.mistake, m.diagnosis.layer): m for m in own}
    for match in through_right:
        key, d = (match.diagnosis.mistake, match.diagnosis.layer), match.diagnosis
        if key not in found or d.max_abs_error < found[key].diagnosis.max_abs_error:
            found[key] = Match(Diagnosis(d.mistake, d.layer, d.max_abs_error, f"{d.message} {note}"),
                               match.node, match.rank)
    return sorted(found.values(), key=lambda match: match.rank)


def _carried(chain, node, steps, start, recomputed, tolerance, expectation) -> np.ndarray:
    """How far the upstream value's own tolerance (a hand-written value's rounding) can move the
    recomputed one: twice the largest move over a few upstream changes of ±tolerance, entry
    by entry (a change of random signs is about 1.7 standard deviations of a rounding error)."""
    if not np.any(tolerance):
        return 0.0
    rng = np.random.default_rng(0)
    moved = np.zeros(np.shape(recomputed))
    for _ in range(SIGN_SAMPLES):
        signs = rng.choice((-1.0, 1.0), size=np.shape(start))
        moved = np.maximum(moved, np.abs(chain.run(steps, start + signs * tolerance) - recomputed))
    moved = chain.user(node, 2 * moved)
    return moved[expectation.index] if expectation.index is not None else moved


def _rounding(expectation, right: np.ndarray) -> np.ndarray:
    """How far a given value may be from the one its writer went on with: a hand-written value's
    rounding (its tolerance); a value from code is the one the code used, up to its printing:
    rtol of each entry (its atol·scale forgives cancellation against cnngrad's value, and would
    let 1/p of a p of 1e-26 be anything)."""
    if expectation.code is None or expectation.tolerance is not None:
        return entry_tolerance(expectation, right)
    return expectation.code[0] * np.abs(np.asarray(expectation.values, dtype=np.float64))


def _allowed(expectation, right: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Each entry's tolerance, by ``gradcheck.expect``'s rule (``allowed_error``); unlike
    ``verify``, an exact value (tolerance 0) gets SLACK of its own size, not the quantity's."""
    actual = right[expectation.index] if expectation.index is not None else right
    return allowed_error(entry_tolerance(expectation, actual), expected, np.abs(expected))


def _reproduces(chain, node, value, expectation, expected, allowed) -> float | None:
    """The largest |difference| when ``value`` (engine layout) gives the user's numbers, else None."""
    if value is None or not np.all(np.isfinite(value)):
        return None
    value = chain.user(node, value)
    if expectation.index is not None:
        value = value[expectation.index]
    error = np.abs(value - expected)
    return float(error.max(initial=0.0)) if np.all(error <= allowed) else None


def shows_nothing(values) -> bool:
    """Whether a user's numbers are zeros everywhere: what a value never computed gives too, so
    no mistake that gives zeros can be told from it, and none is claimed."""
    return not np.any(np.asarray(values, dtype=np.float64))


def _mistakes(chain, node, steps, start, target, expectation, expected, allowed) -> list:
    """Every catalogue mistake, made at each step of ``steps``, that gives the user's numbers,
    best first: by the largest difference left (to two digits; differences below a millionth of
    the tolerance, rounding, count as equal), then layer-specific mistakes before generic ones.
    None for numbers that show nothing (``shows_nothing``)."""
    upstream, found = start, {}
    if shows_nothing(expected):
        return []
    equal = EQUAL_SHARE * float(np.max(allowed, initial=0.0))
    with np.errstate(all="ignore"):
        for place, step in enumerate(steps):
            right = chain.apply(step, upstream)
            last = place == len(steps) - 1
            site = Site(chain, step, upstream, right, target if last else None)
            for order, mistake in enumerate(CATALOGUE):
                if not mistake.applies(site, last):
                    continue
                for error, message in _reproducing(mistake, site, node, steps[place + 1:], expectation,
                                                   expected, allowed):
                    key = (mistake.id, step.index)
                    if key in found and found[key].diagnosis.max_abs_error <= error:
                        continue
                    layer = chain.layer_name(step)
                    found[key] = Match(Diagnosis(mistake.id, layer, error, message), step.node,
                                       (float(f"{max(error, equal):.1e}"), order, -place))
            upstream = right
    return sorted(found.values(), key=lambda match: match.rank)


def _reproducing(mistake, site, node, rest, expectation, expected, allowed):
    """(largest |difference|, message) for each variant of ``mistake`` made at ``site.step`` that,
    carried through the ``rest`` of the steps done right, gives the user's numbers."""
    chain, step = site.chain, site.step
    for value, message in mistake.variants(site):
        if mistake.kinds is not None:   # the layer's part: a branch's other parts added
            value = chain.completed(step, value)
        if value.shape != site.right.shape:
            continue
        error = _reproduces(chain, node, chain.run(rest, value), expectation, expected, allowed)
        if error is not None:
            yield error, message

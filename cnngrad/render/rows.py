"""The words and rows every format shows, as plain text: summaries, check tables, verdict lines.

Formats differ only in layout (rich, Markdown, LaTeX); what a row says is decided once, here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .blocks import Formula, Note, Problem, Table, Value, Verdict, Where
from .grid import format_array, index_text, nonfinite_text, number_text
from ..quantities import gradient_of, shape_text

if TYPE_CHECKING:                 # an annotation only: check output needs no report records
    from .reports import ForwardReport

SUMMARY_HEADER = ("layer", "kind", "output shape", "params")
GRADIENT_HEADER = ("gradient", "shape", "max abs error", "max rel error", "resolution", "kinks", "status")
EXPECT_HEADER = ("expect", "max abs error", "tolerance", "status")
ENTRY_HEADER = ("index", "analytic", "numeric", "abs error", "status", "left", "right")
FAILING_HEADER = ("index", "expected", "computed", "difference")
DIAGNOSIS_HEADER = ("diagnosis", "origin", "mistake", "at", "why")
EXPLAIN_HEADER = ("", "term", "factors", "value")
KINK_NOTE = ("errors and resolution are over the entries that are not kinks; a kink passes when its "
             "analytic value lies between its one-sided quotients")
ENTRY_LIMIT = 10          # entries listed per quantity; the rest are counted
MAX_NAMED = 5             # specs that could not run named in the total line; the rest are counted
PASSED, FAILED, UNVERIFIED = "passed", "FAILED", "unverified"
STATUS_WORDS = {"passed": PASSED, "failed": FAILED, "unverified": UNVERIFIED}


def summary_rows(report: ForwardReport) -> list[list[str]]:
    """The model summary: the input, each layer with its output shape and parameter count, a total."""
    rows = [["input", "", shape_text(np.shape(report.input)), "0"]]
    rows += [[layer.name, kind_text(layer), shape_text(layer.shape), str(layer.params)] for layer in report.layers]
    rows.append(["total", "", "", str(sum(layer.params for layer in report.layers))])
    return rows


def kind_text(layer) -> str:
    """``conv``, or for a layer that reads other than the layer before it what it reads:
    ``conv ← input``, ``add ← conv2 + input``, ``concat ← b1, b2``."""
    if not layer.branched:
        return layer.kind
    return f"{layer.kind} ← {(' + ' if layer.kind == 'add' else ', ').join(layer.reads)}"


def loss_line(loss_kind: str | None, value: str | None) -> str:
    """``loss (kind) = value``, or why there is no loss: ``loss: none`` (``value`` None), or no
    loss in the spec (``loss_kind`` None)."""
    if loss_kind is None:
        return "loss: none given (backward and check need loss: and target:)"
    if value is None:
        return "loss: none (upstream_grad is ∂E/∂output)"
    return f"loss ({loss_kind}) = {value}"


def loss_text(loss_kind: str | None, loss, precision: int) -> str:
    """:func:`loss_line` for a loss number (or None), formatted at ``precision``."""
    return loss_line(loss_kind, None if loss is None else number_text(loss, precision))


def heading(spec: str, name: str | None) -> str:
    return f"{spec} — {name}" if name else spec


def update_title(param: str, lr: float) -> str:
    return f"{param} − {lr:g}·{gradient_of(param)}"


def gradient_row(result) -> list[str]:
    """One checked gradient (a ``QuantityResult``)."""
    quantity = f"{result.quantity} (directional)" if result.method == "fast" else result.quantity
    resolution = "—" if result.resolution is None else error_text(result.resolution)
    return [quantity, shape_text(result.shape), error_text(result.max_abs_error),
            error_text(result.max_rel_error), resolution, str(result.kinks), STATUS_WORDS[result.status]]


def expect_row(result) -> list[str]:
    """One ``expect:`` entry (an ``ExpectResult``)."""
    return [result.quantity, error_text(result.max_abs_error), error_text(result.tolerance),
            PASSED if result.passed else FAILED]


def expect_detail(result) -> str | None:
    """For a failed ``expect``, where it is worst: expected and computed value there."""
    if result.passed:
        return None
    if result.note:
        return f"{result.quantity}: {result.note}"
    where, expected, actual = result.quantity, result.expected, result.actual
    if result.worst is not None and np.ndim(expected) > 0:
        where += index_text(result.worst)
        expected, actual = np.asarray(expected)[result.worst], np.asarray(actual)[result.worst]
    return f"{where}: expected {value_text(expected)}, computed {value_text(actual)}"


def failing_rows(result) -> tuple[list[list[str]], int]:
    """The failing entries of an ``expect`` value (at most ``ENTRY_LIMIT``), and how many more."""
    rows = [[index_text(entry.index) if entry.index else "", value_text(entry.expected),
             value_text(entry.computed), value_text(entry.difference)]
            for entry in result.failing[:ENTRY_LIMIT]]
    return rows, max(len(result.failing) - ENTRY_LIMIT, 0)


def diagnosis_rows(results) -> list[list[str]]:
    """What ``cnngrad.diagnose`` found for the failed ``expect`` values: where each error came
    from and every classic mistake that reproduces it, best first (or that none does)."""
    rows = []
    for result in results:
        if result.passed or result.origin is None:
            continue
        if result.origin == "propagated":
            rows.append([result.quantity, "propagated", "", "", "follows from your own earlier values"])
        elif not result.diagnosis:
            rows.append([result.quantity, "introduced", "", "", _undiagnosed(result.expected)])
        for k, found in enumerate(result.diagnosis):
            rows.append([result.quantity if k == 0 else "", "introduced" if k == 0 else "", found.mistake,
                         found.layer or "loss", found.message])
    return rows


def _undiagnosed(expected) -> str:
    """Why a value that entered wrong names no mistake (``diagnose.findings.shows_nothing``)."""
    from ..diagnose.findings import shows_nothing    # here: the diagnosis's modules load only with a diagnosis
    if expected is not None and shows_nothing(expected):
        return "zeros everywhere: no mistake can be told from a value never computed"
    return "no known mistake reproduces these numbers"


def entry_rows(result) -> tuple[list[list[str]], int]:
    """The entries of a gradient that failed or sit on a kink worth a look (``notable``; at most
    ``ENTRY_LIMIT``), and how many more there are. Kinks show their one-sided difference
    quotients as left and right."""
    rows = []
    for entry in result.flagged(ENTRY_LIMIT):
        index = f"direction {entry.index[0]}" if result.method == "fast" else index_text(entry.index)
        sides = [value_text(entry.left), value_text(entry.right)] if entry.status == "kink" else ["", ""]
        rows.append([index, value_text(entry.analytic), value_text(entry.numeric),
                     error_text(entry.abs_error), entry.status, *sides])
    return rows, result.flagged_count() - len(rows)


def spec_line(result) -> str:
    """One spec's verdict: what was checked and, on failure, what failed and where."""
    if result.passed:
        return f"{result.spec}: {PASSED} ({', '.join(_checked(result))})"
    failed = _failed(result)
    if result.faulty_layer:
        failed.append(f"faulty layer: {result.faulty_layer}")
    return f"{result.spec}: {UNVERIFIED if unverified(result) else FAILED} ({'; '.join(failed)})"


def _checked(result) -> list[str]:
    """What a spec checked, counted: gradients, expect values, layer deltas, kink entries."""
    kinks = sum(q.kinks for q in result.gradients)
    counts = ((len(result.gradients), "gradient", None), (len(result.expect), "expect value", None),
              (len(result.deltas), "layer delta", None), (kinks, "kink entry", "kink entries"))
    return [_count(n, singular, plural) for n, singular, plural in counts if n]


def _failed(result) -> list[str]:
    """How many of each kind failed or were unverified, e.g. ``1 of 3 gradients failed``."""
    groups = ((result.gradients, "gradients"), (result.expect, "expect values"), (result.deltas, "layer deltas"))
    return [f"{sum(_status(r) == word for r in group)} of {len(group)} {label} {word}"
            for group, label in groups for word in ("failed", "unverified")
            if any(_status(r) == word for r in group)]


def _status(result) -> str:
    """``passed``, ``failed`` or ``unverified``; an expect value has no unverified state."""
    return getattr(result, "status", "passed" if result.passed else "failed")


def unverified(result) -> bool:
    """A spec that did not pass only because some gradient was too coarsely resolved to verify."""
    if result.passed or result.error is not None or not all(e.passed for e in result.expect):
        return False
    return all(q.status != "failed" for q in result.gradients + result.deltas)


def check_blocks(result):
    """What a spec's check shows, in order, as format-free blocks (``render.blocks``) for a renderer
    to lay out: the spec's notes, tables, notes, problems (a failed expect's detail) and the verdict."""
    for note in result.notes:
        yield Note(note)
    yield from _gradient_blocks(result)
    if result.expect:
        yield from _expect_blocks(result)
    for quantity in result.gradients + result.deltas:
        yield from _entry_blocks(quantity)
    yield Verdict(spec_line(result), result.passed)


def _gradient_blocks(result):
    """The gradient and layer-delta tables, the kink note, and why each unverified one is."""
    if result.gradients:
        yield Table(GRADIENT_HEADER, [gradient_row(q) for q in result.gradients], (2, 3, 4, 5))
    if result.deltas:
        yield Note("layer deltas ∂E/∂(layer output), each layer's backward alone")
        yield Table(GRADIENT_HEADER, [gradient_row(q) for q in result.deltas], (2, 3, 4, 5))
    if any(q.kinks for q in result.gradients + result.deltas):
        yield Note(KINK_NOTE)
    for quantity in result.gradients + result.deltas:
        if quantity.status == "unverified":
            yield Problem(f"{quantity.quantity}: unverified: {_why_unverified(quantity)}")


def _why_unverified(quantity) -> str:
    """Why a gradient's finite differences could not verify it: the sums behind E overflowed,
    they resolve too little (then a larger --eps helps), or some entries' own differences cancel
    far below their terms or disagree between their two steps."""
    resolution = quantity.difference_resolution
    if resolution is not None and not np.isfinite(resolution):
        return "the sums behind E exceed float64, so the rounding of its finite differences is beyond measure"
    if resolution is not None and resolution >= 1e-2:
        return (f"its finite differences resolve no relative error below {error_text(resolution)} "
                f"(a check must resolve 1e-02); give a larger --eps (default 1e-4)")
    return (f"the finite differences of {_count(quantity.unresolved(), 'entry', 'entries')} resolve no "
            f"relative error of their own value below 1e-02 (the sums behind E cancel far below their "
            f"terms, or the loss bends within one step: its steps h and h/2 disagree); another --eps "
            f"may resolve them")


def _expect_blocks(result):
    """The expect table, each failed value's detail, the diagnosis and the first wrong quantity."""
    yield Table(EXPECT_HEADER, [expect_row(e) for e in result.expect], (1, 2))
    for expected in result.expect:
        yield from _expect_failure(expected)
    diagnosis = diagnosis_rows(result.expect)
    if diagnosis:
        yield Table(DIAGNOSIS_HEADER, diagnosis, ())
    if result.first_wrong:
        layer = result.first_wrong_layer
        made = "" if layer is None else ", made by the loss" if layer == "loss" else f", made by {layer}"
        yield Problem(f"first wrong quantity: {result.first_wrong}{made}")


def _entry_blocks(quantity):
    """The entries of one gradient to look at, and how many quiet kinks were left out."""
    entries, more = entry_rows(quantity)
    if entries:
        yield Note(f"entries of {quantity.quantity} to look at")
        yield Table(ENTRY_HEADER, entries, (1, 2, 3, 5, 6))
        if more:
            yield Note(f"… and {more} more")
    quiet = quantity.quiet_kinks()
    if quiet:
        yield Note(f"{_count(quiet, 'kink')} of {quantity.quantity} not listed: the analytic values lie "
                   f"well inside their one-sided quotients (JSON lists every entry)")


def _expect_failure(result):
    """Blocks under the expect table for one failed value: its worst entry and every failing entry."""
    detail = expect_detail(result)
    if not detail:
        return
    yield Problem(detail)
    failing, more = failing_rows(result)
    if len(result.failing) > 1:
        yield Note(f"failing entries of {result.quantity}")
        yield Table(FAILING_HEADER, failing, (1, 2, 3))
        if more:
            yield Note(f"… and {more} more")


def explain_blocks(explained, precision: int):
    """What ``explain`` shows, as format-free blocks (``render.blocks``): the value, the formula,
    where its symbols point, notes and the table of the sum, term by term (past the cap, the
    largest and one line for the rest), its zero terms counted, its total last."""
    yield Value(f"{explained.quantity} = {number_text(explained.value, precision)}")
    yield Formula(explained.formula)
    if explained.where:
        yield Where("where " + ", ".join(f"{symbol} = {name}" for symbol, name in explained.where), explained.where)
    for note in explained.notes:
        yield Note("".join(number_text(part, precision) if isinstance(part, float) else part for part in note))
    if explained.more:
        yield Note(f"the {len(explained.terms)} largest of {len(explained.terms) + explained.more} nonzero "
                   "terms, largest first; the others summed")
    yield Table(EXPLAIN_HEADER, _sum_rows(explained, precision), (3,))


def _sum_rows(explained, precision: int) -> list[list[str]]:
    """The rows of explain's sum: one per term shown, one for the rest, one counting the zero
    terms, and the total."""
    values = format_array([term.value for term in explained.terms] + [explained.more_total, explained.total],
                          precision)
    body = [["+" if k else "", " · ".join(text for text, _ in term.factors),
             " · ".join(number_text(value, precision) for _, value in term.factors), values[k]]
            for k, term in enumerate(explained.terms)]
    if explained.more:
        body.append(["+", f"… and {explained.more} more terms summing to", "", values[-2]])
    if explained.zeros:
        zeros = _count(explained.zeros, "term")
        body.append(["+", f"… and {zeros} that {'is' if explained.zeros == 1 else 'are'} 0"] if body
                    else ["", f"{zeros}, all 0"])
        body[-1] += ["", "0"]
    body.append(["=", explained.quantity, "", values[-1]])
    return body


def total_line(results) -> str:
    """All specs together: how many passed, failed, or could not run."""
    errors = sum(r.error is not None for r in results)
    passed = sum(r.passed for r in results)
    coarse = sum(map(unverified, results))
    parts = [f"{passed} passed", f"{len(results) - passed - errors - coarse} failed"]
    if coarse:
        parts.append(f"{coarse} unverified")
    if errors:
        names = [r.spec for r in results if r.error is not None]
        more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
        shown = ", ".join(names[:MAX_NAMED]) + more
        parts.append(f"{errors} could not run ({shown})")
    return f"{_count(len(results), 'spec')}: {', '.join(parts)}"


def error_text(value: float) -> str:
    return f"{value:.2e}" if np.isfinite(value) else nonfinite_text(value)


def value_text(value) -> str:
    return f"{float(value):.10g}" if np.isfinite(value) else nonfinite_text(float(value))


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"

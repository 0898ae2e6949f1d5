"""The words and rows every format shows, as plain text: summaries, check tables, verdict lines.

Formats differ only in layout (rich, Markdown, LaTeX); what a row says is decided once, here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .grid import format_array, index_text, nonfinite_text, number_text, shape_text

if TYPE_CHECKING:                 # an annotation only: check output needs no report records
    from .reports import ForwardReport

SUMMARY_HEADER = ("layer", "kind", "output shape", "params")
GRADIENT_HEADER = ("gradient", "shape", "max abs error", "max rel error", "kinks", "status")
EXPECT_HEADER = ("expect", "max abs error", "tolerance", "status")
ENTRY_HEADER = ("index", "analytic", "numeric", "abs error", "status", "left", "right")
EXPLAIN_HEADER = ("", "term", "factors", "value")
ENTRY_LIMIT = 10          # entries listed per quantity; the rest are counted
MAX_NAMED = 5             # specs that could not run named in the total line; the rest are counted
PASSED, FAILED = "passed", "FAILED"


def summary_rows(report: ForwardReport) -> list[list[str]]:
    """The model summary: the input, each layer with its output shape and parameter count, a total."""
    rows = [["input", "", shape_text(np.shape(report.input)), "0"]]
    rows += [[layer.name, layer.kind, shape_text(layer.shape), str(layer.params)] for layer in report.layers]
    rows.append(["total", "", "", str(sum(layer.params for layer in report.layers))])
    return rows


def loss_line(loss_kind: str, value: str | None) -> str:
    """``loss (kind) = value``, or for ``loss: none`` (``value`` None) why there is no loss."""
    if value is None:
        return "loss: none (upstream_grad is ∂E/∂output)"
    return f"loss ({loss_kind}) = {value}"


def heading(spec: str, name: str | None) -> str:
    return f"{spec} — {name}" if name else spec


def update_title(param: str, lr: float) -> str:
    return f"{param} − {lr:g}·grad.{param}"


def gradient_row(result) -> list[str]:
    """One checked gradient (a ``QuantityResult``)."""
    quantity = f"{result.quantity} (directional)" if result.method == "fast" else result.quantity
    return [quantity, shape_text(result.shape), error_text(result.max_abs_error),
            error_text(result.max_rel_error), str(result.kinks), PASSED if result.passed else FAILED]


def expect_row(result) -> list[str]:
    """One ``expect:`` entry (an ``ExpectResult``)."""
    return [result.quantity, error_text(result.max_abs_error), error_text(result.tolerance),
            PASSED if result.passed else FAILED]


def expect_detail(result) -> str | None:
    """For a failed ``expect``, where it is worst: expected and computed value there."""
    if result.passed:
        return None
    where, expected, actual = result.quantity, result.expected, result.actual
    if result.worst is not None and np.ndim(expected) > 0:
        where += index_text(result.worst)
        expected, actual = np.asarray(expected)[result.worst], np.asarray(actual)[result.worst]
    return f"{where}: expected {value_text(expected)}, computed {value_text(actual)}"


def entry_rows(result) -> tuple[list[list[str]], int]:
    """The entries of a gradient that failed or sit on a kink (at most ``ENTRY_LIMIT``), and how
    many more there are. Kinks show their one-sided difference quotients as left and right."""
    listed = [entry for entry in result.entries if entry.status != "ok"]
    rows = []
    for entry in listed[:ENTRY_LIMIT]:
        index = f"direction {entry.index[0]}" if result.method == "fast" else index_text(entry.index)
        sides = [value_text(entry.left), value_text(entry.right)] if entry.status == "kink" else ["", ""]
        rows.append([index, value_text(entry.analytic), value_text(entry.numeric),
                     error_text(entry.abs_error), entry.status, *sides])
    return rows, max(len(listed) - ENTRY_LIMIT, 0)


def spec_line(result) -> str:
    """One spec's verdict: what was checked and, on failure, what failed and where."""
    kinks = sum(q.kinks for q in result.gradients)
    counts = ((len(result.gradients), "gradient", None), (len(result.expect), "expect value", None),
              (len(result.deltas), "layer delta", None), (kinks, "kink entry", "kink entries"))
    checked = [_count(n, singular, plural) for n, singular, plural in counts if n]
    if result.passed:
        return f"{result.spec}: {PASSED} ({', '.join(checked)})"
    groups = ((result.gradients, "gradients"), (result.expect, "expect values"), (result.deltas, "layer deltas"))
    failed = [f"{sum(not r.passed for r in group)} of {len(group)} {label} failed"
              for group, label in groups if not all(r.passed for r in group)]
    if result.faulty_layer:
        failed.append(f"faulty layer: {result.faulty_layer}")
    return f"{result.spec}: {FAILED} ({'; '.join(failed)})"


def check_blocks(result):
    """What a spec's check shows, in order, as format-free blocks for a renderer to lay out:
    ``("table", header, rows, numeric_columns)``, ``("note", text)``, ``("problem", text)``
    (a failed expect's detail) and ``("verdict", text, passed)``."""
    if result.gradients:
        yield "table", GRADIENT_HEADER, [gradient_row(q) for q in result.gradients], (2, 3, 4)
    if result.deltas:
        yield "note", "layer deltas ∂E/∂(layer output), each layer's backward alone"
        yield "table", GRADIENT_HEADER, [gradient_row(q) for q in result.deltas], (2, 3, 4)
    if result.expect:
        yield "table", EXPECT_HEADER, [expect_row(e) for e in result.expect], (1, 2)
        for detail in map(expect_detail, result.expect):
            if detail:
                yield "problem", detail
    for quantity in result.gradients + result.deltas:
        entries, more = entry_rows(quantity)
        if entries:
            yield "note", f"entries of {quantity.quantity} to look at"
            yield "table", ENTRY_HEADER, entries, (1, 2, 3, 5, 6)
            if more:
                yield "note", f"… and {more} more"
    yield "verdict", spec_line(result), result.passed


def explain_blocks(explained, precision: int):
    """What ``explain`` shows, as format-free blocks: ``("value", text)``, ``("formula", text)``,
    ``("note", text)`` and ``("table", header, rows, numeric_columns)``: the sum, term by term,
    its zero terms counted, its total last."""
    yield "value", f"{explained.quantity} = {number_text(explained.value, precision)}"
    yield "formula", explained.formula
    if explained.where:
        yield "note", "where " + ", ".join(f"{symbol} = {name}" for symbol, name in explained.where)
    for note in explained.notes:
        yield "note", "".join(number_text(part, precision) if isinstance(part, float) else part for part in note)
    values = format_array([term.value for term in explained.terms] + [explained.total], precision)
    body = [["+" if k else "", " · ".join(text for text, _ in term.factors),
             " · ".join(number_text(value, precision) for _, value in term.factors), values[k]]
            for k, term in enumerate(explained.terms)]
    if explained.zeros:
        zeros = _count(explained.zeros, "term")
        body.append(["+", f"… and {zeros} that {'is' if explained.zeros == 1 else 'are'} 0"] if body
                    else ["", f"{zeros}, all 0"])
        body[-1] += ["", "0"]
    body.append(["=", explained.quantity, "", values[-1]])
    yield "table", EXPLAIN_HEADER, body, (3,)


def total_line(results) -> str:
    """All specs together: how many passed, failed, or could not run."""
    errors = sum(r.error is not None for r in results)
    passed = sum(r.passed for r in results)
    parts = [f"{passed} passed", f"{len(results) - passed - errors} failed"]
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

"""``check --format github``: GitHub Actions workflow commands, one ``::error`` annotation per failure.

Each annotation points at the spec's own text: an invalid spec at the node its error names, a
failed ``expect`` entry at its key, a failed gradient at the value (or layer) it belongs to. The
plain check report follows for the log, and, when ``$GITHUB_STEP_SUMMARY`` names a file, the
Markdown report is appended to it (the job's summary page). Escaping follows GitHub's runner:
``%``, CR and LF in a message; also ``:`` and ``,`` in a property.
"""
from __future__ import annotations

import os
import re

from . import markdown, rows, table, write_report
from .grid import index_text
from ..quantities import gradient_of

SUMMARY_VARIABLE = "GITHUB_STEP_SUMMARY"
_PLACE = re.compile(r"(?P<line>\d+):(?P<column>\d+): (?P<message>.*)\Z", re.DOTALL)


def check(results) -> str:
    """The annotations of every spec, then the plain report; appends the Markdown summary."""
    summary = os.environ.get(SUMMARY_VARIABLE)
    if summary:
        write_report(summary, markdown.check(results) + _errors_markdown(results), "a")
    lines = [line for result in results for line in annotations(result)]
    return "".join(line + "\n" for line in lines) + table.plain_check(results)


def annotations(result) -> list[str]:
    """The ``::error`` commands for one spec's result (none when it passed)."""
    if result.error is not None:
        return [_spec_error(result)]
    out = []
    for checked in result.gradients + result.deltas:
        if not checked.passed:
            out.append(command("error", result.spec, checked.line, checked.column,
                               f"gradient {gradient_of(checked.quantity)} failed", _gradient_message(result, checked)))
    for expected in result.expect:
        if not expected.passed:
            detail = rows.expect_detail(expected)
            message = (f"{detail} (max abs error {rows.error_text(expected.max_abs_error)}, "
                       f"tolerance {rows.error_text(expected.tolerance)})")
            out.append(command("error", result.spec, expected.line, expected.column,
                               f"expect {expected.quantity} failed", message))
    return out


def command(kind: str, file: str, line: int | None, column: int | None, title: str, message: str) -> str:
    """``::kind file=…,line=…,col=…,title=…::message``; line and column left out when unknown."""
    properties = [("file", file)]
    if line is not None:
        properties += [("line", str(line)), ("col", str(column))]
    properties.append(("title", title))
    listed = ",".join(f"{key}={escape_property(value)}" for key, value in properties)
    return f"::{kind} {listed}::{escape_data(message)}"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _errors_markdown(results) -> str:
    """The specs that could not run, for the summary (the Markdown report leaves them to stderr)."""
    errors = [result.error for result in results if result.error is not None]
    if not errors:
        return ""
    return "\n**Could not run:**\n\n" + "".join(f"- {_code(error)}\n" for error in errors)


def _code(text: str) -> str:
    """``text`` as Markdown inline code, fenced by more backticks than it holds in a row."""
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"


def _spec_error(result) -> str:
    """A spec that could not run, at the line and column its error names (``FILE:L:C: …``)."""
    error, prefix = result.error, result.spec + ":"
    place = _PLACE.match(error[len(prefix):].lstrip()) if error.startswith(prefix) else None
    if place is None:
        message = error[len(prefix):].lstrip() if error.startswith(prefix) else error
        return command("error", result.spec, None, None, "cnngrad could not check this spec", message)
    return command("error", result.spec, int(place["line"]), int(place["column"]),
                   "invalid spec", place["message"])


def _gradient_message(result, checked) -> str:
    """How many entries failed, the worst one's analytic and numeric values, the faulty layer."""
    worst = checked.worst_failing()
    text = f"{gradient_of(checked.quantity)}: {checked.failing_count()} of {checked.entry_count()} " \
           f"{'directions' if checked.method == 'fast' else 'entries'} disagree with finite differences"
    if worst is not None:
        where = f"direction {worst.index[0]}" if checked.method == "fast" else index_text(worst.index) if worst.index else "the value"
        text += (f"; worst at {where}: analytic {rows.value_text(worst.analytic)}, numeric "
                 f"{rows.value_text(worst.numeric)}")
    if result.faulty_layer:
        text += f" (faulty layer: {result.faulty_layer})"
    return text

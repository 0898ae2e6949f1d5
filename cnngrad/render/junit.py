"""``check --junit-xml FILE``: the results as JUnit XML, which most CI systems read as test reports.

One ``testsuite`` (``cnngrad check``) with a ``testcase`` per spec: ``name`` the spec's file name,
``classname`` its folder with ``/`` as ``.`` (``tests/errata`` → ``tests.errata``), ``file`` its
path. A spec that did not pass has a ``failure`` (its verdict as the message, its report as the
text); one that could not run has an ``error`` (its one-line error).
"""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

from . import rows, table, write_report

SUITE = "cnngrad check"
# characters XML 1.0 does not allow even escaped (a spec's name may hold "\x01", written "\x01")
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def check(results) -> str:
    """The XML document for ``results`` (``SpecResult`` records), UTF-8 declared."""
    failures = sum(not r.passed and r.error is None for r in results)
    errors = sum(r.error is not None for r in results)
    counts = {"tests": str(len(results)), "failures": str(failures), "errors": str(errors), "skipped": "0"}
    root = ET.Element("testsuites", {"name": SUITE, **counts})
    suite = ET.SubElement(root, "testsuite", {"name": SUITE, **counts})
    for result in results:
        case = ET.SubElement(suite, "testcase", {"name": os.path.basename(result.spec) or result.spec,
                                                 "classname": classname(result.spec),
                                                 "file": result.spec})
        if result.error is not None:
            ET.SubElement(case, "error", {"message": result.error, "type": "error"}).text = result.error
        elif not result.passed:
            failure = ET.SubElement(case, "failure", {"message": rows.spec_line(result), "type": "check"})
            failure.text = table.plain_check([result], total=False)
    ET.indent(root)
    document = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + NOT_XML.sub("\ufffd", document) + "\n"


def classname(spec: str) -> str:
    """A spec's folder, dotted: ``configs/a.yaml`` → ``configs``; a spec in the current folder → ``.``."""
    folder = os.path.normpath(os.path.dirname(spec) or ".")
    dotted = folder.replace(os.sep, ".").replace("/", ".").strip(".")
    return dotted or "."


def write(path: str, results) -> None:
    write_report(path, check(results))

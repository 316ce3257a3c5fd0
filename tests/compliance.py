"""A pytest plugin that builds the compliance report from ``@pytest.mark.req`` marks.

For every requirement ID of shared/spec/REQUIREMENTS.md: which tests prove it and how they
ended in this run. Written to ``$FAOYAM_COMPLIANCE_REPORT`` (Markdown) when that is set;
``./test`` writes build/compliance-<database>.md.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

import pytest

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "REQUIREMENTS.md"

_marks: dict[str, list[str]] = defaultdict(list)
_outcomes: dict[str, str] = {}


def requirement_ids() -> list[str]:
    """IDs in the order the spec lists them (table rows and '- ID' bullets)."""
    if not SPEC.exists():
        return []
    text = SPEC.read_text(encoding="utf-8")
    ids = re.findall(r"^\| (A1|B1[ab]|B\d+|C\d|D\d|E\d|F\d) \|", text, re.M)
    ids += re.findall(r"^- ((?:CH|RET|SH|SEC|TP|XB|R|CHG|CT|CK)\d+)", text, re.M)
    return list(dict.fromkeys(ids))


def pytest_collection_modifyitems(items):
    for item in items:
        for m in item.iter_markers("req"):
            for rid in m.args:
                _marks[rid].append(item.nodeid)


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _outcomes[report.nodeid] = report.outcome


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    path = os.environ.get("FAOYAM_COMPLIANCE_REPORT")
    if not path:
        return
    ids = requirement_ids()
    lines = ["# Compliance report", "", f"Database: {os.environ.get('FAOYAM_TEST_DB', 'sqlite')}", "",
             "| requirement | tests | passed | status |", "|---|---|---|---|"]
    covered = 0
    for rid in ids + sorted(set(_marks) - set(ids)):
        tests = _marks.get(rid, [])
        passed = sum(1 for t in tests if _outcomes.get(t) == "passed")
        if tests and passed == len(tests):
            status, covered = "proved", covered + 1
        elif tests:
            status = "FAILING or skipped"
        else:
            status = "no test yet"
        lines.append(f"| {rid} | {len(tests)} | {passed} | {status} |")
    lines += ["", f"{covered} of {len(ids)} requirements proved by a passing test.", "", "## Tests by requirement", ""]
    for rid in sorted(_marks):
        lines.append(f"- **{rid}**: " + ", ".join(f"`{t}`" for t in _marks[rid]))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

"""--junit FILE: the gate as a JUnit XML report, the format GitLab merge requests, Jenkins, Azure DevOps,
CircleCI and Buildkite show natively.

<testsuites> holds a <testsuite> of the gated results (each result and `overall` a <testcase>, with a
<failure> giving the gate's reason where it failed; a pred in the baseline but missing now is a failed
case too) and, with --group-by, a <testsuite> of the groups (informational: gates check results, so a
group case never fails). The signature and version are <properties> of each suite.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import IO

from smoothl1_cli.errors import printable
from smoothl1_cli.render import short
from smoothl1_cli.report import Report, result_names


def write_junit(report: Report, out: IO[bytes]) -> None:
    """Write `report`'s gate as JUnit XML (UTF-8; control characters in names escaped, as XML 1.0 requires)."""
    root = ET.Element("testsuites", name="smoothl1")
    suites = [_results_suite(report)] + ([_groups_suite(report)] if report.group_by is not None else [])
    for suite in suites:
        root.append(suite)
    _count(root, suites)
    ET.indent(root)
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
    out.write(b"\n")


def _results_suite(report: Report) -> ET.Element:
    suite = _suite(report, "smoothl1")
    paired: list[tuple[str, str, float | None]] = [(r.pred, r.target, r.value) for r in report.all_results]
    if report.comparison is not None:
        paired += [(c.pred, c.target or "", None) for c in report.comparison.changes if c.verdict == "missing"]
    names = result_names([(pred, target) for pred, target, _ in paired])  # as the gate names them
    left = list(report.gate.failures)
    for name, (_, _, value) in zip(names, paired, strict=True):
        case = ET.SubElement(suite, "testcase", classname=f"smoothl1.{report.loss}", name=printable(name))
        mine = [f for f in left if f.startswith(f"{name}: ")]
        for failure in mine:
            left.remove(failure)
            _fail(case, failure)
        ET.SubElement(case, "system-out").text = "not in the current report" if value is None else f"value {value!r}"
    if left:  # a reason no case above claims (never expected): still shown, never lost
        case = ET.SubElement(suite, "testcase", classname=f"smoothl1.{report.loss}", name="gate")
        for failure in left:
            _fail(case, failure)
    return suite


def _fail(case: ET.Element, reason: str) -> None:
    ET.SubElement(case, "failure", message=printable(reason), type="smoothl1.gate").text = printable(reason)


def _groups_suite(report: Report) -> ET.Element:
    suite = _suite(report, f"smoothl1 by {printable(report.group_by or '')}")
    for group in report.groups:
        r = group.result
        case = ET.SubElement(
            suite, "testcase", classname=f"smoothl1.groups.{printable(report.group_by or '')}",
            name=f"{short(group.group)}: {printable(r.pred)} (target {printable(r.target)})",
        )  # fmt: skip
        ET.SubElement(case, "system-out").text = f"value {r.value!r}, count {r.summary.count}"
    return suite


def _suite(report: Report, name: str) -> ET.Element:
    suite = ET.Element("testsuite", name=name)
    properties = ET.SubElement(suite, "properties")
    for key, value in (("signature", report.signature), ("version", report.version)):
        ET.SubElement(properties, "property", name=key, value=value)
    return suite


def _count(root: ET.Element, suites: list[ET.Element]) -> None:
    """tests, failures, errors and skipped on each suite and on the whole, as the readers expect."""
    totals = {"tests": 0, "failures": 0}
    for suite in suites:
        cases = suite.findall("testcase")
        counts = {"tests": len(cases), "failures": sum(1 for case in cases if case.find("failure") is not None)}
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("errors", "0")
        suite.set("skipped", "0")
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("errors", "0")

"""CI integration: --junit (the XML GitLab, Jenkins, Azure DevOps, CircleCI and Buildkite read),
the compact markdown for PR comments, and the GitHub Action's script run against a loopback stand-in
for the GitHub REST API."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import reference_mean, run_command

TARGET = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
GOOD = [1.1, 2.0, 2.9, 4.2, 5.0, 6.1]  # mean loss about 0.005
BAD = [2.0, 0.0, 3.5, 4.0, 8.0, 6.0]  # mean loss about 0.9
GROUPS = ["a", "b", "a", "b", "a", "b"]

# What the JUnit readers take (the Jenkins/Ant XSD that GitLab's parser follows): the elements and,
# for each, the attributes it must have.
JUNIT_CHILDREN = {
    "testsuites": {"testsuite"},
    "testsuite": {"properties", "testcase", "system-out", "system-err"},
    "properties": {"property"},
    "testcase": {"failure", "error", "skipped", "system-out", "system-err"},
}
JUNIT_REQUIRED = {
    "testsuites": {"tests", "failures"},
    "testsuite": {"name", "tests", "failures", "errors"},
    "property": {"name", "value"},
    "testcase": {"name", "classname"},
    "failure": {"message"},
}


def check_junit_shape(root: ET.Element) -> None:
    """The document is what the readers parse: the nesting, the required attributes, and counts that add up."""
    assert root.tag == "testsuites"
    for element in root.iter():
        assert {child.tag for child in element} <= JUNIT_CHILDREN.get(element.tag, set()), element.tag
        assert JUNIT_REQUIRED.get(element.tag, set()) <= set(element.attrib), (element.tag, element.attrib)
    suites = root.findall("testsuite")
    for suite in suites:
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "")) == len(cases)
        assert int(suite.get("failures", "")) == sum(case.find("failure") is not None for case in cases)
    assert int(root.get("tests", "")) == sum(int(s.get("tests", "")) for s in suites)
    assert int(root.get("failures", "")) == sum(int(s.get("failures", "")) for s in suites)


def _cases(suite: ET.Element) -> dict[str, ET.Element]:
    return {case.get("name", ""): case for case in suite.findall("testcase")}


def _properties(suite: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in suite.iter("property")}


@pytest.fixture
def data(write_table) -> Path:
    return write_table("csv", y=TARGET, good=GOOD, bad=BAD, g=GROUPS)


def test_junit_has_a_case_per_result_and_group_and_a_failure_with_the_reason(smoothl1_command, data, tmp_path):
    junit, saved = tmp_path / "junit.xml", tmp_path / "report.json"
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "-p", "good,bad", "--group-by", "g",
                       "--fail-above", "0.1", "--junit", junit, "-o", saved, "-f", "json")  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert reference_mean(BAD, TARGET) > 0.1 > reference_mean(GOOD, TARGET)
    report = json.loads(saved.read_text())
    root = ET.fromstring(junit.read_bytes())
    check_junit_shape(root)
    results, groups = root.findall("testsuite")
    assert _properties(results) == {"signature": report["signature"], "version": report["version"]}
    cases = _cases(results)
    assert set(cases) == {"good", "bad"}
    assert cases["good"].find("failure") is None
    failure = cases["bad"].find("failure")
    assert failure is not None
    assert [failure.get("message")] == report["gate"]["failures"]
    assert failure.get("message", "").startswith(f"bad: {reference_mean(BAD, TARGET)!r} > 0.1")
    assert cases["good"].findtext("system-out") == f"value {reference_mean(GOOD, TARGET)!r}"
    group_cases = _cases(groups)
    assert set(group_cases) == {f"{g}: {p} (target y)" for g in "ab" for p in ("good", "bad")}
    assert all(case.find("failure") is None for case in group_cases.values())  # gates check results only
    rows_a = [i for i, g in enumerate(GROUPS) if g == "a"]
    expected = reference_mean([BAD[i] for i in rows_a], [TARGET[i] for i in rows_a])
    assert group_cases["a: bad (target y)"].findtext("system-out") == f"value {expected!r}, count 3"


def test_junit_of_a_baseline_regression_and_a_missing_pred(smoothl1_command, write_table, tmp_path):
    before = write_table("csv", name="before", y=TARGET, good=GOOD, bad=GOOD, gone=GOOD)
    after = write_table("csv", name="after", y=TARGET, good=GOOD, bad=BAD)
    baseline, junit = tmp_path / "main.json", tmp_path / "junit.xml"
    assert run_command(smoothl1_command, "eval", before, "-t", "y", "-o", baseline, "-f", "json").returncode == 0
    done = run_command(smoothl1_command, "eval", after, "-t", "y", "--baseline", baseline, "--max-increase", "2%",
                       "--junit", junit, "-f", "json")  # fmt: skip
    assert done.returncode == 1, done.stderr
    failures = json.loads(done.stdout)["gate"]["failures"]
    root = ET.fromstring(junit.read_bytes())
    check_junit_shape(root)
    cases = _cases(root.find("testsuite"))  # type: ignore[arg-type]
    assert set(cases) == {"good", "bad", "gone"}
    assert cases["good"].find("failure") is None
    assert [cases[name].find("failure").get("message") for name in ("bad", "gone")] == failures  # type: ignore[union-attr]
    assert "exceeds the allowed increase of 2%" in failures[0]
    assert failures[1] == "gone: in the baseline but not in the current report"


def test_junit_is_well_formed_with_control_characters_in_names(smoothl1_command, write_table, tmp_path):
    """XML 1.0 cannot carry most control characters, even escaped: they are shown as Python writes them."""
    data = write_table("parquet", **{"y": TARGET, "m\x1b[31m\x01": BAD})
    junit = tmp_path / "junit.xml"
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "--fail-above", "0.1", "--junit", junit, "-q")
    assert done.returncode == 1
    root = ET.fromstring(junit.read_bytes())
    check_junit_shape(root)
    (case,) = root.iter("testcase")
    assert case.get("name") == "m\\x1b[31m\\x01"


def test_junit_that_would_overwrite_the_input_is_refused(smoothl1_command, data):
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "--junit", data)
    assert done.returncode == 2
    assert (
        done.stderr.decode()
        == f"Error: --junit {data} is the same file as input {data}: it would be overwritten; name another file\n"
    )


# ---------------------------------------------------------------- -f markdown-compact: the PR comment


def test_compact_markdown_has_the_verdict_and_the_comparison_only(smoothl1_command, write_table, tmp_path):
    before = write_table("csv", name="before", y=TARGET, good=GOOD, bad=GOOD)
    after = write_table("csv", name="after", y=TARGET, good=GOOD, bad=BAD, g=GROUPS)
    baseline = tmp_path / "main.json"
    assert run_command(smoothl1_command, "eval", before, "-t", "y", "-o", baseline, "-f", "json").returncode == 0
    done = run_command(smoothl1_command, "eval", after, "-t", "y", "-p", "good,bad", "--group-by", "g",
                       "--baseline", baseline, "-f", "markdown-compact")  # fmt: skip
    assert done.returncode == 1, done.stderr
    text = done.stdout.decode()
    good, bad = reference_mean(GOOD, TARGET), reference_mean(BAD, TARGET)
    assert text.startswith("**❌ smoothl1 gate failed**\n\n- bad: ")
    assert f"| good | {good:.6g} | {good:.6g} | 0 | +0% | ✅ ok |" in text
    change = f"{bad - good:.6g} | {(bad - good) / good * 100:+.3g}%"
    assert f"| bad | {good:.6g} | {bad:.6g} | {change} | ❌ regressed |" in text
    signature = json.loads(baseline.read_text())["signature"]
    assert text.rstrip().endswith(f"``{signature}`` · the full report (every statistic, worst rows, groups) "
                                  "is the JSON report (-o) and the job summary (-f markdown).")  # fmt: skip
    assert "Worst rows" not in text
    assert "By g" not in text
    assert len(text.splitlines()) == 12


def test_compact_markdown_without_a_baseline_lists_the_values(smoothl1_command, data):
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "-p", "good", "-f", "markdown-compact")
    assert done.returncode == 0, done.stderr
    assert f"| good | y | {reference_mean(GOOD, TARGET):.6g} | 6 |" in done.stdout.decode()


def test_compact_markdown_stays_below_60000_characters_with_a_pointer():
    from smoothl1_cli.render import compact_markdown

    changes = [{"pred": f"model_{i:05d}_" + "é" * 20, "target": "y", "baseline": 0.1, "current": 0.2,
                "change": 0.1, "relative_change": 1.0, "verdict": "regressed"} for i in range(3000)]  # fmt: skip
    failures = [f"{c['pred']}: 0.1 -> 0.2 exceeds the allowed increase of 0" for c in changes]
    report = {"gate": {"passed": False, "failures": failures}, "signature": "smooth_l1|beta:1",
              "baseline": {"max_increase": "0", "results": changes}}  # fmt: skip
    out = io.StringIO()
    compact_markdown(report, out)
    text = out.getvalue()
    assert len(text) < 59_000 < len(text.encode()) < 60_000  # characters (GitHub's unit) <= bytes
    assert text.endswith("more lines left out to stay under GitHub's 65,536-character comment limit; "
                         "see the JSON report (-o) for everything._\n")  # fmt: skip
    shown = text.splitlines()[:-2]
    assert all(line in ("", "**❌ smoothl1 gate failed**") or line.startswith("- model_") for line in shown)

"""Baseline gates: `eval --baseline/--max-increase` and `smoothl1 compare`, pass, fail and refuse.

The values behind every verdict come from conftest's float64 reference, and each data set is
built so the verdict is far from the tolerance's edge (no verdict hangs on rounding).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import eval_json, invoke, reference_mean, run_command

ROWS = 80
RNG = np.random.default_rng(11)
TARGET = RNG.normal(0.0, 2.0, ROWS)
# |d| < 0.9 everywhere, so every loss is 0.5 * d**2 and scaling d by sqrt(f) scales the mean by exactly f.
DIFF_A = RNG.uniform(-0.9, 0.9, ROWS)
DIFF_B = RNG.uniform(-0.9, 0.9, ROWS)


def _columns(scale_a: float = 1.0, scale_b: float = 1.0, **extra: Any) -> dict[str, Any]:
    """Target, two models whose mean loss is the baseline's times scale_a / scale_b, and a weight column."""
    return {
        "y": TARGET.tolist(),
        "model_a": (TARGET + DIFF_A * math.sqrt(scale_a)).tolist(),
        "model_b": (TARGET + DIFF_B * math.sqrt(scale_b)).tolist(),
        "w": np.linspace(0.5, 2.0, ROWS).tolist(),
        **extra,
    }


def _reference(columns: dict[str, Any], pred: str) -> float:
    return reference_mean(columns[pred], columns["y"])


BASE = _columns()
BASE_A, BASE_B = _reference(BASE, "model_a"), _reference(BASE, "model_b")
# model_a 1% better, model_b 1% worse: passes 2%; model_b 5% worse: fails 2% but, at about
# 0.007, passes an absolute 0.01; model_b 20% worse (about 0.03): fails both.
WITHIN = _columns(scale_a=0.99, scale_b=1.01)
FIVE_PERCENT = _columns(scale_b=1.05)
TWENTY_PERCENT = _columns(scale_b=1.20)


def test_the_data_sets_sit_far_from_each_tolerance():
    """Guards the verdicts below: increases relative to the baseline, from the reference alone."""
    assert 0.1 < BASE_A < 0.2
    assert 0.1 < BASE_B < 0.2
    assert _reference(WITHIN, "model_b") / BASE_B == pytest.approx(1.01, rel=1e-9)
    assert _reference(FIVE_PERCENT, "model_b") - BASE_B == pytest.approx(0.05 * BASE_B, rel=1e-9)
    assert 0.005 < 0.05 * BASE_B < 0.008 < 0.01 < 0.2 * BASE_B


@pytest.fixture
def baseline(write_table: Callable[..., Path], tmp_path: Path) -> Path:
    """`eval -o base.json` on the baseline data; its values checked against the reference."""
    data = write_table("csv", name="base_data", **BASE)
    path = tmp_path / "base.json"
    report = eval_json([data, "-t", "y", "-p", "model_a,model_b", "-o", path])
    saved = json.loads(path.read_text())
    assert saved == report
    values = {r["pred"]: r["value"] for r in saved["results"]}
    assert values["model_a"] == pytest.approx(BASE_A, rel=1e-12)
    assert values["model_b"] == pytest.approx(BASE_B, rel=1e-12)
    return path


def _values(report: dict[str, Any]) -> dict[str, float]:
    return {r["pred"]: r["value"] for r in report["results"]}


# ---------------------------------------------------------------- eval --baseline, installed command


def test_within_tolerance_passes_with_exit_0(baseline, write_table, smoothl1_command):
    current = write_table("csv", name="current", **WITHIN)
    done = run_command(smoothl1_command, "eval", current, "-t", "y", "-p", "model_a,model_b",
                       "--baseline", baseline, "--max-increase", "2%", "-f", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["gate"] == {"passed": True, "failures": []}
    changes = {c["pred"]: c for c in report["baseline"]["results"]}
    assert {pred: c["verdict"] for pred, c in changes.items()} == {"model_a": "ok", "model_b": "ok"}
    assert changes["model_a"]["baseline"] == pytest.approx(BASE_A, rel=1e-12)
    assert changes["model_a"]["current"] == pytest.approx(_reference(WITHIN, "model_a"), rel=1e-12)
    assert changes["model_a"]["relative_change"] == pytest.approx(-0.01, rel=1e-9)
    assert changes["model_b"]["relative_change"] == pytest.approx(0.01, rel=1e-9)
    assert changes["model_b"]["change"] == pytest.approx(0.01 * BASE_B, rel=1e-9)
    assert report["baseline"]["max_increase"] == "2%"


def test_beyond_tolerance_fails_with_exit_1_and_still_reports(baseline, write_table, smoothl1_command, tmp_path):
    current = write_table("csv", name="current", **FIVE_PERCENT)
    written = tmp_path / "current.json"
    done = run_command(smoothl1_command, "eval", current, "-t", "y", "-p", "model_a,model_b",
                       "--baseline", baseline, "--max-increase", "2%", "-f", "json", "-o", written)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert b"Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert json.loads(written.read_text()) == report  # printed and written, gate failure included
    new_b = _values(report)["model_b"]
    assert new_b == pytest.approx(_reference(FIVE_PERCENT, "model_b"), rel=1e-12)
    assert report["gate"]["passed"] is False
    [failure] = report["gate"]["failures"]  # model_a did not change: only model_b fails
    old_b = _values(json.loads(baseline.read_text()))["model_b"]
    assert failure.startswith("model_b: ")
    assert repr(old_b) in failure
    assert repr(new_b) in failure
    assert failure.index(repr(old_b)) < failure.index(repr(new_b))  # old, then new
    assert "2%" in failure
    verdicts = {c["pred"]: c["verdict"] for c in report["baseline"]["results"]}
    assert verdicts == {"model_a": "ok", "model_b": "regressed"}


def test_absolute_tolerance_passes_what_the_relative_one_fails(baseline, write_table, smoothl1_command):
    """A 5% increase of about 0.007: over 2%, under an absolute 0.01."""
    current = write_table("csv", name="current", **FIVE_PERCENT)
    args = ["eval", current, "-t", "y", "-p", "model_a,model_b", "--baseline", baseline, "-f", "json"]
    absolute = run_command(smoothl1_command, *args, "--max-increase", "0.01")
    assert absolute.returncode == 0, absolute.stderr
    report = json.loads(absolute.stdout)
    assert report["gate"]["passed"] is True
    assert report["baseline"]["max_increase"] == "0.01"
    relative = invoke([*args, "--max-increase", "2%"])
    assert relative.exit_code == 1


def test_absolute_tolerance_fails_a_larger_increase(baseline, write_table):
    current = write_table("csv", name="current", **TWENTY_PERCENT)
    result = invoke(["eval", current, "-t", "y", "-p", "model_a,model_b", "--baseline", baseline,
                     "--max-increase", "0.01", "-f", "json"])  # fmt: skip
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    [failure] = report["gate"]["failures"]
    assert failure.startswith("model_b: ")
    change = _reference(TWENTY_PERCENT, "model_b") - BASE_B
    assert {c["pred"]: c["change"] for c in report["baseline"]["results"]}["model_b"] == pytest.approx(change, rel=1e-9)


def test_without_max_increase_any_increase_fails(baseline, write_table):
    """--baseline alone allows an increase of 0: the 1% worse model_b fails, the better model_a passes."""
    current = write_table("csv", name="current", **WITHIN)
    result = invoke(["eval", current, "-t", "y", "-p", "model_a,model_b", "--baseline", baseline, "-f", "json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [f.split(":")[0] for f in report["gate"]["failures"]] == ["model_b"]


def test_the_same_data_passes_at_zero_tolerance(baseline, write_table):
    current = write_table("csv", name="current", **BASE)
    result = invoke(["eval", current, "-t", "y", "-p", "model_a,model_b", "--baseline", baseline,
                     "--max-increase", "0", "-f", "json"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    changes = json.loads(result.stdout)["baseline"]["results"]
    assert [(c["change"], c["verdict"]) for c in changes] == [(0.0, "ok"), (0.0, "ok")]


def test_a_pred_missing_from_the_current_report_fails(baseline, write_table, smoothl1_command):
    current = write_table("csv", name="current", **BASE)
    done = run_command(smoothl1_command, "eval", current, "-t", "y", "-p", "model_a",
                       "--baseline", baseline, "--max-increase", "2%", "-f", "json")  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    changes = {c["pred"]: c for c in report["baseline"]["results"]}
    assert changes["model_b"]["verdict"] == "missing"
    assert changes["model_b"]["current"] is None
    assert changes["model_b"]["baseline"] == pytest.approx(BASE_B, rel=1e-12)
    assert changes["model_a"]["verdict"] == "ok"
    [failure] = report["gate"]["failures"]
    assert failure.startswith("model_b: ")
    assert "not in the current report" in failure


def test_a_new_pred_passes_as_new(baseline, write_table):
    columns = {**BASE, "model_c": (TARGET + 0.5).tolist()}
    current = write_table("csv", name="current", **columns)
    result = invoke(["eval", current, "-t", "y", "-p", "model_a,model_b,model_c", "--baseline", baseline,
                     "--max-increase", "2%", "-f", "json"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    changes = {c["pred"]: c for c in report["baseline"]["results"]}
    assert changes["model_c"]["verdict"] == "new"
    assert changes["model_c"]["baseline"] is None
    assert changes["model_c"]["current"] == pytest.approx(0.125, rel=1e-12)  # 0.5 * 0.5**2 on every row
    assert report["gate"]["passed"] is True


def test_fail_above_and_baseline_list_both_failures(baseline, write_table):
    current = write_table("csv", name="current", **TWENTY_PERCENT)
    new_b = _reference(TWENTY_PERCENT, "model_b")
    limit = (BASE_A + new_b) / 2  # model_a (unchanged) passes it, the 20% worse model_b does not
    assert BASE_A < limit < new_b
    result = invoke(["eval", current, "-t", "y", "-p", "model_a,model_b", "--baseline", baseline,
                     "--max-increase", "2%", "--fail-above", repr(limit), "-f", "json"])  # fmt: skip
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    value_b = _values(report)["model_b"]
    assert value_b == pytest.approx(new_b, rel=1e-12)
    failures = report["gate"]["failures"]
    assert len(failures) == 2
    assert failures[0] == f"model_b: {value_b!r} > {limit!r}"  # --fail-above's
    assert failures[1].startswith(f"model_b: {_values(json.loads(baseline.read_text()))['model_b']!r} -> {value_b!r}")
    assert failures[1].endswith("exceeds the allowed increase of 2%")


def test_fail_above_alone_passes_when_the_baseline_gate_fails_only(baseline, write_table):
    """The two gates are independent: a generous --fail-above adds no failure to the baseline's one."""
    current = write_table("csv", name="current", **FIVE_PERCENT)
    result = invoke(["eval", current, "-t", "y", "-p", "model_a,model_b", "--baseline", baseline,
                     "--max-increase", "2%", "--fail-above", "1", "-f", "json"])  # fmt: skip
    assert result.exit_code == 1
    [failure] = json.loads(result.stdout)["gate"]["failures"]
    assert "allowed increase" in failure


# ---------------------------------------------------------------- refusals: exit 2


def _refusal_checks(stderr: str, baseline: Path, changed: str) -> None:
    assert stderr.startswith("Error: ")
    assert "Traceback" not in stderr
    old = json.loads(baseline.read_text())["signature"]
    assert old.startswith("smooth_l1|beta:1|reduction:mean|weights:none|nan:error|multioutput:elementwise|v:")
    assert f"baseline {old!r}" in stderr  # both signatures, each in full
    current_signature = stderr.split("current ")[1].strip()
    assert changed in current_signature
    assert current_signature != repr(old)
    assert str(baseline) in stderr


def test_a_baseline_of_other_settings_is_refused_by_the_command(baseline, write_table, smoothl1_command):
    current = write_table("csv", name="current", **BASE)
    done = run_command(smoothl1_command, "eval", current, "-t", "y", "-p", "model_a,model_b", "--beta", "0.5",
                       "--baseline", baseline, "--max-increase", "2%", "-f", "json")  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == b""
    _refusal_checks(done.stderr.decode(), baseline, "|beta:0.5|")


@pytest.mark.parametrize(
    ("options", "changed"),
    [
        (["--beta", "0.5"], "|beta:0.5|"),
        (["--loss", "huber"], "'huber|delta:1|"),
        (["--reduction", "sum"], "|reduction:sum|"),
        (["-w", "w"], "|weights:w|"),
        (["--nan-policy", "omit"], "|nan:omit|"),
    ],
)
def test_a_baseline_of_other_settings_is_refused(baseline, write_table, options, changed):
    current = write_table("csv", name="current", **BASE)
    result = invoke(["eval", current, "-t", "y", "-p", "model_a,model_b", *options,
                     "--baseline", baseline, "--max-increase", "2%", "-f", "json"])  # fmt: skip
    assert result.exit_code == 2
    assert result.stdout == ""
    _refusal_checks(result.stderr, baseline, changed)


def test_a_missing_baseline_file_is_refused(write_table, tmp_path, smoothl1_command):
    current = write_table("csv", name="current", **BASE)
    missing = tmp_path / "nowhere.json"
    done = run_command(smoothl1_command, "eval", current, "-t", "y", "--baseline", missing, "-f", "json")
    assert done.returncode == 2
    assert done.stderr.decode() == f"Error: {missing}: no such report file\n"


NOT_REPORTS = [
    ("this is not json\n", "not a JSON report"),
    ('{"loss": "smooth_l1"}', "not a smoothl1 JSON report"),
    ("[1, 2, 3]", "not a smoothl1 JSON report"),
    ('{"signature": "smooth_l1|beta:1", "results": "none"}', "not a smoothl1 JSON report"),
]


def test_a_baseline_that_is_not_json_is_refused(write_table, tmp_path, smoothl1_command):
    current = write_table("csv", name="current", **BASE)
    bad = tmp_path / "bad.json"
    bad.write_text(NOT_REPORTS[0][0])
    done = run_command(smoothl1_command, "eval", current, "-t", "y", "-p", "model_a", "--baseline", bad, "-f", "json")
    assert done.returncode == 2
    stderr = done.stderr.decode()
    assert stderr.startswith(f"Error: {bad}: not a JSON report")
    assert stderr.count("\n") == 1
    assert "Traceback" not in stderr
    assert done.stdout == b""


@pytest.mark.parametrize(("content", "says"), NOT_REPORTS)
def test_a_file_that_is_not_a_report_is_refused(reports, tmp_path, content, says):
    """The same loader serves eval --baseline and compare; compare's refusal opens no input file."""
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = invoke(["compare", bad, reports["five"]])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {bad}: {says}")
    assert result.stdout == ""


@pytest.mark.parametrize("gate", [["--baseline", "{missing}"], ["--baseline", "{base}", "--max-increase", "abc"]])
def test_a_refused_gate_closes_the_input_files(baseline, write_table, tmp_path, opened, gate):
    """The input is opened before the gate options are checked: a refusal must still close it."""
    current = write_table("csv", name="current", **BASE)
    args = [a.format(missing=tmp_path / "missing.json", base=baseline) for a in gate]
    result = invoke(["eval", current, "-t", "y", *args])
    assert result.exit_code == 2
    assert opened == [{"label": str(current), "closed": True}]


@pytest.mark.parametrize(
    "results",
    [[{"value": 0.1}], [{"pred": "model_a"}, {"pred": "model_b", "value": "0.1"}], [3], [{"pred": 1, "value": 0.1}]],
    ids=["no pred", "text value", "not an object", "pred not a name"],
)
def test_a_report_with_malformed_results_is_refused(baseline, write_table, tmp_path, results):
    """Same signature, but results a hand edit or another tool broke: an input error, never a crash (exit 3)."""
    broken = json.loads(baseline.read_text())
    broken["results"] = results
    bad = tmp_path / "broken.json"
    bad.write_text(json.dumps(broken))
    current = write_table("csv", name="current", **BASE)
    result = invoke(["eval", current, "-t", "y", "-p", "model_a,model_b", "--baseline", bad, "-f", "json"])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith(f"Error: {bad}: ")
    assert "internal error" not in result.stderr
    by_compare = invoke(["compare", bad, baseline])
    assert by_compare.exit_code == 2, by_compare.stderr
    assert by_compare.stderr.startswith(f"Error: {bad}: ")


def test_max_increase_without_baseline_is_a_usage_error(write_table, smoothl1_command):
    current = write_table("csv", name="current", **BASE)
    done = run_command(smoothl1_command, "eval", current, "-t", "y", "--max-increase", "2%")
    assert done.returncode == 2
    assert done.stderr.decode() == "Error: --max-increase needs --baseline REPORT to compare against\n"


def test_a_bad_tolerance_is_a_usage_error(baseline, write_table, smoothl1_command):
    tolerance = "-2%"
    current = write_table("csv", name="current", **BASE)
    done = run_command(smoothl1_command, "eval", current, "-t", "y", "--baseline", baseline,
                       "--max-increase", tolerance)  # fmt: skip
    assert done.returncode == 2
    stderr = done.stderr.decode()
    assert stderr.startswith("Error: --max-increase ")
    assert repr(tolerance) in stderr


@pytest.mark.parametrize("tolerance", ["abc", "-1", "-2%", "inf", "nan%"])
def test_compare_rejects_a_bad_tolerance(reports, tolerance):
    result = invoke(["compare", reports["base"], reports["five"], "--max-increase", tolerance])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --max-increase ")
    assert repr(tolerance) in result.stderr


# ---------------------------------------------------------------- smoothl1 compare


@pytest.fixture
def reports(baseline, write_table, tmp_path) -> dict[str, Path]:
    """The baseline and three saved current reports: within 2%, 5% worse, and model_b dropped."""
    out = {"base": baseline}
    for name, columns, preds in (
        ("within", WITHIN, "model_a,model_b"),
        ("five", FIVE_PERCENT, "model_a,model_b"),
        ("only_a", BASE, "model_a"),
    ):
        path = tmp_path / f"{name}.json"
        eval_json([write_table("csv", name=name, **columns), "-t", "y", "-p", preds, "-o", path])
        out[name] = path
    return out


def test_compare_passes_and_fails_like_eval(reports, smoothl1_command):
    passed = run_command(smoothl1_command, "compare", reports["base"], reports["within"], "--max-increase", "2%",
                         "-f", "json")  # fmt: skip
    assert passed.returncode == 0, passed.stderr
    comparison = json.loads(passed.stdout)
    assert comparison["gate"] == {"passed": True, "failures": []}
    changes = {c["pred"]: c for c in comparison["results"]}
    assert changes["model_b"]["relative_change"] == pytest.approx(0.01, rel=1e-9)
    assert changes["model_a"]["relative_change"] == pytest.approx(-0.01, rel=1e-9)

    failed = run_command(smoothl1_command, "compare", reports["base"], reports["five"], "--max-increase", "2%",
                         "-f", "json")  # fmt: skip
    assert failed.returncode == 1
    comparison = json.loads(failed.stdout)
    assert comparison["gate"]["passed"] is False
    [failure] = comparison["gate"]["failures"]
    old, new = BASE_B, _reference(FIVE_PERCENT, "model_b")
    changes = {c["pred"]: c for c in comparison["results"]}
    assert changes["model_b"]["baseline"] == pytest.approx(old, rel=1e-12)
    assert changes["model_b"]["current"] == pytest.approx(new, rel=1e-12)
    assert changes["model_b"]["verdict"] == "regressed"
    assert failure.startswith("model_b: ")
    assert repr(changes["model_b"]["baseline"]) in failure
    assert repr(changes["model_b"]["current"]) in failure

    absolute = invoke(["compare", reports["base"], reports["five"], "--max-increase", "0.01"])
    assert absolute.exit_code == 0, absolute.stderr


def test_compare_agrees_with_eval_baseline(reports, write_table):
    """The same two runs give the same verdicts and changes whether gated by eval or compared later."""
    current = write_table("csv", name="again", **FIVE_PERCENT)
    by_eval = invoke(["eval", current, "-t", "y", "-p", "model_a,model_b", "--baseline", reports["base"],
                      "--max-increase", "2%", "-f", "json"])  # fmt: skip
    by_compare = invoke(["compare", reports["base"], reports["five"], "--max-increase", "2%", "-f", "json"])
    assert by_eval.exit_code == by_compare.exit_code == 1
    eval_side, compare_side = json.loads(by_eval.stdout), json.loads(by_compare.stdout)
    assert eval_side["baseline"]["results"] == compare_side["results"]
    assert eval_side["gate"] == compare_side["gate"]


def test_compare_missing_pred_fails(reports):
    result = invoke(["compare", reports["base"], reports["only_a"], "-f", "json"])
    assert result.exit_code == 1
    comparison = json.loads(result.stdout)
    assert [(c["pred"], c["verdict"]) for c in comparison["results"]] == [("model_a", "ok"), ("model_b", "missing")]


def test_compare_new_pred_passes(reports):
    result = invoke(["compare", reports["only_a"], reports["base"], "-f", "json"])
    assert result.exit_code == 0, result.stderr
    comparison = json.loads(result.stdout)
    assert [(c["pred"], c["verdict"]) for c in comparison["results"]] == [("model_a", "ok"), ("model_b", "new")]


def test_compare_refuses_reports_of_other_settings(reports, write_table, tmp_path):
    other = tmp_path / "huber.json"
    eval_json([write_table("csv", name="h", **BASE), "-t", "y", "-p", "model_a,model_b", "--loss", "huber",
               "--delta", "2", "-o", other])  # fmt: skip
    result = invoke(["compare", reports["base"], other])
    assert result.exit_code == 2
    stderr = result.stderr
    assert stderr.startswith("Error: ")
    assert repr(json.loads(reports["base"].read_text())["signature"]) in stderr
    assert repr(json.loads(other.read_text())["signature"]) in stderr


def test_compare_refuses_a_current_file_that_is_not_a_report(reports, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = invoke(["compare", reports["base"], bad])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {bad}: not a JSON report")


def test_compare_markdown_gives_the_verdict_first_and_a_table(reports):
    result = invoke(["compare", reports["base"], reports["five"], "--max-increase", "2%", "-f", "markdown"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "**❌ smoothl1 gate failed**"
    comparison = json.loads(invoke(["compare", reports["base"], reports["five"], "--max-increase", "2%",
                                    "-f", "json"]).stdout)  # fmt: skip
    [failure] = comparison["gate"]["failures"]
    assert f"- {failure}" in lines
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| pred | baseline | current | change | change % | verdict |"
    assert set(table[1].strip("|").split("|")) <= {"---", "---:", ":---", ":---:"}
    assert len(table) == 2 + 2
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table[2:])}
    assert "regressed" in rows["model_b"][5]
    assert "ok" in rows["model_a"][5]
    assert float(rows["model_b"][2]) == pytest.approx(_reference(FIVE_PERCENT, "model_b"), rel=1e-5)  # 6 digits
    assert rows["model_b"][4] == "+5%"

    passed = invoke(["compare", reports["base"], reports["within"], "--max-increase", "2%", "-f", "markdown"])
    assert passed.exit_code == 0
    assert passed.stdout.splitlines()[0] == "**✅ smoothl1 gate passed**"


def test_compare_table_shows_each_change_and_the_failure(reports, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # room for the changes side by side (at 80, one block per change)
    result = invoke(["compare", reports["base"], reports["five"], "--max-increase", "2%", "-f", "table"])
    assert result.exit_code == 1
    out = result.stdout
    assert "┃ pred" in out or "pred" in out.splitlines()[1]
    assert "regressed" in out
    assert "gate failed" in out
    row = next(line for line in out.splitlines() if "model_b" in line and "regressed" in line)
    assert "+5%" in row
    assert f"{_reference(FIVE_PERCENT, 'model_b'):.6g}" in row
    assert "{" not in out  # not JSON

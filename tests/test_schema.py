"""The report's JSON Schema: shipped, printed by `smoothl1 schema`, met by the reports of a representative
set of options (checked with the `jsonschema` package as the independent reference), and enforced on
`--baseline` and `compare` inputs by the package's own small validator, which must agree with it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from smoothl1_cli import schema
from tests.conftest import eval_json, invoke, run_command

COLUMNS = {
    "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    "y2": [0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
    "p": [1.5, 2.0, 5.0, 4.1, 4.0, 6.5],
    "q": [0.5, 2.5, 3.0, 4.0, 5.5, 9.0],
    "p2": [0.2, 1.0, 0.7, 0.0, 0.1, 1.0],
    "w": [1.0, 2.0, 0.5, 1.0, 3.0, 1.0],
    "g": ["a", "b", "a", "b", "a", None],
}
WITH_NAN = {**COLUMNS, "p": [1.5, None, 5.0, float("nan"), 4.0, 6.5]}

OPTION_SETS = {
    "plain": ["-t", "y", "-p", "p"],
    "two preds": ["-t", "y", "-p", "p,q"],
    "groups": ["-t", "y", "-p", "p,q", "--group-by", "g", "--id", "g"],
    "weights": ["-t", "y", "-p", "p", "-w", "w"],
    "multi-output": ["-t", "y,y2", "-p", "p,p2"],
    "multi-output row-sum": ["-t", "y,y2", "-p", "p,p2", "--multioutput", "row-sum"],
    "ci paired": ["-t", "y", "-p", "p,q", "--ci", "0.9", "--bootstrap", "20"],
    "huber sum": ["-t", "y", "-p", "p", "--loss", "huber", "--delta", "2", "--reduction", "sum"],
    "fail-above": ["-t", "y", "-p", "p,q", "--fail-above", "0.1"],
    "exact quantiles, no worst rows": ["-t", "y", "-p", "p", "--exact-quantiles", "--top", "0"],
}


def _validator() -> Any:
    """The reference validator (the `jsonschema` package, a test dependency)."""
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft202012Validator(schema.report_schema())


def _both_accept(report: dict[str, Any]) -> None:
    _validator().validate(report)  # the reference
    assert schema.first_error(report) is None


@pytest.fixture
def data(write_table) -> Path:
    return write_table("parquet", **COLUMNS)


def test_the_schema_is_a_valid_draft_2020_12_schema_using_only_keywords_the_validator_knows():
    type(_validator()).check_schema(schema.report_schema())
    assert schema.report_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def keywords(node: Any, inside_properties: bool = False) -> set[str]:
        if isinstance(node, list):
            return set().union(*(keywords(item) for item in node))
        if not isinstance(node, dict):
            return set()
        own = set() if inside_properties else set(node)
        return own.union(*(keywords(v, k in ("properties", "$defs")) for k, v in node.items()))

    assert keywords(schema.report_schema()) <= schema.KEYWORDS | schema.ANNOTATIONS


def test_smoothl1_schema_prints_the_packaged_schema(smoothl1_command):
    done = run_command(smoothl1_command, "schema")
    assert done.returncode == 0, done.stderr
    packaged = Path(schema.__file__).with_name("report.schema.json").read_bytes()
    assert done.stdout == packaged
    assert json.loads(done.stdout) == schema.report_schema()


@pytest.mark.parametrize("options", OPTION_SETS.values(), ids=OPTION_SETS.keys())
def test_reports_of_each_option_set_meet_the_schema(data, options):
    result = invoke(["eval", data, *options, "-f", "json"])
    assert result.exit_code in (0, 1), result.stderr  # fail-above fails its gate on purpose
    _both_accept(json.loads(result.stdout))


@pytest.mark.parametrize("policy", ["omit", "propagate"])
def test_reports_with_missing_values_meet_the_schema(write_table, policy):
    report = eval_json(
        [write_table("csv", **WITH_NAN), "-t", "y", "-p", "p,q", "--nan-policy", policy, "--group-by", "g"]
    )
    if policy == "propagate":
        assert report["results"][0]["value"] is None  # NaN written as null: the schema must allow it
    _both_accept(report)


def test_reduction_none_report_and_a_baseline_report_meet_the_schema(data, tmp_path):
    saved = tmp_path / "none.json"
    streamed = invoke(["eval", data, "-t", "y", "-p", "p,q", "--reduction", "none", "-o", saved])
    assert streamed.exit_code == 0, streamed.stderr
    _both_accept(json.loads(saved.read_text()))
    baseline = tmp_path / "base.json"
    assert invoke(["eval", data, "-t", "y", "-p", "p", "-o", baseline, "-f", "json"]).exit_code == 0
    against = invoke(["eval", data, "-t", "y", "-p", "p,q", "--baseline", baseline, "-f", "json"])
    assert against.exit_code == 0, against.stderr
    report = json.loads(against.stdout)
    assert [c["verdict"] for c in report["baseline"]["results"]] == ["ok", "new"]
    _both_accept(report)


def _mutations(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Hand edits and other tools' files: each must be refused by both validators alike."""

    def edited(change: Any) -> dict[str, Any]:
        copied = copy.deepcopy(report)
        change(copied)
        return copied

    cases = [(f"without {key}", edited(lambda r, k=key: r.pop(k))) for key in schema.report_schema()["required"]]
    cases += [
        ("without beta or delta", edited(lambda r: r.pop("beta"))),
        ("schema_version 2", edited(lambda r: r.update(schema_version=2))),
        ("schema_version true", edited(lambda r: r.update(schema_version=True))),
        ("value as text", edited(lambda r: r["results"][0].update(value="0.1"))),
        ("value beyond float64", edited(lambda r: r["results"][0].update(value=2**1024))),
        ("count negative", edited(lambda r: r["results"][0].update(count=-1))),
        ("count fractional", edited(lambda r: r["results"][0].update(count=1.5))),
        ("pred a number", edited(lambda r: r["results"][0].update(pred=1))),
        ("a quantile missing", edited(lambda r: r["results"][0]["quantiles"].pop("p99"))),
        ("a quantile as text", edited(lambda r: r["results"][0]["quantiles"].update(p50="x"))),
        ("unknown loss", edited(lambda r: r.update(loss="mse"))),
        ("gate passed as text", edited(lambda r: r["gate"].update(passed="yes"))),
        ("a worst row without loss", edited(lambda r: r["worst_rows"][0].pop("loss"))),
        ("a group without its key", edited(lambda r: r["groups"][0].pop("group"))),
        ("results not a list", edited(lambda r: r.update(results={"pred": "p"}))),
    ]
    return cases


def test_the_validator_agrees_with_jsonschema_on_every_mutation(data):
    report = eval_json([data, "-t", "y", "-p", "p", "--group-by", "g"])
    _both_accept(report)
    for name, broken in _mutations(report):
        assert not _validator().is_valid(broken), name
        assert schema.first_error(broken) is not None, name
    added = {**report, "a_future_key": {"anything": [1, 2]}}
    added["results"][0]["another_statistic"] = "text"
    _both_accept(added)  # adding keys is compatible


FOREIGN = {
    "package.json": {"name": "left-pad", "version": "1.3.0"},
    "a newer schema": "NEWER",
    "a compare report": "COMPARE",
    "results without quantiles": "TRIMMED",
}


@pytest.mark.parametrize("kind", FOREIGN.keys())
@pytest.mark.parametrize("how", ["eval --baseline", "compare baseline", "compare current"])
def test_a_foreign_json_file_is_refused_with_one_line(smoothl1_command, data, tmp_path, kind, how):
    good = tmp_path / "good.json"
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "-p", "p", "-o", good, "-f", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(good.read_text())
    content = FOREIGN[kind]
    if content == "NEWER":
        content = {**report, "schema_version": 2}
    elif content == "COMPARE":
        content = json.loads(run_command(smoothl1_command, "compare", good, good, "-f", "json").stdout)
    elif content == "TRIMMED":
        content = {**report, "results": [{k: v for k, v in report["results"][0].items() if k != "quantiles"}]}
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps(content))
    args = {
        "eval --baseline": ["eval", data, "-t", "y", "-p", "p", "--baseline", foreign, "-f", "json"],
        "compare baseline": ["compare", foreign, good],
        "compare current": ["compare", good, foreign],
    }[how]
    done = run_command(smoothl1_command, *args)
    assert done.returncode == 2
    assert done.stdout == b""
    stderr = done.stderr.decode()
    assert stderr.startswith(f"Error: {foreign}: not a smoothl1 JSON report (")
    assert stderr.count("\n") == 1
    expected = {
        "package.json": "no 'schema_version' key",
        "a newer schema": "schema_version: expected 1, found 2",
        "a compare report": "no 'version' key",
        "results without quantiles": "results[0]: no 'quantiles' key",
    }[kind]
    assert expected in stderr


def test_a_report_of_the_previous_version_without_targets_in_its_comparison_is_a_baseline(data, tmp_path):
    """Found in review: reports of 0.1.0 before this change had no `target` in baseline.results."""
    baseline = tmp_path / "base.json"
    assert invoke(["eval", data, "-t", "y", "-p", "p", "-o", baseline, "-f", "json"]).exit_code == 0
    with_comparison = invoke(["eval", data, "-t", "y", "-p", "p", "--baseline", baseline, "-f", "json"])
    old = json.loads(with_comparison.stdout)
    for change in old["baseline"]["results"]:
        del change["target"]
    _both_accept(old)
    saved = tmp_path / "old.json"
    saved.write_text(json.dumps(old))
    again = invoke(["eval", data, "-t", "y", "-p", "p", "--baseline", saved, "-f", "json"])
    assert again.exit_code == 0, again.stderr
    assert [c["verdict"] for c in json.loads(again.stdout)["baseline"]["results"]] == ["ok"]

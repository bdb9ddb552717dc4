"""`-f markdown`: the gate's verdict first, well-formed GitHub tables, escaped pipes, a size cap."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import eval_json, invoke, reference_loss, reference_mean

ROWS = 40
RNG = np.random.default_rng(5)
TARGET = RNG.normal(0.0, 2.0, ROWS)
DATA: dict[str, Any] = {
    "id": [f"r{i}" for i in range(ROWS)],
    "g": ["north", "south", "east", "west"] * (ROWS // 4),
    "y": TARGET.tolist(),
    "model_a": (TARGET + RNG.normal(0.0, 1.0, ROWS)).tolist(),
    "model_b": (TARGET + RNG.normal(0.0, 1.5, ROWS)).tolist(),
}
PASSED = "**✅ smoothl1 gate passed**"
FAILED = "**❌ smoothl1 gate failed**"
SEPARATOR_CELL = re.compile(r"^:?-{3,}:?$")
GITHUB_SUMMARY_LIMIT = 1 << 20


def cells(line: str) -> list[str]:
    """A GitHub table row's cells: split on pipes that are not escaped, outer pipes dropped."""
    assert line.startswith("|"), line
    assert line.endswith("|"), line
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line[1:-1])]


def tables(markdown: str) -> list[list[str]]:
    """Every run of consecutive table lines."""
    found: list[list[str]] = []
    current: list[str] = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    if current:
        found.append(current)
    return found


def check_table(lines: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header, separator, body: the separator and every body row have as many cells as the header."""
    assert len(lines) >= 3, lines
    header = cells(lines[0])
    separator = cells(lines[1])
    assert len(separator) == len(header), (lines[0], lines[1])
    assert all(SEPARATOR_CELL.match(cell) for cell in separator), lines[1]
    body = [cells(line) for line in lines[2:]]
    for row, line in zip(body, lines[2:], strict=True):
        assert len(row) == len(header), (lines[0], line)
    return header, body


def by_first_cell(header: list[str], body: list[list[str]]) -> dict[str, dict[str, str]]:
    return {row[0]: dict(zip(header, row, strict=True)) for row in body}


def six(value: float) -> str:
    """How the markdown shows a number: six significant digits."""
    return f"{value:.6g}"


def markdown(args: list[Any], code: int = 0) -> str:
    result = invoke(["eval", *args, "-f", "markdown"])
    assert result.exit_code == code, result.stderr
    return result.stdout


@pytest.fixture
def data_csv(write_table: Callable[..., Path]) -> Path:
    return write_table("csv", **DATA)


def test_verdict_first_then_well_formed_tables_with_the_reference_values(data_csv):
    text = markdown([data_csv, "-t", "y", "-p", "model_a,model_b", "--id", "id", "--top", "3"])
    lines = text.splitlines()
    assert lines[0] == PASSED
    found = tables(text)
    assert len(found) == 2  # results, worst rows
    header, body = check_table(found[0])
    assert header[:5] == ["pred", "target", "count", "omitted", "value"]
    assert {"sum", "p95"} <= set(header)
    rows = by_first_cell(header, body)
    assert set(rows) == {"model_a", "model_b"}
    for pred in ("model_a", "model_b"):
        assert rows[pred]["target"] == "y"
        assert rows[pred]["count"] == str(ROWS)
        assert rows[pred]["omitted"] == "0"
        assert rows[pred]["value"] == six(reference_mean(DATA[pred], DATA["y"]))
        assert rows[pred]["max"] == six(max(reference_loss(p, t) for p, t in zip(DATA[pred], DATA["y"], strict=True)))
    worst_header, worst = check_table(found[1])
    assert worst_header == ["row", "id", "pred", "prediction", "actual", "loss"]
    assert len(worst) == 2 * 3
    losses = sorted(
        ((reference_loss(p, t), i) for i, (p, t) in enumerate(zip(DATA["model_a"], DATA["y"], strict=True))),
        key=lambda item: (-item[0], item[1]),
    )
    assert [row[0] for row in worst[:3]] == [str(i) for _, i in losses[:3]]
    assert [row[1] for row in worst[:3]] == [f"r{i}" for _, i in losses[:3]]
    assert [row[5] for row in worst[:3]] == [six(loss) for loss, _ in losses[:3]]


def test_a_failed_gate_is_the_first_line_with_its_failures_listed(data_csv):
    limit = 0.5
    values = {pred: reference_mean(DATA[pred], DATA["y"]) for pred in ("model_a", "model_b")}
    assert min(values.values()) < limit < max(values.values())  # exactly one fails
    worse = max(values, key=values.__getitem__)
    text = markdown([data_csv, "-t", "y", "-p", "model_a,model_b", "--fail-above", str(limit)], code=1)
    lines = text.splitlines()
    assert lines[0] == FAILED
    assert lines[1] == ""
    failures = json.loads(invoke(["eval", data_csv, "-t", "y", "-p", "model_a,model_b", "--fail-above",
                                  str(limit), "-f", "json"]).stdout)["gate"]["failures"]  # fmt: skip
    assert len(failures) == 1
    assert failures[0].startswith(f"{worse}: ")
    assert lines[2] == f"- {failures[0]}"
    assert lines.index(lines[2]) < min(i for i, line in enumerate(lines) if line.startswith("|"))


def test_every_table_is_well_formed_with_ci_groups_and_a_baseline(data_csv, tmp_path):
    base = tmp_path / "base.json"
    eval_json([data_csv, "-t", "y", "-p", "model_a,model_b", "-o", base])
    text = markdown([data_csv, "-t", "y", "-p", "model_a,model_b", "--id", "id", "--group-by", "g",
                     "--ci", "0.9", "--bootstrap", "50", "--baseline", base, "--max-increase", "2%"])  # fmt: skip
    assert text.splitlines()[0] == PASSED
    found = tables(text)
    assert len(found) == 5  # comparison, results, uncertainty, worst rows, groups
    checked = [check_table(lines) for lines in found]
    headers = [header for header, _ in checked]
    assert headers[0] == ["pred", "baseline", "current", "change", "change %", "verdict"]
    assert headers[1][:2] == ["pred", "target"]
    assert headers[2] == ["", "model_a", "model_b"]
    assert headers[4][:3] == ["g", "pred", "count"]
    groups = checked[4][1]
    assert len(groups) == 4 * 2
    assert [row[0] for row in groups[::2]] == ["east", "north", "south", "west"]  # sorted
    for row in groups:
        members = [i for i, g in enumerate(DATA["g"]) if g == row[0]]
        expected = reference_mean([DATA[row[1]][i] for i in members], [DATA["y"][i] for i in members])
        assert row[2] == str(len(members))
        assert row[3] == six(expected)


def test_the_comparison_table_shows_each_change(data_csv, write_table, tmp_path):
    base = tmp_path / "base.json"
    eval_json([data_csv, "-t", "y", "-p", "model_a,model_b", "-o", base])
    worse = {**DATA, "model_b": [t + 1.5 * (p - t) for p, t in zip(DATA["model_b"], DATA["y"], strict=True)]}
    current = write_table("csv", name="current", **worse)
    text = markdown([current, "-t", "y", "-p", "model_a,model_b", "--baseline", base, "--max-increase", "2%"], code=1)
    lines = text.splitlines()
    assert lines[0] == FAILED
    intro = next(i for i, line in enumerate(lines) if line.startswith("Against the baseline"))
    assert lines[intro] == "Against the baseline (allowed increase 2%):"
    first_table = next(i for i, line in enumerate(lines) if line.startswith("|"))
    assert first_table == intro + 2  # the comparison comes before the results
    header, body = check_table(tables(text)[0])
    rows = by_first_cell(header, body)
    old = reference_mean(DATA["model_b"], DATA["y"])
    new = reference_mean(worse["model_b"], DATA["y"])
    assert rows["model_b"]["baseline"] == six(old)
    assert rows["model_b"]["current"] == six(new)
    assert rows["model_b"]["change"] == six(new - old)
    assert rows["model_b"]["change %"] == f"{(new - old) / old * 100:+.3g}%"
    assert "regressed" in rows["model_b"]["verdict"]
    assert rows["model_a"]["change"] == "0"
    assert "ok" in rows["model_a"]["verdict"]


def test_pipes_in_pred_names_and_values_are_escaped(write_table):
    path = write_table("csv", **{"y": [1.0, 2.0, 3.0], "m|a": [1.5, 2.0, 5.0], "id": ["a|b", "c", "d"]})
    text = markdown([path, "-t", "y", "-p", "m|a", "--id", "id"])
    found = tables(text)
    assert len(found) == 2
    header, body = check_table(found[0])
    assert body[0][0] == "m\\|a"
    assert body[0][header.index("value")] == six(reference_mean([1.5, 2.0, 5.0], [1.0, 2.0, 3.0]))
    _, worst = check_table(found[1])
    expected = [("2", "d", "m\\|a"), ("0", "a\\|b", "m\\|a"), ("1", "c", "m\\|a")]
    assert [(row[0], row[1], row[2]) for row in worst] == expected


@pytest.mark.parametrize(
    "options",
    [["--group-by", "g|x"], ["-p", "m|b", "--ci", "0.9", "--bootstrap", "20"]],
    ids=["group-by column", "pred in the --ci table header"],
)
def test_pipes_in_column_names_are_escaped_in_table_headers(write_table, options):
    path = write_table("csv", **{"y": [1.0, 2.0, 3.0], "m|a": [1.5, 2.0, 5.0], "m|b": [1.0, 2.5, 3.0],
                                 "g|x": ["p|q", "r", "p|q"]})  # fmt: skip
    text = markdown([path, "-t", "y", "-p", "m|a", *options])
    found = tables(text)
    for lines in found:
        header, _ = check_table(lines)
        assert not any(cell in ("g", "x", "m", "a", "b") for cell in header)  # a name cut in two at its pipe
    headers = [cells(lines[0]) for lines in found]
    if "--group-by" in options:
        assert headers[-1][:2] == ["g\\|x", "pred"]
    else:
        assert ["", "m\\|a", "m\\|b"] in headers


def test_many_groups_stay_under_githubs_limit_and_end_with_the_note(tmp_path):
    groups = 60_000
    rng = np.random.default_rng(3)
    target = rng.normal(size=2 * groups)
    table = pa.table({"g": np.arange(2 * groups) % groups, "y": target, "pred": target + rng.normal(size=2 * groups)})
    path = tmp_path / "many.parquet"
    pq.write_table(table, path)
    result = invoke(["eval", path, "-t", "y", "--group-by", "g", "--top", "0", "-f", "markdown"])
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert len(text.encode()) < GITHUB_SUMMARY_LIMIT
    lines = text.splitlines()
    assert lines[0] == PASSED
    note = lines[-1]
    match = re.fullmatch(r"_… (\d+) more lines left out to stay under GitHub's 1 MiB summary limit; .*_", note)
    assert match, note
    assert lines[-2] == ""
    found = tables(text)
    header, rows = check_table(found[-1])  # cut between rows, never inside one
    assert header[:3] == ["g", "pred", "count"]
    assert len(rows) + int(match.group(1)) == groups  # what is shown and what is left out add up
    assert [row[0] for row in rows[:3]] == ["0", "1", "2"]  # integer keys, sorted as numbers
    assert all(row[2] == "2" for row in rows)
    first = [0, groups]
    assert rows[0][3] == six(reference_mean([float(table["pred"][i].as_py()) for i in first],
                                            [float(target[i]) for i in first]))  # fmt: skip


def test_a_small_report_has_no_truncation_note(data_csv):
    text = markdown([data_csv, "-t", "y", "-p", "model_a", "--group-by", "g"])
    assert "left out" not in text
    assert text.endswith("|\n")

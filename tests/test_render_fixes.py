"""How the report looks on the screen and in files: many groups in JSON, self-describing CSV, escaped text."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smoothl1_cli.render import _dump_json
from tests.conftest import reference_loss, run_command
from tests.test_markdown import check_table, tables
from tests.test_terminal import plain, run_on_pty

# Many groups: the JSON writer streams them, byte for byte what json.dump(indent=2) wrote.

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=30,
)


# What json.dumps(ensure_ascii=False) leaves raw and the writer escapes: DEL, C1, line and paragraph separators.
JSON_RAW_CONTROLS = {code: f"\\u{code:04x}" for code in [*range(0x7F, 0xA0), 0x2028, 0x2029]}


@given(data=st.dictionaries(st.text(), JSON_VALUES, max_size=6))
def test_the_json_writer_writes_what_json_dump_indent_2_writes(data: dict[str, Any]) -> None:
    text = io.StringIO()
    _dump_json(data, text)
    assert text.getvalue() == json.dumps(data, indent=2, ensure_ascii=False).translate(JSON_RAW_CONTROLS) + "\n"
    assert json.loads(text.getvalue()) == data


def test_many_groups_give_a_valid_correct_json_report(smoothl1_command: list[str], tmp_path: Path) -> None:
    groups = 30_000
    rng = np.random.default_rng(5)
    keys = rng.permutation(np.repeat(np.arange(groups), 2))
    pred, target = rng.normal(size=keys.size) * 3, rng.normal(size=keys.size)
    pred[np.flatnonzero(keys == 7)[0]] = math.nan  # group 7's value is NaN: null in JSON
    path = tmp_path / "many.parquet"
    pq.write_table(pa.table({"g": keys, "y": target, "pred": pred}), path)
    saved = tmp_path / "report.json"
    done = run_command(
        smoothl1_command, "eval", path, "-t", "y", "--group-by", "g", "--nan-policy", "propagate", "-o", saved,
        "-f", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert saved.read_bytes() == done.stdout
    report = json.loads(done.stdout)
    assert done.stdout.decode() == json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    losses: dict[int, list[float]] = {}
    for key, p, t in zip(keys.tolist(), pred.tolist(), target.tolist(), strict=True):
        losses.setdefault(key, []).append(reference_loss(p, t))
    assert [g["group"] for g in report["groups"]] == list(range(groups))
    for group in report["groups"]:
        expected = math.fsum(losses[group["group"]]) / 2
        assert group["count"] == 2
        if group["group"] == 7:
            assert (group["value"], group["mean"]) == (None, None)
        else:
            assert math.isclose(group["value"], expected, rel_tol=1e-12), group


# -f csv: every line says what it is.


def _csv_lines(done: subprocess.CompletedProcess[bytes]) -> tuple[list[str], list[dict[str, str]]]:
    assert done.returncode == 0, done.stderr
    reader = csv.DictReader(io.StringIO(done.stdout.decode()))
    lines = list(reader)
    return list(reader.fieldnames or []), lines


def test_csv_lines_say_whether_they_are_a_result_overall_or_group(smoothl1_command, tmp_path) -> None:
    columns = {
        "g": ["a", None, "a", "b", None, "b"],
        "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "z": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        "x_pred": [1.5, 4.0, math.nan, 4.25, 5.0, 9.0],
        "z_pred": [0.5, 1.0, 2.0, 1.0, 4.5, 5.0],
    }
    path = tmp_path / "boxes.parquet"
    pq.write_table(pa.table(columns), path)
    args = ["eval", path, "-t", "x,z", "--nan-policy", "omit", "-f", "csv"]
    header, lines = _csv_lines(run_command(smoothl1_command, *args, "--group-by", "g"))
    stats = ["count", "value", "mean", "sum", "std", "min", "p50", "p90", "p95", "p99", "max"]
    assert header == ["kind", "group", "pred", "target", "omitted", *stats, "linear_fraction", "mae", "rmse"]
    kept = [i for i in range(6) if i != 2]  # row 2 has a NaN prediction: omitted for every result
    losses = {
        pred: {i: reference_loss(columns[pred][i], columns[target][i]) for i in kept}
        for pred, target in (("x_pred", "x"), ("z_pred", "z"))
    }
    results = [(line["kind"], line["pred"], line["target"], line["omitted"]) for line in lines[:3]]
    assert results == [
        ("result", "x_pred", "x", "1"),
        ("result", "z_pred", "z", "1"),
        ("overall", *["overall"] * 2, "1"),
    ]
    assert [line["group"] for line in lines[:3]] == ["", "", ""]
    everything = [loss for by_row in losses.values() for loss in by_row.values()]
    assert float(lines[2]["value"]) == pytest.approx(math.fsum(everything) / len(everything), rel=1e-12)
    groups = lines[3:]
    assert {line["kind"] for line in groups} == {"group"}
    assert [(line["group"], line["pred"]) for line in groups] == [
        (key, pred) for key in ("a", "b", "") for pred in ("x_pred", "z_pred")
    ]  # the missing key last, empty like no key, but a group line all the same
    for line in groups:
        rows = [i for i in kept if (columns["g"][i] or "") == line["group"]]
        assert line["omitted"] == ""  # not kept per group (README)
        assert int(line["count"]) == len(rows)
        expected = math.fsum(losses[line["pred"]][i] for i in rows) / len(rows)
        assert float(line["value"]) == pytest.approx(expected, rel=1e-12)
    header, lines = _csv_lines(run_command(smoothl1_command, *args))
    assert "group" not in header
    assert [line["kind"] for line in lines] == ["result", "result", "overall"]


# Text from the data never reaches the terminal as control sequences.

HOSTILE_PRED = "m\x1b]0;pwned\x07"  # OSC: retitles the terminal
HOSTILE_ID = "r\x1b[2J\n"  # CSI: clears the screen; a newline
HOSTILE_KEY = "k\x9b31m\r"  # 8-bit CSI and a carriage return
HOSTILE_FILE = "d\x1b[5m.parquet"


def _hostile(tmp_path: Path) -> Path:
    path = tmp_path / HOSTILE_FILE
    table = {
        "y": [1.0, 2.0, 3.0],
        HOSTILE_PRED: [1.5, 2.0, 5.0],
        "plain": [1.0, 2.5, 3.0],
        "id": ["a", "b", HOSTILE_ID],  # the worst row
        "g": [HOSTILE_KEY, HOSTILE_KEY, "z"],
    }
    pq.write_table(pa.table(table), path)
    return path


def _escaped(text: str) -> str:
    """The reference escape: Python's unicode_escape codec (the hostile names are ASCII but for controls)."""
    return text.encode("unicode_escape").decode("ascii")


def _controls(text: str) -> list[str]:
    """Control characters other than newline and tab (the line and field separators)."""
    return [char for char in text if unicodedata.category(char) == "Cc" and char not in "\n\t"]


@pytest.mark.parametrize(
    "options",
    [["-f", "table"], ["-f", "markdown"], ["-f", "csv"], ["-q"], ["-f", "json"]],
    ids=["table", "markdown", "csv", "quiet", "json"],
)
def test_names_ids_keys_and_file_names_are_escaped(smoothl1_command, tmp_path, options) -> None:
    path = _hostile(tmp_path)
    done = run_command(
        smoothl1_command, "eval", path, "-t", "y", "-p", f"{HOSTILE_PRED},plain", "--id", "id",
        "--group-by", "g", "--fail-above", "0.1", *options,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # the gate fails: its lines name the pred too
    out, err = done.stdout.decode(), done.stderr.decode()
    assert _controls(out) == []
    assert _controls(err) == []
    if options == ["-f", "json"]:
        report = json.loads(out)
        assert report["inputs"][0]["path"] == str(path)
        assert report["results"][0]["pred"] == HOSTILE_PRED
        assert report["worst_rows"][0]["id"] == HOSTILE_ID
        assert report["groups"][0]["group"] == HOSTILE_KEY
        return
    assert _escaped(HOSTILE_PRED) in out + err
    if options != ["-q"]:  # -q prints values alone
        for text in (HOSTILE_ID, HOSTILE_KEY, HOSTILE_FILE):
            if options == ["-f", "csv"] and text != HOSTILE_KEY:
                continue  # the CSV report has no ids or file names
            assert _escaped(text) in out.replace("\n", ""), text  # the table wraps a long path, never cuts it
    if options in (["-q"], ["-f", "csv"]):
        assert f"gate failed: {_escaped(HOSTILE_PRED)}: " in err


def test_the_table_on_a_terminal_shows_hostile_text_escaped(smoothl1_command, tmp_path) -> None:
    path = _hostile(tmp_path)
    args = ["eval", path, "-t", "y", "-p", f"{HOSTILE_PRED},plain", "--id", "id", "--group-by", "g"]
    shown, _ = run_on_pty(smoothl1_command, *args, stdout_tty=True, stderr_tty=False)
    for sequence in ("\x1b]0;", "\x1b[2J", "\x9b", "\x1b[5m"):  # what each hostile text would do
        assert sequence.encode() not in shown
    for text in (HOSTILE_PRED, HOSTILE_ID, HOSTILE_KEY, HOSTILE_FILE):
        assert _escaped(text).encode() in shown, text


# One pred scored against several targets: the worst rows and groups say which target.


def test_a_pred_paired_with_two_targets_shows_the_target_in_worst_rows_and_groups(smoothl1_command, tmp_path) -> None:
    columns = {"y1": [1.0, 2.0, 3.0], "y2": [2.0, 2.0, 1.0], "p": [1.5, 2.0, 4.0], "g": ["a", "b", "a"]}
    path = tmp_path / "repeat.parquet"
    pq.write_table(pa.table(columns), path)
    args = ["eval", path, "-t", "y1,y2", "-p", "p,p", "--group-by", "g", "--top", "2"]
    done = run_command(smoothl1_command, *args, "-f", "markdown")
    assert done.returncode == 0, done.stderr
    _, worst, groups = (check_table(lines) for lines in tables(done.stdout.decode()))
    assert worst[0] == ["row", "pred", "target", "prediction", "actual", "loss"]
    expected_worst = []
    for target in ("y1", "y2"):
        losses = [reference_loss(p, t) for p, t in zip(columns["p"], columns[target], strict=True)]
        for row in sorted(range(3), key=lambda i: (-losses[i], i))[:2]:
            expected_worst.append([str(row), "p", target, f"{losses[row]:.6g}"])
    assert [[*line[:3], line[5]] for line in worst[1]] == expected_worst
    assert groups[0][:3] == ["g", "pred", "target"]

    def mean_loss(rows: list[int], target: str) -> str:
        return f"{math.fsum(reference_loss(columns['p'][i], columns[target][i]) for i in rows) / len(rows):.6g}"

    expected_groups = [
        [key, "p", target, mean_loss(rows, target)]
        for key, rows in (("a", [0, 2]), ("b", [1]))
        for target in ("y1", "y2")
    ]
    value = groups[0].index("value")
    assert [[*line[:3], line[value]] for line in groups[1]] == expected_groups
    table, _ = run_on_pty(smoothl1_command, *args, stdout_tty=True, stderr_tty=False, columns=200)
    shown = plain(table)
    assert "loss distribution: p (target y1)" in shown
    assert "loss distribution: p (target y2)" in shown
    assert sum(line.startswith("┃ row ┃ pred ┃ target ┃") for line in shown.splitlines()) == 1
    assert sum(line.startswith("┃ g ┃ pred ┃ target ┃") for line in shown.splitlines()) == 1


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_compare_shows_hostile_pred_names_escaped(smoothl1_command, tmp_path, fmt) -> None:
    path = _hostile(tmp_path)
    table = pq.read_table(path)
    worse = tmp_path / "worse.parquet"
    column = table.schema.get_field_index(HOSTILE_PRED)
    pq.write_table(table.set_column(column, HOSTILE_PRED, pa.array([9.0, 9.0, 9.0])), worse)
    reports = [tmp_path / "base.json", tmp_path / "current.json"]
    for source, saved in zip((path, worse), reports, strict=True):
        done = run_command(smoothl1_command, "eval", source, "-t", "y", "-p", HOSTILE_PRED, "-o", saved, "-q")
        assert done.returncode == 0, done.stderr
    done = run_command(smoothl1_command, "compare", *reports, "-f", fmt)
    assert done.returncode == 1, done.stderr  # regressed: the gate's failure names the pred too
    out, err = done.stdout.decode(), done.stderr.decode()
    assert _controls(out) == []
    assert _controls(err) == []
    assert out.count(_escaped(HOSTILE_PRED)) == 2  # its row of the changes table, and the gate's failure


def test_per_row_losses_are_data_and_keep_ids_exactly(smoothl1_command, tmp_path) -> None:
    path = _hostile(tmp_path)
    per_row = tmp_path / "losses.csv"
    args = ["eval", path, "-t", "y", "-p", "plain", "--id", "id"]
    done = run_command(smoothl1_command, *args, "--per-row", per_row, "-q")
    assert done.returncode == 0, done.stderr
    streamed = run_command(smoothl1_command, *args, "--reduction", "none")
    assert streamed.returncode == 0, streamed.stderr
    for text in (per_row.read_text(), streamed.stdout.decode()):
        assert [line["id"] for line in csv.DictReader(io.StringIO(text, newline=""))] == ["a", "b", HOSTILE_ID]


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_the_comparison_names_the_target_where_a_pred_repeats(smoothl1_command, tmp_path, fmt) -> None:
    (tmp_path / "base.csv").write_text("y1,y2,p\n0,0,1\n1,1,1\n")
    (tmp_path / "cur.csv").write_text("y1,y2,p\n0,0,1\n1,3,1\n")
    for name in ("base", "cur"):
        done = run_command(smoothl1_command, "eval", tmp_path / f"{name}.csv", "-t", "y1,y2", "-p", "p,p",
                           "-o", tmp_path / f"{name}.json", "-q")  # fmt: skip
        assert done.returncode == 0, done.stderr
    done = run_command(smoothl1_command, "compare", tmp_path / "base.json", tmp_path / "cur.json", "-f", fmt)
    assert done.returncode == 1
    lines = done.stdout.decode().splitlines()
    regressed = [line for line in lines if "regressed" in line and "overall" not in line]
    assert len(regressed) == 1
    assert re.search(r"\bp\b.*\by2\b.*0\.25.*\b1(\.0)?\b.*0\.75", regressed[0]), regressed[0]
    assert any(re.search(r"\bp\b.*\by1\b.*\bok\b", line) for line in lines)

"""Issues 8 and 13, the evaluation core and the API: column roles, how a bad value is named, group
keys and ids that keep their value on every format and chunking, and user input that used to exit 3."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from smoothl1_cli import evaluate
from tests.conftest import reference_loss, reference_mean, run_command
from tests.test_groups import check_groups, pandas_reference


def _eval(command: list[str], *args: Any, stdin: bytes | None = None) -> Any:
    return run_command(command, "eval", *args, stdin=stdin)


def _report(command: list[str], *args: Any, stdin: bytes | None = None) -> dict[str, Any]:
    done = _eval(command, *args, "-f", "json", stdin=stdin)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def _refused(command: list[str], *args: Any, stdin: bytes | None = None) -> str:
    """The one `Error:` line of a run that must exit 2."""
    done = _eval(command, *args, stdin=stdin)
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: "), lines
    assert not done.stdout
    return lines[0]


@pytest.fixture
def abc(tmp_path: Path) -> Path:
    path = tmp_path / "abc.csv"
    path.write_text("y,p,q\n1,2,3\n2,3,5\n")
    return path


# 8.4: a column plays one role


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-t", "y,y"], "--target 'y' is given twice"),
        (["-t", "y", "-t", "y", "-p", "p,q"], "--target 'y' is given twice"),
        (["-t", "y", "-p", "p,p"], "--pred 'p' is given twice"),
        (["-t", "y", "-p", "y"], "column 'y' is both the target and the pred"),
        (["-t", "y,p", "-p", "p,q"], "column 'p' is both the target and the pred"),
        (["-t", "y", "-p", "p", "-w", "y"], "column 'y' is both the target and the weight"),
        (["-t", "y", "-p", "p", "-w", "p"], "column 'p' is both the pred and the weight"),
        (["-t", "y", "-p", "p", "--id", "y"], "column 'y' is both the target and the id"),
        (["-t", "y", "-p", "p", "--id", "p"], "column 'p' is both the pred and the id"),
        (["-t", "y", "-p", "p", "-w", "q", "--id", "q"], "column 'q' is both the weight and the id"),
    ],
)
def test_a_column_in_two_roles_is_a_usage_error(smoothl1_command, abc, args, message) -> None:
    assert message in _refused(smoothl1_command, abc, *args)


def test_a_pred_shared_by_two_targets_and_group_by_on_the_id_or_the_target_are_accepted(smoothl1_command, abc) -> None:
    shared = _report(smoothl1_command, abc, "-t", "y,q", "-p", "p,p")
    assert [(r["pred"], r["target"], r["value"]) for r in shared["results"]] == [
        ("p", "y", reference_mean([2, 3], [1, 2])),
        ("p", "q", reference_mean([2, 3], [3, 5])),
    ]
    by_id = _report(smoothl1_command, abc, "-t", "y", "-p", "p", "--group-by", "q", "--id", "q")
    assert [(g["group"], g["count"]) for g in by_id["groups"]] == [(3, 1), (5, 1)]
    assert [w["id"] for w in by_id["worst_rows"]] == [3, 5]
    by_target = _report(smoothl1_command, abc, "-t", "y", "-p", "p", "--group-by", "y")
    assert [(g["group"], g["value"]) for g in by_target["groups"]] == [
        (1, reference_loss(2, 1)),
        (2, reference_loss(3, 2)),
    ]


# 8.5: the first bad value as the input had it


@pytest.mark.parametrize(
    ("fmt", "pred", "said"),
    [
        ("csv", [2.0, None, 3.0], "column 'p', missing)"),
        ("parquet", [2.0, None, math.nan], "column 'p', missing)"),
        ("parquet", [2.0, math.nan, None], "column 'p', value NaN)"),
        ("parquet", [2.0, math.inf, None], "column 'p', value inf)"),
        ("jsonl", [2.0, -math.inf, None], "column 'p', value -inf)"),
    ],
)
def test_the_nan_error_says_missing_nan_or_inf_as_the_input_had_it(smoothl1_command, write_table, fmt, pred, said):
    path = write_table(fmt, y=[1.0, 1.0, 1.0], p=pa.array(pred, pa.float64()))  # JSON Lines: -Infinity
    line = _refused(smoothl1_command, path, "-t", "y", "-p", "p", "--chunk-rows", "1")
    assert f"(first: row 1, {said}" in line


def test_an_empty_csv_cell_is_missing_not_nan(smoothl1_command, tmp_path) -> None:
    path = tmp_path / "gap.csv"
    path.write_text("y,p\n1,2\n1,\n1,inf\n")
    assert "2 rows with a missing, NaN or infinite value (first: row 1, column 'p', missing)" in _refused(
        smoothl1_command, path, "-t", "y"
    )


# 8.6: a misspelt keyword of evaluate()


def test_a_misspelt_evaluate_keyword_is_a_type_error_naming_the_nearest() -> None:
    frame = pd.DataFrame({"y": [1.0, 2.0], "p": [2.0, 3.0]})
    with pytest.raises(
        TypeError, match=r"^evaluate\(\) got an unexpected keyword argument 'betta'; did you mean 'beta'\?$"
    ):
        evaluate(frame, target="y", betta=2)
    with pytest.raises(TypeError, match="'lables'; did you mean 'labels'"):
        evaluate(frame, target="y", lables="x.csv")
    assert evaluate(frame, target="y", beta=2).to_dict()["results"][0]["value"] == reference_mean([2, 3], [1, 2], 2.0)


# 13.3 and 8.3: group keys and ids by value, the same on every chunking and format


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 4, 65536])
def test_int32_and_int64_keys_of_two_files_are_one_group_and_one_id_type(smoothl1_command, tmp_path, chunk_rows):
    for name, kind in (("a", pa.int32()), ("b", pa.int64())):
        pq.write_table(
            pa.table({"y": [1.0, 2.0], "p": [2.0, 4.0], "g": pa.array([7, 8], kind)}), tmp_path / f"{name}.parquet"
        )
    inputs = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    per_row = tmp_path / "rows.parquet"
    args = ["-t", "y", "-p", "p", "--group-by", "g", "--id", "g", "--chunk-rows", chunk_rows, "--per-row", per_row]
    report = _report(smoothl1_command, *inputs, *args)
    frame = pd.concat([pd.read_parquet(path) for path in inputs], ignore_index=True)
    frame["loss"] = [reference_loss(p, y) for p, y in zip(frame["p"], frame["y"], strict=True)]
    expected = frame.groupby("g")["loss"].agg(["size", "mean"])
    assert [(g["group"], g["count"], g["value"]) for g in report["groups"]] == [
        (key, int(row["size"]), row["mean"]) for key, row in expected.iterrows()
    ]
    assert sorted((w["id"], w["row"]) for w in report["worst_rows"]) == [(7, 0), (7, 2), (8, 1), (8, 3)]
    written = pq.read_table(per_row)
    assert written.schema.field("g").type == pa.int64()
    assert written.column("g").to_pylist() == [7, 8, 7, 8]


def test_csv_keys_0_and_minus_0_are_two_groups(smoothl1_command, tmp_path) -> None:
    path = tmp_path / "zero.csv"
    path.write_text("y,p,g\n1,2,0\n2,4,-0\n3,3.5,0\n")
    report = _report(smoothl1_command, path, "-t", "y", "-p", "p", "--group-by", "g", "--id", "g")
    frame = pd.read_csv(path, dtype={"g": str})  # as text, "0" and "-0" are two keys
    frame["loss"] = [reference_loss(p, y) for p, y in zip(frame["p"], frame["y"], strict=True)]
    expected = frame.groupby("g")["loss"].agg(["size", "sum"])
    assert [(g["group"], g["count"], g["sum"]) for g in report["groups"]] == [
        (key, int(row["size"]), row["sum"]) for key, row in expected.iterrows()
    ]
    assert sum(g["count"] for g in report["groups"]) == 3  # no row vanishes
    assert {w["id"] for w in report["worst_rows"]} == {"0", "-0"}


@pytest.mark.parametrize("chunk_rows", [1, 65536])
def test_an_integer_csv_id_is_an_int_as_in_its_parquet_copy(smoothl1_command, tmp_path, chunk_rows) -> None:
    table = pa.table({"y": [1.0, 2.0, 3.0], "p": [2.0, 4.0, 3.5], "k": [10, -3, 0]})
    pq.write_table(table, tmp_path / "d.parquet")
    (tmp_path / "d.csv").write_text("y,p,k\n1,2,10\n2,4,-3\n3,3.5,0\n")
    args = ["-t", "y", "-p", "p", "--id", "k", "--group-by", "k", "--chunk-rows", chunk_rows]
    from_csv = _report(smoothl1_command, tmp_path / "d.csv", *args)
    from_parquet = _report(smoothl1_command, tmp_path / "d.parquet", *args)
    assert [w["id"] for w in from_csv["worst_rows"]] == [-3, 10, 0]
    assert from_csv["worst_rows"] == from_parquet["worst_rows"]
    assert from_csv["groups"] == from_parquet["groups"]
    per_row = [
        _eval(smoothl1_command, tmp_path / name, *args[:6], "--reduction", "none") for name in ("d.csv", "d.parquet")
    ]
    assert per_row[0].stdout == per_row[1].stdout == b"row,k,loss\n0,10,0.5\n1,-3,1.5\n2,0,0.125\n"
    (tmp_path / "q.csv").write_text('y,p,k\n1,2,"a,b"\n')  # a value that needs quotes still has them
    assert (
        _eval(smoothl1_command, tmp_path / "q.csv", *args[:6], "--reduction", "none").stdout
        == b'row,k,loss\n0,"a,b",0.5\n'
    )


# 13.5: user input that used to be an internal error


def test_padded_numeric_csv_keys_are_their_text(smoothl1_command, tmp_path) -> None:
    path = tmp_path / "pad.csv"
    path.write_text("y,p,k\n1,2, 7\n2,4,7\n3,3.5, 7\n")
    report = _report(smoothl1_command, path, "-t", "y", "-p", "p", "--id", "k", "--group-by", "k")
    frame = pd.read_csv(path, dtype={"k": str})
    frame["loss"] = [reference_loss(p, y) for p, y in zip(frame["p"], frame["y"], strict=True)]
    expected = frame.groupby("k")["loss"].agg(["size", "mean"])
    assert [(g["group"], g["count"], g["value"]) for g in report["groups"]] == [
        (key, int(row["size"]), row["mean"]) for key, row in expected.iterrows()
    ]
    assert [w["id"] for w in report["worst_rows"]] == ["7", " 7", " 7"]


def test_group_by_a_categorical_column_groups_by_value(smoothl1_command, tmp_path) -> None:
    frame = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "p": [2.0, 2.5, 3.0, 7.0]})
    frame["c"] = pd.Categorical(["b", "a", "b", "a"], categories=["b", "a", "unused"])
    path = tmp_path / "cat.parquet"
    frame.to_parquet(path)
    report = _report(smoothl1_command, path, "-t", "y", "-p", "p", "--group-by", "c", "--id", "c")
    frame["loss"] = [reference_loss(p, y) for p, y in zip(frame["p"], frame["y"], strict=True)]
    expected = frame.groupby(frame["c"].astype(str))["loss"].agg(["size", "mean"])
    assert [(g["group"], g["count"], g["value"]) for g in report["groups"]] == [
        (key, int(row["size"]), row["mean"]) for key, row in expected.iterrows()
    ]
    assert report["worst_rows"][0]["id"] == "a"


@pytest.mark.parametrize(("option", "column", "kind"), [("--group-by", "l", "list"), ("--id", "s", "struct")])
def test_list_and_struct_keys_are_refused(smoothl1_command, tmp_path, option, column, kind) -> None:
    path = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"y": [1.0, 2.0], "p": [2.0, 3.0], "l": [[1], [2]], "s": [{"a": 1}, {"a": 2}]}), path)
    line = _refused(smoothl1_command, path, "-t", "y", "-p", "p", option, column)
    assert f"nested.parquet: {option} column '{column}' holds values of type {kind}<" in line


def test_the_labels_key_as_the_target_is_refused(smoothl1_command, tmp_path) -> None:
    (tmp_path / "lab.csv").write_text("y\n1\n2\n")
    (tmp_path / "pred.csv").write_text("y,p\n1,2\n2,3\n")
    line = _refused(smoothl1_command, tmp_path / "pred.csv", "--labels", tmp_path / "lab.csv", "--on", "y", "-t", "y")
    assert "--on 'y' is also a --target" in line


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_duplicate_column_names_are_an_input_error(smoothl1_command, tmp_path, fmt) -> None:
    table = pa.Table.from_arrays([pa.array([1.0, 2.0]), pa.array([2.0, 3.0]), pa.array([5.0, 6.0])], ["y", "p", "y"])
    path = tmp_path / f"dup.{fmt}"
    pq.write_table(table, path) if fmt == "parquet" else feather.write_feather(table, path)
    assert f"dup.{fmt}: column 'y' appears 2 times in the input" in _refused(
        smoothl1_command, path, "-t", "y", "-p", "p"
    )
    assert "column 'y' appears 2 times" in _refused(smoothl1_command, path, "-t", "p")  # y is the default pred
    unused = pa.Table.from_arrays([*table.columns, pa.array([0, 0]), pa.array([0, 0])], ["a", "p", "y", "z", "z"])
    pq.write_table(unused, path) if fmt == "parquet" else feather.write_feather(unused, path)
    assert _report(smoothl1_command, path, "-t", "y", "-p", "p")["results"][0]["value"] == reference_mean(
        [2, 3], [5, 6]
    )


@pytest.mark.parametrize("sigma", ["1e-170", "1e-155"])
def test_a_sigma_whose_beta_is_inf_is_refused_like_beta_inf(smoothl1_command, abc, sigma) -> None:
    line = _refused(smoothl1_command, abc, "-t", "y", "-p", "p", "--sigma", sigma)
    assert (
        line
        == f"Error: --sigma {sigma} is too small: beta = 1 / sigma**2 is beyond float64 (inf), and beta must be finite"
    )
    assert "--beta must be a finite number" in _refused(smoothl1_command, abc, "-t", "y", "-p", "p", "--beta", "inf")
    near = _report(smoothl1_command, abc, "-t", "y", "-p", "p", "--sigma", "1.5e-154")  # beta 4.4e307: finite
    assert near["beta"] == 1 / (1.5e-154 * 1.5e-154)
    assert near["results"][0]["value"] == reference_mean([2, 3], [1, 2], 1 / (1.5e-154 * 1.5e-154))


def test_a_table_with_empty_chunks_takes_its_labels_row_by_row(tmp_path) -> None:
    empty = pa.record_batch({"k": pa.array([], pa.int64()), "p": pa.array([], pa.float64())})
    table = pa.Table.from_batches([empty, pa.record_batch({"k": [1, 2], "p": [2.0, 3.5]}), empty])
    (tmp_path / "lab.csv").write_text("y\n1\n2\n")
    report = evaluate(table, target="y", pred="p", labels=str(tmp_path / "lab.csv")).to_dict()
    assert report["results"][0]["value"] == reference_mean([2.0, 3.5], [1.0, 2.0])


# 13.12: standard input once


def test_stdin_as_input_and_labels_is_refused(smoothl1_command) -> None:
    line = _refused(smoothl1_command, "-", "--labels", "-", "-t", "y", stdin=b"y,p\n1,2\n")
    assert "standard input ('-') can be read only once" in line


# 13.11: many groups


def test_many_groups_give_the_pandas_groupby_values(smoothl1_command, tmp_path) -> None:
    rng = np.random.default_rng(11)
    rows = 6000
    frame = pd.DataFrame(
        {"g": rng.integers(0, 2500, rows), "y": rng.normal(0, 2, rows), "model_a": rng.normal(0, 2, rows)}
    )
    path = tmp_path / "many.parquet"
    frame.to_parquet(path)
    report = _report(smoothl1_command, path, "-t", "y", "-p", "model_a", "--group-by", "g", "--chunk-rows", "1000")
    assert len({g["group"] for g in report["groups"]}) == frame["g"].nunique()
    check_groups(report, pandas_reference(frame, ("model_a",)))


def test_a_target_that_is_also_the_group_key_names_its_non_number(smoothl1_command, tmp_path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("y,p\n 1,2\n2,3\nabc,4\n")
    line = _refused(smoothl1_command, data, "-t", "y", "-p", "p", "--group-by", "y")
    assert line == f"Error: {data}: row 2, column 'y': 'abc' is not a number"
    padded = tmp_path / "padded.csv"
    padded.write_text("y,p\n 1,2\n2, 3\n5,x\n")
    line = _refused(smoothl1_command, padded, "-t", "y", "-p", "p")
    assert line == f"Error: {padded}: row 2 (line 4), column 'p': 'x' is not a number"


def test_text_keys_of_a_typed_format_keep_a_csv_s_keys_as_text(smoothl1_command, tmp_path) -> None:
    """Found in review: CSV keys 7, 8 made every string key an int, JSON Lines' 'x' too (exit 3)."""
    (tmp_path / "g.csv").write_text("g,target,pred\n7,0,1\n8,0,2\n")
    (tmp_path / "g.jsonl").write_text('{"g": "07", "target": 0, "pred": 3}\n{"g": "x", "target": 0, "pred": 4}\n')
    report = _report(smoothl1_command, tmp_path / "g.csv", tmp_path / "g.jsonl", "-t", "target", "-p", "pred",
                     "--group-by", "g")  # fmt: skip
    assert [(g["group"], g["count"]) for g in report["groups"]] == [("07", 1), ("7", 1), ("8", 1), ("x", 1)]
    assert [g["sum"] for g in report["groups"]] == [2.5, 0.5, 1.5, 3.5]

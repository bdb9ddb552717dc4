"""Several files as one table (directories, globs), targets from --labels, --per-row to Parquet."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import eval_json, invoke, reference_loss, reference_mean, table_bytes, within_1e12

ROWS = 90
RNG = np.random.default_rng(23)
TARGET = RNG.normal(0.0, 2.0, ROWS)
DATA: dict[str, list[Any]] = {
    "id": [f"k{i:03d}" for i in range(ROWS)],
    "y": TARGET.tolist(),
    "model_a": (TARGET + RNG.normal(0.0, 1.0, ROWS)).tolist(),
    "model_b": (TARGET + RNG.standard_t(3, ROWS)).tolist(),
}
# Cut into files whose names sort differently from the order they are written in.
PARTS = {"part-b.csv": (30, 65), "part-a.csv": (0, 30), "part-c.csv.gz": (65, 90)}


def _slice(columns: dict[str, list[Any]], start: int, stop: int) -> dict[str, list[Any]]:
    return {name: values[start:stop] for name, values in columns.items()}


def write(path: Path, columns: dict[str, list[Any]]) -> Path:
    name = path.name
    fmt = name.split(".", 1)[1]
    path.write_bytes(table_bytes(pa.table(columns), fmt))
    return path


@pytest.fixture
def parts(tmp_path: Path) -> Path:
    folder = tmp_path / "parts"
    folder.mkdir()
    for name, (start, stop) in PARTS.items():
        write(folder / name, _slice(DATA, start, stop))
    (folder / "notes.md").write_text("not data\n")
    (folder / ".hidden.csv").write_text("y,model_a\n1,1000\n")
    return folder


@pytest.fixture
def whole(tmp_path: Path) -> Path:
    return write(tmp_path / "whole.csv", DATA)


# ---------------------------------------------------------------- directories and globs


def test_a_directory_is_one_table_in_sorted_file_order(parts, whole):
    report = eval_json([parts, "-t", "y", "-p", "model_a,model_b", "--id", "id", "--chunk-rows", "16"])
    assert [(Path(i["path"]).name, i["rows"]) for i in report["inputs"]] == [
        ("part-a.csv", 30),
        ("part-b.csv", 35),
        ("part-c.csv.gz", 25),
    ]
    assert report["rows"] == ROWS
    for result in report["results"]:
        assert result["value"] == pytest.approx(reference_mean(DATA[result["pred"]], DATA["y"]), rel=1e-12)
    combined = eval_json([whole, "-t", "y", "-p", "model_a,model_b", "--id", "id", "--chunk-rows", "16"])
    assert report["results"] == within_1e12(combined["results"])  # chunks restart at each file
    assert report["worst_rows"] == combined["worst_rows"]  # rows numbered over the files in sorted order
    for worst in report["worst_rows"]:
        assert worst["id"] == f"k{worst['row']:03d}"


def test_a_glob_reads_its_matches_in_sorted_order(parts, whole):
    report = eval_json([f"{parts}/*.csv", "-t", "y", "-p", "model_a"])  # part-c.csv.gz does not match
    assert [Path(i["path"]).name for i in report["inputs"]] == ["part-a.csv", "part-b.csv"]
    assert report["rows"] == 65
    expected = reference_mean(DATA["model_a"][:65], DATA["y"][:65])
    assert report["results"][0]["value"] == pytest.approx(expected, rel=1e-12)
    everything = eval_json([f"{parts}/part-*", "-t", "y", "-p", "model_a"])
    assert everything["rows"] == ROWS
    assert everything["results"][0]["value"] == pytest.approx(reference_mean(DATA["model_a"], DATA["y"]), rel=1e-12)


def test_a_recursive_glob_reads_nested_files_in_sorted_path_order(tmp_path):
    root = tmp_path / "runs"
    for relative, (start, stop) in {"b/deep/one.csv": (0, 20), "a/two.csv": (20, 50), "top.csv": (50, ROWS)}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        write(root / relative, _slice(DATA, start, stop))
    report = eval_json([f"{root}/**/*.csv", "-t", "y", "-p", "model_a", "--id", "id"])
    assert [(str(Path(i["path"]).relative_to(root)), i["rows"]) for i in report["inputs"]] == [
        ("a/two.csv", 30),
        ("b/deep/one.csv", 20),
        ("top.csv", 40),
    ]
    assert report["results"][0]["value"] == pytest.approx(reference_mean(DATA["model_a"], DATA["y"]), rel=1e-12)
    order = [*range(20, 50), *range(0, 20), *range(50, ROWS)]  # the rows as read: a/, then b/, then top
    for worst in report["worst_rows"]:
        assert worst["id"] == DATA["id"][order[worst["row"]]]


def test_per_row_output_over_a_directory_is_aligned_with_the_concatenation(parts, tmp_path):
    out = tmp_path / "rows.csv"
    eval_json([parts, "-t", "y", "-p", "model_a", "--id", "id", "--per-row", out])
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [int(r["row"]) for r in rows] == list(range(ROWS))
    assert [r["id"] for r in rows] == DATA["id"]
    expected = [reference_loss(p, t) for p, t in zip(DATA["model_a"], DATA["y"], strict=True)]
    assert [float(r["loss"]) for r in rows] == pytest.approx(expected, rel=1e-15)


def test_files_whose_columns_differ_are_refused_naming_the_file(parts):
    odd = write(parts / "part-d.csv", {"y": [1.0], "model_a": [1.0], "extra": [2.0]})
    result = invoke(["eval", parts, "-t", "y", "-p", "model_a"])
    assert result.exit_code == 2
    assert result.stdout == ""
    message = result.stderr
    assert message.startswith(f"Error: {odd}: ")
    assert "missing 'id', 'model_b'" in message
    assert "extra 'extra'" in message
    assert f"{parts / 'part-a.csv'}" in message  # the file it was compared with
    assert message.count("\n") == 1


def test_a_file_missing_a_column_is_refused(tmp_path):
    first = write(tmp_path / "one.csv", {"y": [1.0], "pred": [2.0]})
    second = write(tmp_path / "two.csv", {"y": [1.0]})
    result = invoke(["eval", first, second, "-t", "y"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {second}: its columns differ from those of {first} (missing 'pred'); inputs are read as one table\n"
    )


def test_a_glob_without_a_match_is_refused(tmp_path):
    pattern = f"{tmp_path}/nothing-*.csv"
    result = invoke(["eval", pattern, "-t", "y"])
    assert result.exit_code == 2
    assert result.stderr == f"Error: {pattern}: no files match this pattern\n"


def test_a_directory_without_data_files_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.md").write_text("x")
    result = invoke(["eval", tmp_path / "empty", "-t", "y"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {tmp_path / 'empty'}: no data files")


# ---------------------------------------------------------------- --labels FILE --on KEY


def _predictions(tmp_path: Path, rows: slice = slice(None)) -> Path:
    return write(tmp_path / "preds.csv", {name: DATA[name][rows] for name in ("id", "model_a", "model_b")})


def _labels(tmp_path: Path, order: list[int], fmt: str = "csv", name: str = "labels") -> Path:
    columns = {"id": [DATA["id"][i] for i in order], "y": [DATA["y"][i] for i in order]}
    return write(tmp_path / f"{name}.{fmt}", columns)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl.gz"])
@pytest.mark.parametrize("chunk", [7, 65536])
def test_labels_joined_on_a_key_equal_the_combined_file(tmp_path, whole, fmt, chunk):
    shuffled = np.random.default_rng(1).permutation(ROWS).tolist()
    labels = _labels(tmp_path, shuffled, fmt)
    args = ["-t", "y", "-p", "model_a,model_b", "--id", "id", "--chunk-rows", chunk]
    joined = eval_json([_predictions(tmp_path), *args, "--labels", labels, "--on", "id"])
    combined = eval_json([whole, *args])
    assert joined["results"] == combined["results"]
    assert joined["worst_rows"] == combined["worst_rows"]
    for result in joined["results"]:
        assert result["value"] == pytest.approx(reference_mean(DATA[result["pred"]], DATA["y"]), rel=1e-12)


def test_labels_may_hold_more_keys_than_the_predictions(tmp_path):
    labels = _labels(tmp_path, list(range(ROWS))[::-1])
    predictions = _predictions(tmp_path, slice(10, 40))
    joined = eval_json([predictions, "-t", "y", "-p", "model_a", "--labels", labels, "--on", "id"])
    assert joined["rows"] == 30
    expected = reference_mean(DATA["model_a"][10:40], DATA["y"][10:40])
    assert joined["results"][0]["value"] == pytest.approx(expected, rel=1e-12)


def test_a_key_missing_from_the_labels_is_refused_naming_row_and_key(tmp_path):
    order = [i for i in range(ROWS) if i != 20]
    labels = _labels(tmp_path, order[::-1])
    predictions = _predictions(tmp_path)
    args = ["-t", "y", "-p", "model_a", "--labels", labels, "--on", "id", "--chunk-rows", "7"]
    result = invoke(["eval", predictions, *args])
    assert result.exit_code == 2
    assert result.stderr == f"Error: {predictions}: row 20: id 'k020' is not in {labels}\n"


def test_duplicate_keys_in_the_labels_are_refused(tmp_path):
    labels = _labels(tmp_path, [*range(ROWS), 42])
    result = invoke(["eval", _predictions(tmp_path), "-t", "y", "-p", "model_a", "--labels", labels, "--on", "id"])
    assert result.exit_code == 2
    assert result.stderr == f"Error: {labels}: key 'k042' appears more than once in --on column 'id'\n"


@pytest.mark.parametrize(
    ("labels_columns", "options", "says"),
    [
        (["id", "y"], ["--on", "key"], "labels.csv: column 'key' not found in the labels file (columns: id, y)"),
        (["key", "y"], ["--on", "key"], "preds.csv: --on column 'key' not found (columns: id, model_a, model_b)"),
        (["id", "y"], ["--on", "id", "-t", "truth"], "labels.csv: column 'truth' not found in the labels file"),
    ],
)
def test_a_missing_key_or_target_column_is_refused(tmp_path, labels_columns, options, says):
    labels = write(tmp_path / "labels.csv", {name: DATA[{"key": "id"}.get(name, name)] for name in labels_columns})
    target = [] if "-t" in options else ["-t", "y"]
    result = invoke(["eval", _predictions(tmp_path), *target, "-p", "model_a", "--labels", labels, *options])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ")
    assert says in result.stderr


@pytest.mark.parametrize("case", ["duplicate keys", "no such key column", "--on without --labels", "missing key"])
def test_a_refused_labels_option_closes_the_input_files(tmp_path, opened, case):
    predictions = _predictions(tmp_path)
    if case == "duplicate keys":
        options = ["--labels", _labels(tmp_path, [*range(ROWS), 42]), "--on", "id"]
    elif case == "no such key column":
        options = ["--labels", _labels(tmp_path, list(range(ROWS))), "--on", "key"]
    elif case == "missing key":
        options = ["--labels", _labels(tmp_path, list(range(ROWS - 1))), "--on", "id"]
    else:
        options = ["--on", "id"]
    result = invoke(["eval", predictions, "-t", "y", "-p", "model_a", *options])
    assert result.exit_code == 2
    assert opened
    assert all(entry["closed"] for entry in opened), opened
    assert opened[0]["label"] == str(predictions)


def test_on_without_labels_is_a_usage_error(whole):
    result = invoke(["eval", whole, "-t", "y", "--on", "id"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --on KEY goes with --labels FILE")


# ---------------------------------------------------------------- --labels FILE, row by row


def test_labels_row_by_row_equal_the_combined_file(tmp_path, whole):
    labels = write(tmp_path / "labels.csv", {"y": DATA["y"]})
    args = ["-t", "y", "-p", "model_a,model_b", "--chunk-rows", "16"]
    zipped = eval_json([_predictions(tmp_path), *args, "--labels", labels])
    assert zipped["results"] == eval_json([whole, *args])["results"]


def test_labels_row_by_row_over_several_prediction_files(tmp_path):
    """The labels follow the predictions across file boundaries (rows in sorted file order)."""
    labels = write(tmp_path / "labels.parquet", {"y": DATA["y"]})
    stripped = tmp_path / "stripped"
    stripped.mkdir()
    for name, (start, stop) in PARTS.items():
        write(stripped / name, _slice({"model_a": DATA["model_a"]}, start, stop))
    zipped = eval_json([stripped, "-t", "y", "-p", "model_a", "--labels", labels])
    assert zipped["rows"] == ROWS
    assert zipped["results"][0]["value"] == pytest.approx(reference_mean(DATA["model_a"], DATA["y"]), rel=1e-12)


@pytest.mark.parametrize(
    ("label_rows", "says"), [(ROWS - 5, "fewer than the predictions"), (ROWS + 3, "rows but the predictions have")]
)
def test_labels_row_by_row_with_another_row_count_are_refused(tmp_path, label_rows, says):
    values = (DATA["y"] * 2)[:label_rows]
    labels = write(tmp_path / "labels.csv", {"y": values})
    result = invoke(["eval", _predictions(tmp_path), "-t", "y", "-p", "model_a", "--labels", labels])
    assert result.exit_code == 2
    assert result.stdout == ""
    message = result.stderr
    assert message.startswith(f"Error: {labels} has {label_rows} rows")
    assert says in message
    assert "row by row" in message
    assert "--on KEY" in message
    if label_rows > ROWS:
        assert f"the predictions have {ROWS}" in message


# ---------------------------------------------------------------- --per-row FILE.parquet


def _csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text().splitlines()))


def test_per_row_parquet_holds_the_same_rows_as_the_csv(tmp_path, whole):
    out_parquet, out_csv = tmp_path / "out" / "rows.parquet", tmp_path / "out" / "rows.csv"
    out_parquet.parent.mkdir()
    args = [whole, "-t", "y", "-p", "model_a", "--id", "id", "--chunk-rows", "16"]
    eval_json([*args, "--per-row", out_parquet])
    eval_json([*args, "--per-row", out_csv])
    table = pq.read_table(out_parquet)
    assert table.column_names == ["row", "id", "loss"]
    assert table.schema.field("row").type == pa.int64()
    assert table.schema.field("loss").type == pa.float64()
    from_csv = _csv_rows(out_csv)
    assert table.column("row").to_pylist() == [int(r["row"]) for r in from_csv] == list(range(ROWS))
    assert table.column("id").to_pylist() == [r["id"] for r in from_csv] == DATA["id"]
    losses = table.column("loss").to_pylist()
    assert losses == [float(r["loss"]) for r in from_csv]
    expected = [reference_loss(p, t) for p, t in zip(DATA["model_a"], DATA["y"], strict=True)]
    assert losses == pytest.approx(expected, rel=1e-15)
    assert sorted(p.name for p in out_parquet.parent.iterdir()) == ["rows.csv", "rows.parquet"]  # no temp files


def test_per_row_parquet_with_several_preds_and_omitted_rows(tmp_path):
    columns = {"y": [1.0, 2.0, math.nan, 4.0], "model_a": [1.5, 2.0, 3.0, 6.0], "model_b": [0.0, 2.5, 3.0, 4.0]}
    data = write(tmp_path / "data.csv", columns)
    out = tmp_path / "rows.parquet"
    report = eval_json([data, "-t", "y", "-p", "model_a,model_b", "--nan-policy", "omit", "--per-row", out])
    assert report["results"][0]["omitted"] == 1
    table = pq.read_table(out)
    assert table.column_names == ["row", "loss_model_a", "loss_model_b"]
    assert table.to_pydict() == {
        "row": [0, 1, 2, 3],
        "loss_model_a": [0.125, 0.0, None, 1.5],
        "loss_model_b": [0.5, 0.125, None, 0.0],
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "rows.parquet"]


def test_a_failed_run_leaves_no_per_row_file_and_no_temp_file(tmp_path):
    columns = {"y": [1.0, 2.0, math.nan] * 20, "pred": [1.5, 2.0, 3.0] * 20}
    data = write(tmp_path / "data.csv", columns)
    out = tmp_path / "rows.parquet"
    result = invoke(["eval", data, "-t", "y", "--per-row", out, "--chunk-rows", "4"])
    assert result.exit_code == 2
    assert "20 rows with a missing, NaN or infinite value" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]


def test_a_failed_run_keeps_an_old_per_row_file_as_it_was(tmp_path):
    data = write(tmp_path / "data.csv", {"y": [1.0, math.nan], "pred": [1.5, 2.0]})
    out = tmp_path / "rows.parquet"
    out.write_bytes(b"old contents")
    result = invoke(["eval", data, "-t", "y", "--per-row", out])
    assert result.exit_code == 2
    assert out.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "rows.parquet"]


def test_per_row_needs_a_known_extension(whole, tmp_path):
    result = invoke(["eval", whole, "-t", "y", "-p", "model_a", "--per-row", tmp_path / "rows.xlsx"])
    assert result.exit_code == 2
    assert "name a .csv or .parquet file" in result.stderr
    assert not (tmp_path / "rows.xlsx").exists()


def test_per_row_parquet_and_the_report_agree(tmp_path, whole):
    out = tmp_path / "rows.parquet"
    report = eval_json([whole, "-t", "y", "-p", "model_b", "--per-row", out, "-o", tmp_path / "r.json"])
    losses = pq.read_table(out).column("loss").to_pylist()
    result = report["results"][0]
    assert math.fsum(losses) / len(losses) == pytest.approx(result["value"], rel=1e-12)
    assert max(losses) == result["max"]
    assert json.loads((tmp_path / "r.json").read_text()) == report

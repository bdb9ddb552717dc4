"""Every way `smoothl1 eval` can be given bad input: exit 2, one `Error: ` line that says where, no traceback."""

from __future__ import annotations

import gzip
import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import smoothl1_cli.engines
from tests.conftest import eval_json, invoke, reference_mean, table_bytes

CLEAN = {"label": [1.0, 2.0, 3.0, 4.0], "pred": [1.5, 2.5, 2.0, 4.0]}


def error_line(args: list[Any], input: bytes | None = None) -> str:
    """The one stderr line of a run that must exit 2 with an input error, nothing on stdout, no traceback."""
    result = invoke(["eval", *args], input=input)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    return lines[0]


def csv_file(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# Columns.


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl", "csv.gz"])
def test_misspelled_target_suggests_the_nearest_name(write_table, fmt) -> None:
    path = write_table(fmt, **CLEAN)
    line = error_line([path, "-t", "lable"])
    assert str(path) in line
    assert "'lable'" in line
    assert "(columns: label, pred)" in line
    assert line.endswith("did you mean 'label'?")


def test_target_differing_in_case_suggests_the_column(write_table) -> None:
    path = write_table("csv", Label=[1.0], pred=[2.0])
    assert "did you mean 'Label'?" in error_line([path, "-t", "label"])


def test_missing_pred_column(write_table) -> None:
    path = write_table("parquet", **CLEAN)
    line = error_line([path, "-t", "label", "-p", "model_b"])
    assert str(path) in line
    assert "'model_b'" in line
    assert "label, pred" in line


def test_misspelled_pred_suggests_the_nearest_name(write_table) -> None:
    path = write_table("csv", **CLEAN)
    line = error_line([path, "-t", "label", "-p", "prd"])
    assert "'prd'" in line
    assert "did you mean 'pred'?" in line


def test_missing_id_and_weight_columns(write_table) -> None:
    path = write_table("csv", **CLEAN)
    assert "'key'" in error_line([path, "-t", "label", "--id", "key"])
    assert "'wt'" in error_line([path, "-t", "label", "-w", "wt"])


def test_no_prediction_column_at_all(write_table) -> None:
    path = write_table("csv", label=[1.0, 2.0], name=["a", "b"])
    line = error_line([path, "-t", "label"])
    assert str(path) in line
    assert "--pred" in line


def test_target_given_as_its_own_prediction(write_table) -> None:
    path = write_table("csv", **CLEAN)
    assert "'label'" in error_line([path, "-t", "label", "-p", "label"])


def test_second_input_lacks_a_column(write_table) -> None:
    first = write_table("csv", name="first", **CLEAN)
    second = write_table("csv", name="second", label=[1.0], other=[2.0])
    line = error_line([first, second, "-t", "label"])
    assert str(second) in line
    assert "'pred'" in line


# Values.


@pytest.fixture(scope="module")
def big_csv_with_a_typo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200,000 rows; the pred of data row 150,000 (0-based) is 'oops'."""
    rows = np.arange(200_000)
    lines = [f"{r},{r * 0.5},{r * 0.5 + 0.25}" for r in rows]
    lines[150_000] = "150000,75000.0,oops"
    path = tmp_path_factory.mktemp("big") / "big.csv"
    path.write_text("id,y,pred\n" + "\n".join(lines) + "\n")
    return path


def test_non_numeric_value_deep_in_a_large_csv_names_its_row(big_csv_with_a_typo) -> None:
    line = error_line([big_csv_with_a_typo, "-t", "y", "-p", "pred", "--id", "id"])
    assert str(big_csv_with_a_typo) in line
    assert "row 150000" in line  # 0-based data rows, as in per-row output
    assert "row 150001" not in line
    assert "row 149999" not in line
    assert "'pred'" in line
    assert "'oops'" in line


def test_non_numeric_value_in_a_later_file_names_that_file_and_its_row(write_table, tmp_path) -> None:
    first = write_table("csv", name="first", **CLEAN)
    second = csv_file(tmp_path, "label,pred\n1,2\n3,4\n5,n/a?\n", "second.csv")
    line = error_line([first, second, "-t", "label"])
    assert str(second) in line
    assert str(first) not in line
    assert "row 2" in line
    assert "'n/a?'" in line


@pytest.mark.parametrize("bad_row", [0, 7])
def test_non_numeric_value_in_json_lines(tmp_path, bad_row) -> None:
    path = tmp_path / "data.jsonl"
    records: list[dict[str, Any]] = [{"y": float(i), "pred": float(i) + 0.5} for i in range(10)]
    records[bad_row]["pred"] = "oops"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    line = error_line([path, "-t", "y", "-p", "pred"])
    assert str(path) in line
    assert f"row {bad_row}" in line
    assert "'pred'" in line
    assert "'oops'" in line


def test_non_numeric_value_on_stdin(tmp_path) -> None:
    line = error_line(["-", "-t", "y"], input=b"y,pred\n1,2\n3,zz\n")
    assert "row 1" in line
    assert "'zz'" in line


@pytest.mark.parametrize(
    ("text", "row", "found"),
    [("y,pred\n1,2\n3,4\n5\n", 2, 1), ("y,pred\n1,2\n3,4,5\n6,7\n", 1, 3)],
    ids=["short", "long"],
)
def test_ragged_row(tmp_path, text, row, found) -> None:
    path = csv_file(tmp_path, text)
    line = error_line([path, "-t", "y"])
    assert str(path) in line
    assert f"row {row}" in line
    assert "expected 2 fields" in line
    assert f"found {found}" in line


@pytest.mark.parametrize(
    ("pred", "target", "value"),
    [
        (["1", "2", "3", "nan", "5", "6", "nan"], ["1"] * 7, "NaN"),
        (["1", "2", "3", "", "5", "6", ""], ["1"] * 7, "NaN"),  # missing
        (["1", "2", "3", "4", "5", "6", "7"], ["1", "1", "1", "inf", "1", "1", "-inf"], "inf"),
    ],
    ids=["nan", "missing", "inf"],
)
def test_nan_under_the_default_policy_gives_count_and_first_row(tmp_path, pred, target, value) -> None:
    path = csv_file(tmp_path, "y,pred\n" + "".join(f"{t},{p}\n" for p, t in zip(pred, target, strict=True)))
    line = error_line([path, "-t", "y"])
    assert str(path) in line
    assert "2 rows" in line
    assert "row 3" in line
    assert f"'{'y' if value == 'inf' else 'pred'}'" in line
    assert value in line
    assert "--nan-policy" in line  # says how to get past it


def test_nan_in_the_weight_column(tmp_path) -> None:
    path = csv_file(tmp_path, "y,pred,w\n1,2,1\n1,2,nan\n")
    line = error_line([path, "-t", "y", "-w", "w"])
    assert "row 1" in line
    assert "'w'" in line


def test_negative_weight(tmp_path) -> None:
    path = csv_file(tmp_path, "y,pred,w\n1,2,1\n1,2,0.5\n1,2,-0.25\n1,2,3\n")
    line = error_line([path, "-t", "y", "-w", "w"])
    assert str(path) in line
    assert "row 2" in line
    assert "'w'" in line
    assert "-0.25" in line


def test_weights_summing_to_zero(tmp_path) -> None:
    path = csv_file(tmp_path, "y,pred,w\n1,2,0\n1,3,0\n")
    line = error_line([path, "-t", "y", "-w", "w"])
    assert str(path) in line
    assert "'w'" in line
    assert "0" in line


def test_all_rows_omitted(tmp_path) -> None:
    path = csv_file(tmp_path, "y,pred\n1,\nnan,2\n3,inf\n")
    line = error_line([path, "-t", "y", "--nan-policy", "omit"])
    assert str(path) in line
    assert "3" in line
    assert "omitted" in line


def test_string_column_in_parquet_used_as_pred(write_table) -> None:
    path = write_table("parquet", y=[1.0, 2.0], s=["1.5", "2.5"])
    line = error_line([path, "-t", "y", "-p", "s"])
    assert str(path) in line
    assert "'s'" in line
    assert "string" in line


def test_string_column_in_parquet_used_as_target(write_table) -> None:
    path = write_table("parquet", y=["1", "2"], pred=[1.0, 2.0])
    line = error_line([path, "-t", "y", "-p", "pred"])
    assert "'y'" in line


# Files.


def test_empty_file(tmp_path) -> None:
    path = csv_file(tmp_path, "")
    line = error_line([path, "-t", "y"])
    assert str(path) in line
    assert "empty" in line


def test_empty_stdin() -> None:
    assert "empty" in error_line(["-", "-t", "y"], input=b"")


@pytest.mark.parametrize("fmt", ["csv", "tsv", "csv.gz"])
def test_header_only_file(tmp_path, fmt) -> None:
    path = tmp_path / f"data.{fmt}"
    path.write_bytes(table_bytes(pa.table({"y": pa.array([], pa.float64()), "pred": pa.array([], pa.float64())}), fmt))
    line = error_line([path, "-t", "y"])
    assert str(path) in line
    assert "no data rows" in line


def test_header_only_parquet(write_table) -> None:
    path = write_table("parquet", y=pa.array([], pa.float64()), pred=pa.array([], pa.float64()))
    assert str(path) in error_line([path, "-t", "y"])


def test_missing_file(tmp_path, write_table) -> None:
    present = write_table("csv", **CLEAN)
    path = tmp_path / "no" / "such.csv"
    line = error_line([present, path, "-t", "label"])
    assert str(path) in line
    assert "no such file" in line


def test_a_directory_with_no_files(tmp_path) -> None:
    folder = tmp_path / "empty_folder"
    folder.mkdir()
    (folder / "notes.md").write_text("not data")
    line = error_line([folder, "-t", "y"])
    assert str(folder) in line


def test_a_glob_that_matches_nothing(tmp_path) -> None:
    pattern = str(tmp_path / "nothing*.csv")
    assert pattern in error_line([pattern, "-t", "y"])


def test_a_directory_whose_files_disagree_names_the_odd_one(tmp_path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    csv_file(folder, "y,pred\n1,2\n", "a.csv")
    odd = csv_file(folder, "y,other\n1,2\n", "b.csv")
    line = error_line([folder, "-t", "y"])
    assert str(odd) in line
    assert "'pred'" in line


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(write_table) -> None:
    path = write_table("csv", **CLEAN)
    path.chmod(0)
    try:
        assert str(path) in error_line([path, "-t", "label"])
    finally:
        path.chmod(0o644)


def test_corrupt_parquet(tmp_path) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    assert str(path) in error_line([path, "-t", "y"])


def test_truncated_parquet(tmp_path) -> None:
    data = table_bytes(pa.table(CLEAN), "parquet")
    path = tmp_path / "data.parquet"
    path.write_bytes(data[: len(data) // 2])
    assert str(path) in error_line([path, "-t", "label"])


def test_corrupt_arrow(tmp_path) -> None:
    path = tmp_path / "data.arrow"
    path.write_bytes(b"ARROW1\x00\x00" + np.random.default_rng(1).bytes(512))
    assert str(path) in error_line([path, "-t", "y"])


@pytest.mark.parametrize("codec", ["gz", "zst", "bz2", "lz4"])
def test_truncated_compressed_csv(tmp_path, codec) -> None:
    rows = pa.table({"y": np.arange(5000.0), "pred": np.arange(5000.0) + 0.5})
    data = table_bytes(rows, f"csv.{codec}")
    path = tmp_path / f"data.csv.{codec}"
    path.write_bytes(data[: len(data) // 2])
    line = error_line([path, "-t", "y"])
    assert str(path) in line


def test_truncated_gzip_on_stdin() -> None:
    data = gzip.compress(b"y,pred\n" + b"".join(b"%d,%d.5\n" % (i, i) for i in range(5000)))
    line = error_line(["-", "-t", "y"], input=data[: len(data) // 2])
    assert "truncated" in line or "corrupt" in line


def test_carriage_return_line_endings_are_read_as_lines(tmp_path) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(b"y,pred\r1,2\r3,5\r")
    report = eval_json([path, "-t", "y"])
    assert report["rows"] == 2
    assert report["results"][0]["value"] == (0.5 + 1.5) / 2


def test_parquet_bytes_under_a_csv_name_are_read_as_parquet(tmp_path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(table_bytes(pa.table(CLEAN), "parquet"))
    report = eval_json([path, "-t", "label"])
    assert report["inputs"][0]["format"] == "parquet"
    assert report["results"][0]["value"] == reference_mean(CLEAN["pred"], CLEAN["label"])


@pytest.mark.parametrize(
    "junk", [b"\x7fELF\x02\x01\x01\x00\x00\x00\r\x1b[31m\n1,2\n", b"PK\x03\x04\x14\x00\x00\x00\x08\x00"]
)
def test_binary_junk_under_a_csv_name_is_one_clean_error_line(tmp_path, junk) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(junk)
    line = error_line([path, "-t", "label"])
    assert str(path) in line
    assert "\x1b" not in line


def test_stdin_named_twice() -> None:
    assert "-" in error_line(["-", "-", "-t", "y"], input=b"y,pred\n1,2\n")


# Options.


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--beta", "-1"], ["--beta", "-1"]),
        (["--beta", "nan"], ["--beta"]),
        (["--loss", "huber", "--delta", "0"], ["--delta", "0"]),
        (["--loss", "huber", "--delta", "-2"], ["--delta", "-2"]),
        (["--loss", "huber", "--beta", "1"], ["--beta", "huber"]),
        (["--loss", "huber", "--sigma", "1"], ["--sigma", "huber"]),
        (["--beta", "1", "--sigma", "2"], ["--beta", "--sigma"]),
        (["--delta", "1"], ["--delta", "huber"]),
        (["--sigma", "0"], ["--sigma"]),
    ],
    ids=[
        "negative-beta",
        "nan-beta",
        "zero-delta",
        "negative-delta",
        "beta-with-huber",
        "sigma-with-huber",
        "beta-and-sigma",
        "delta-without-huber",
        "zero-sigma",
    ],
)
def test_bad_loss_parameter(write_table, options, words) -> None:
    path = write_table("csv", **CLEAN)
    line = error_line([path, "-t", "label", *options])
    for word in words:
        assert word in line


@pytest.mark.parametrize(
    ("options", "name"),
    [
        (["--reduction", "median"], "--reduction"),
        (["--loss", "l2"], "--loss"),
        (["--nan-policy", "ignore"], "--nan-policy"),
        (["--multioutput", "sum"], "--multioutput"),
        (["--input-format", "xlsx"], "--input-format"),
        (["-f", "yaml"], "--format"),
        (["--top", "-1"], "--top"),
        (["--chunk-rows", "0"], "--chunk-rows"),
        (["--beta", "one"], "--beta"),
    ],
)
def test_bad_choice_is_a_click_usage_error(write_table, options, name) -> None:
    path = write_table("csv", **CLEAN)
    result = invoke(["eval", path, "-t", "label", *options])
    assert result.exit_code == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    assert "Error: Invalid value for " in result.stderr
    assert f"'{name}'" in result.stderr


def test_missing_target_option_is_a_usage_error(write_table) -> None:
    result = invoke(["eval", write_table("csv", **CLEAN)])
    assert result.exit_code == 2
    assert "--target" in result.stderr
    assert "Traceback" not in result.stderr


def test_multi_output_with_mismatched_predictions(write_table) -> None:
    path = write_table("csv", x=[1.0], y=[1.0], px=[1.0], py=[1.0], pz=[1.0])
    line = error_line([path, "-t", "x,y", "-p", "px,py,pz"])
    assert "2 targets" in line
    assert "3" in line
    for name in ("x", "y", "px", "py", "pz"):
        assert name in line


def test_multi_output_with_mismatched_detected_predictions_names_the_file(write_table) -> None:
    path = write_table("csv", x=[1.0], y=[1.0], a=[1.0], b=[1.0], c=[1.0])
    line = error_line([path, "-t", "x,y"])
    assert "2 targets" in line
    assert str(path) in line


def test_reduction_none_with_a_per_row_file(write_table, tmp_path) -> None:
    path = write_table("csv", **CLEAN)
    line = error_line([path, "-t", "label", "--reduction", "none", "--per-row", tmp_path / "x.csv"])
    assert "--per-row" in line
    assert not (tmp_path / "x.csv").exists()


# Output files.


def test_output_into_a_missing_directory_leaves_no_file(write_table, tmp_path) -> None:
    path = write_table("csv", **CLEAN)
    target = tmp_path / "missing" / "report.json"
    line = error_line([path, "-t", "label", "-o", target])
    assert str(target) in line
    assert not target.parent.exists()


def test_per_row_into_a_missing_directory_leaves_no_file(write_table, tmp_path) -> None:
    path = write_table("csv", **CLEAN)
    target = tmp_path / "missing" / "rows.csv"
    line = error_line([path, "-t", "label", "--per-row", target])
    assert str(target) in line
    assert not target.parent.exists()


def test_failed_run_leaves_an_existing_output_file_alone(tmp_path) -> None:
    bad = csv_file(tmp_path, "y,pred\n1,oops\n")
    target = tmp_path / "report.json"
    target.write_text("previous report")
    error_line([bad, "-t", "y", "-o", target])
    assert target.read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "report.json"]


def test_failed_run_leaves_no_per_row_file(tmp_path) -> None:
    bad = csv_file(tmp_path, "y,pred\n1,2\n1,oops\n")
    target = tmp_path / "rows.csv"
    error_line([bad, "-t", "y", "--per-row", target])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]


# Internal errors, closed pipes.


def _break_evaluate(monkeypatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("kaboom in the reduction")

    monkeypatch.setattr(smoothl1_cli.engines, "evaluate_sources", broken)


def test_internal_error_exits_3_and_asks_for_a_report(write_table, monkeypatch) -> None:
    _break_evaluate(monkeypatch)
    monkeypatch.delenv("SMOOTHL1_DEBUG", raising=False)
    result = invoke(["eval", write_table("csv", **CLEAN), "-t", "label"])
    assert result.exit_code == 3, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: ")
    assert "report" in lines[0]
    assert "--debug" in lines[0]
    assert "kaboom" in lines[0]


def test_internal_error_with_debug_shows_the_traceback(write_table, monkeypatch) -> None:
    _break_evaluate(monkeypatch)
    monkeypatch.delenv("SMOOTHL1_DEBUG", raising=False)
    result = invoke(["eval", write_table("csv", **CLEAN), "-t", "label", "--debug"])
    assert result.exit_code == 3
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: kaboom in the reduction" in result.stderr
    assert "report" in result.stderr


def test_internal_error_with_smoothl1_debug_shows_the_traceback(write_table, monkeypatch) -> None:
    _break_evaluate(monkeypatch)
    monkeypatch.setenv("SMOOTHL1_DEBUG", "1")
    result = invoke(["eval", write_table("csv", **CLEAN), "-t", "label"])
    assert result.exit_code == 3
    assert "Traceback (most recent call last)" in result.stderr


def test_input_error_with_debug_is_still_one_line(write_table) -> None:
    path = write_table("csv", **CLEAN)
    result = invoke(["eval", path, "-t", "lable", "--debug"])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1


@pytest.fixture(scope="module")
def many_rows_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough rows that --reduction none writes far more than a pipe holds."""
    path = tmp_path_factory.mktemp("pipe") / "many.csv"
    path.write_text("y,pred\n" + "".join(f"{i},{i + 0.5}\n" for i in range(200_000)))
    return path


def test_closed_pipe_ends_quietly(smoothl1_command, many_rows_csv) -> None:
    command = " ".join(
        map(shlex.quote, [*smoothl1_command, "eval", str(many_rows_csv), "-t", "y", "--reduction", "none"])
    )
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command} | head -n 2"], capture_output=True, timeout=60, check=False
    )
    assert done.stdout == b"row,loss\n0,0.125\n"
    assert done.stderr == b""
    assert done.returncode == 0  # pipefail: smoothl1's own status


def test_closed_pipe_on_the_report_ends_quietly(smoothl1_command, many_rows_csv) -> None:
    command = " ".join(map(shlex.quote, [*smoothl1_command, "eval", str(many_rows_csv), "-t", "y", "--top", "5000"]))
    done = subprocess.run(
        ["bash", "-c", f"{command} | head -n 1; exit ${{PIPESTATUS[0]}}"], capture_output=True, timeout=60, check=False
    )
    assert done.stdout == b"{\n"
    assert done.stderr == b""
    assert done.returncode == 0

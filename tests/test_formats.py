"""The same rows in every format, on standard input, sniffed or named, and split over several files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tests.conftest import ALL_FORMATS, eval_json, invoke, reference_mean, run_command, table_bytes, within_1e12

ROWS = 40


def _columns() -> dict[str, list[Any]]:
    """Awkward float64 values (no short decimal form), |d| on both sides of beta = 1."""
    rng = np.random.default_rng(20240611)
    target = rng.normal(0.0, 3.0, ROWS)
    pred = target + rng.normal(0.0, 1.5, ROWS)
    return {"id": [f"r{i}" for i in range(ROWS)], "y": target.tolist(), "pred": pred.tolist()}


COLUMNS = _columns()
TABLE = pa.table(COLUMNS)
FORMAT_NAMES = {"csv": "csv", "tsv": "tsv", "jsonl": "jsonl", "parquet": "parquet", "arrow": "ipc", "feather": "ipc"}


def expected_format(fmt: str) -> str:
    """'csv.gz' -> 'csv', 'arrow' -> 'ipc': the name the report gives the format (compression aside)."""
    return FORMAT_NAMES[fmt.partition(".")[0]]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The report on the plain CSV file, which every other spelling of the same rows must reproduce."""
    path = tmp_path_factory.mktemp("baseline") / "data.csv"
    path.write_bytes(table_bytes(TABLE, "csv"))
    return eval_json([path, "-t", "y", "--id", "id"])


def test_baseline_matches_reference(baseline: dict[str, Any]) -> None:
    (result,) = baseline["results"]
    assert result["pred"] == "pred"
    assert result["count"] == ROWS
    assert result["value"] == pytest.approx(reference_mean(COLUMNS["pred"], COLUMNS["y"]), rel=1e-12)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_every_format_gives_identical_results(write_table, baseline, fmt) -> None:
    path = write_table(fmt, **COLUMNS)
    report = eval_json([path, "-t", "y", "--id", "id"])
    assert report["results"] == baseline["results"]  # == on floats: the same value to the last bit
    assert report["worst_rows"] == baseline["worst_rows"]
    assert report["inputs"] == [{"path": str(path), "format": expected_format(fmt), "rows": ROWS}]
    assert report["rows"] == ROWS


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_stdin_in_process_gives_identical_results(baseline, fmt) -> None:
    report = eval_json(["-", "-t", "y", "--id", "id"], input=table_bytes(TABLE, fmt))
    assert report["results"] == baseline["results"]
    assert report["inputs"] == [{"path": "-", "format": expected_format(fmt), "rows": ROWS}]


@pytest.mark.parametrize("fmt", ["csv.gz", "csv.zst", "parquet"])  # a process each: the costly ones only
def test_installed_command_reads_stdin(smoothl1_command, baseline, fmt) -> None:
    done = run_command(smoothl1_command, "eval", "-", "-t", "y", "--id", "id", stdin=table_bytes(TABLE, fmt))
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    report = json.loads(done.stdout)  # not a terminal: JSON by default
    assert report["results"] == baseline["results"]
    assert report["inputs"] == [{"path": "-", "format": expected_format(fmt), "rows": ROWS}]


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_unknown_extension_is_sniffed_from_the_bytes(tmp_path, baseline, fmt) -> None:
    path = tmp_path / "predictions.dat"
    path.write_bytes(table_bytes(TABLE, fmt))
    report = eval_json([path, "-t", "y", "--id", "id"])
    assert report["results"] == baseline["results"]
    assert report["inputs"][0]["format"] == expected_format(fmt)


@pytest.mark.parametrize(
    ("written", "name", "override"),
    [
        ("parquet", "data.csv", "parquet"),
        ("csv", "data.parquet", "csv"),
        ("jsonl", "data.csv", "jsonl"),
        ("tsv", "data.txt", "tsv"),
        ("arrow", "data.bin", "ipc"),
        ("csv.gz", "data.parquet", "csv"),  # compression is still detected
        ("parquet", "data.jsonl", "parquet"),
    ],
)
def test_input_format_overrides_the_extension(tmp_path, baseline, written, name, override) -> None:
    path = tmp_path / name
    path.write_bytes(table_bytes(TABLE, written))
    report = eval_json([path, "-t", "y", "--id", "id", "--input-format", override])
    assert report["results"] == baseline["results"]
    assert report["inputs"][0]["format"] == override


def test_input_format_applies_to_stdin(baseline) -> None:
    report = eval_json(["-", "-t", "y", "--id", "id", "--input-format", "tsv"], input=table_bytes(TABLE, "tsv.gz"))
    assert report["results"] == baseline["results"]
    assert report["inputs"][0]["format"] == "tsv"


def _delimited(delimiter: str) -> bytes:
    """The table as text with `delimiter`, floats at full precision (repr)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(zip(COLUMNS["id"], map(repr, COLUMNS["y"]), map(repr, COLUMNS["pred"]), strict=True))
    return out.getvalue().encode()


@pytest.mark.parametrize(
    ("name", "delimiter"),
    [("semicolon.csv", ";"), ("tabs.csv", "\t"), ("tabs.tsv", "\t"), ("tabs.txt", "\t"), ("semicolon.txt", ";")],
)
def test_delimiter_is_sniffed_from_the_header(tmp_path, baseline, name, delimiter) -> None:
    path = tmp_path / name
    path.write_bytes(_delimited(delimiter))
    report = eval_json([path, "-t", "y", "--id", "id"])
    assert report["results"] == baseline["results"]
    assert report["rows"] == ROWS


def test_semicolon_delimited_stdin_is_sniffed(baseline) -> None:
    report = eval_json(["-", "-t", "y", "--id", "id"], input=_delimited(";"))
    assert report["results"] == baseline["results"]


def test_crlf_line_endings_read_like_lf(tmp_path, baseline) -> None:
    path = tmp_path / "windows.csv"
    path.write_bytes(_delimited(",").replace(b"\n", b"\r\n"))
    assert eval_json([path, "-t", "y", "--id", "id"])["results"] == baseline["results"]


# Several inputs: one table.

PARTS = ((0, 13, "csv"), (13, 30, "parquet"), (30, ROWS, "jsonl.gz"))


def _write_parts(tmp_path: Path, formats: tuple[str, ...]) -> list[Path]:
    paths = []
    for index, ((start, stop, _), fmt) in enumerate(zip(PARTS, formats, strict=True)):
        path = tmp_path / f"part{index}.{fmt}"
        path.write_bytes(table_bytes(TABLE.slice(start, stop - start), fmt))
        paths.append(path)
    return paths


@pytest.mark.parametrize(
    "formats", [("csv", "csv", "csv"), ("csv", "parquet", "jsonl.gz"), ("arrow", "tsv", "csv.zst")]
)
def test_several_inputs_are_read_as_one_table(tmp_path, baseline, formats) -> None:
    paths = _write_parts(tmp_path, formats)
    report = eval_json([*paths, "-t", "y", "--id", "id"])
    assert report["rows"] == ROWS
    assert [i["rows"] for i in report["inputs"]] == [stop - start for start, stop, _ in PARTS]
    assert [i["format"] for i in report["inputs"]] == [expected_format(f) for f in formats]
    assert [i["path"] for i in report["inputs"]] == [str(p) for p in paths]
    assert report["results"] == baseline["results"]
    assert report["worst_rows"] == baseline["worst_rows"]  # rows numbered over all inputs


def test_per_row_numbers_continue_across_inputs(tmp_path) -> None:
    paths = _write_parts(tmp_path, ("csv", "parquet", "jsonl.gz"))
    result = invoke(["eval", *paths, "-t", "y", "--id", "id", "--reduction", "none"])
    assert result.exit_code == 0, result.stderr
    lines = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [int(line["row"]) for line in lines] == list(range(ROWS))
    assert [line["id"] for line in lines] == COLUMNS["id"]
    expected = [reference_mean([p], [t]) for p, t in zip(COLUMNS["pred"], COLUMNS["y"], strict=True)]
    assert [float(line["loss"]) for line in lines] == pytest.approx(expected, rel=1e-15)


def test_worst_row_in_a_later_file_has_its_global_row_number(tmp_path) -> None:
    first = tmp_path / "a.csv"
    first.write_bytes(table_bytes(pa.table({"y": [0.0, 0.0], "pred": [0.1, 0.2]}), "csv"))
    second = tmp_path / "b.parquet"
    second.write_bytes(table_bytes(pa.table({"y": [0.0, 0.0, 0.0], "pred": [0.0, 9.0, 0.3]}), "parquet"))
    report = eval_json([first, second, "-t", "y", "--top", "1"])
    assert [w["row"] for w in report["worst_rows"]] == [3]
    assert report["worst_rows"][0]["prediction"] == 9.0


def test_stdin_and_a_file_together(tmp_path, baseline) -> None:
    first = tmp_path / "first.csv"
    first.write_bytes(table_bytes(TABLE.slice(0, 25), "csv"))
    report = eval_json([first, "-", "-t", "y", "--id", "id"], input=table_bytes(TABLE.slice(25), "parquet"))
    assert [(i["path"], i["format"], i["rows"]) for i in report["inputs"]] == [
        (str(first), "csv", 25),
        ("-", "parquet", ROWS - 25),
    ]
    assert report["results"] == within_1e12(baseline["results"])  # chunks restart at the second input


def test_a_directory_is_read_as_its_files(tmp_path, baseline) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    paths = _write_parts(folder, ("parquet", "csv", "jsonl.gz"))
    report = eval_json([folder, "-t", "y", "--id", "id"])
    assert report["rows"] == ROWS
    assert [Path(i["path"]).name for i in report["inputs"]] == [p.name for p in paths]  # in name order
    assert report["results"] == within_1e12(baseline["results"])


def test_a_glob_is_read_as_its_files(tmp_path, baseline) -> None:
    _write_parts(tmp_path, ("csv", "csv", "csv"))
    (tmp_path / "unrelated.csv").write_text("nothing,to,see\n")
    report = eval_json([str(tmp_path / "part*.csv"), "-t", "y", "--id", "id"])
    assert report["rows"] == ROWS
    assert [Path(i["path"]).name for i in report["inputs"]] == ["part0.csv", "part1.csv", "part2.csv"]
    assert report["results"] == within_1e12(baseline["results"])

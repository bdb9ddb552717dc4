"""The readers on valid input they refused, and on hostile input they took too long (or too much) to refuse.

Each input goes through the installed command; big inputs are generated in tmp_path, as small as
the case allows. References are independent: Python's csv and json modules, math.fsum.
"""

from __future__ import annotations

import csv
import io
import json
import math
import resource
import subprocess

import pyarrow as pa
import pytest

from smoothl1_cli import readers
from tests.conftest import reference_mean, run_command
from tests.test_bounds import MB, measure, one_error_line


def exit_2_line(result) -> str:  # type: ignore[no-untyped-def]
    """The one `Error:` line of a run that exited 2 (no traceback, nothing on stdout)."""
    assert result.returncode == 2, (result.returncode, result.stderr.decode())
    assert result.stdout == b""
    return one_error_line(result.stderr)


def quiet_value(result) -> float:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stderr.decode()
    return float(result.stdout.decode())


def csv_reference(data: bytes, pred: str = "pred", target: str = "y") -> float:
    """The mean loss of a CSV file as Python's csv module reads it."""
    csv.field_size_limit(64 * MB)
    rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    return reference_mean([float(r[pred]) for r in rows], [float(r[target]) for r in rows])


# --- 13.11: escaped quotes, unclosed quotes ------------------------------------------------------


def escaped_rows(count: int) -> bytes:
    lines = [f'{i % 7},{i % 5 + 0.5},"say ""hi""\n{i}",x""y\n' for i in range(count)]
    return ("y,pred,note,other\n" + "".join(lines)).encode()


def test_escaped_quotes_are_cut_by_parity_not_lexed(monkeypatch) -> None:
    """Found: a "" escape made the block cutter take its quote-by-quote Python path (5.5x slower
    reading); "" inside quotes keeps quote parity, so the vectorized path applies."""
    data = b'1,"a ""b""\nc",2\n3,"""",4\n5,"x\n'

    def refuse(*args: object) -> int:
        raise AssertionError("lexed quote by quote")

    lexed = readers.text._lexed_boundary(data, len(data))
    monkeypatch.setattr(readers.text, "_lexed_boundary", refuse)
    assert readers.text._last_boundary(data, len(data), quoted=True) == lexed == data.index(b"5,")


def ends_a_record(prefix: bytes) -> bool:
    """Whether Python's csv reads `prefix` as whole records: a record written after it stays its own."""
    rows = list(csv.reader(io.StringIO((prefix + b"Z\n").decode(), newline="")))
    return rows[-1] == ["Z"]


@pytest.mark.parametrize(
    "data", [b'1,a"b,"c\nd"\n2,x', b'"a"b"\n1,"c\n"\n', b'ab""\n"c\n', b'1,2\n"3\n4', b'1,"a""\n""b"\n2']
)
def test_the_last_record_boundary_is_where_pythons_csv_ends_a_record(data) -> None:
    """Quotes inside unquoted fields (lexed) and escapes (by parity) alike."""
    ends = [k for k in range(1, len(data) + 1) if data[k - 1 : k] == b"\n" and ends_a_record(data[:k])]
    assert readers.text._last_boundary(data, len(data), quoted=True) == max(ends, default=0)


def test_escaped_quotes_across_blocks_match_pythons_csv(smoothl1_command, tmp_path) -> None:
    data = escaped_rows(40_000)  # ~1.5 MiB: cut into several blocks, inside escapes too
    path = tmp_path / "escaped.csv"
    path.write_bytes(data)
    value = quiet_value(run_command(smoothl1_command, "eval", path, "-t", "y", "-p", "pred", "-q"))
    assert value == pytest.approx(csv_reference(data), rel=1e-12)


def refused(smoothl1_command, tmp_path, data: bytes, name: str = "refused.csv", *options: str) -> tuple[str, float]:  # type: ignore[no-untyped-def]
    """The error line and peak RSS (MB) of refusing a file holding `data` (`-p pred` unless `options`)."""
    path = tmp_path / name
    path.write_bytes(data)
    run = measure([*smoothl1_command, "eval", str(path), "-t", "y", *(options or ("-p", "pred"))])
    assert run.code == 2, run.stderr.decode()
    return one_error_line(run.stderr), run.rss_mb


RECORD = 68 * MB  # over MAX_RECORD_BYTES (64 MiB), under 72 MiB


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (b'y,pred\n"1,2\n' + b"1,2\n" * (RECORD // 4), "without a line break outside quotes (an unclosed quote?)"),
        (b"y,pred\n1," + b"2" * RECORD + b"\n1,2\n", "line 2 is longer than 64 MiB"),
    ],
    ids=["unclosed quote", "a line that ends"],
)
def test_a_record_over_64_mib_is_refused_in_the_memory_of_a_plain_long_line(
    smoothl1_command, tmp_path, case, message
) -> None:
    """Found: a 70 MB CSV with an unclosed quote took 88 s and 1.5 GB to refuse (each read grew the
    buffer by 8 MiB and searched it all again, with one int64 per newline), and a 64-72 MiB line
    that did end (within the read that took the buffer past 64 MiB) went to Arrow whole: exit 3
    after 846 MB. Both now cost what refusing 68 MiB without any line break costs (which was
    already bounded): the buffer doubles, stops at 64 MiB + 1 byte, and only the newlines at its
    end are looked at."""
    _, plain = refused(smoothl1_command, tmp_path, b"y,pred\n1," + b"2" * RECORD)
    line, rss = refused(smoothl1_command, tmp_path, case)
    assert message in line
    assert "longer than 64 MiB" in line
    assert rss < 1.3 * plain, (rss, plain)


# --- 13.6: long records are valid --------------------------------------------------------------

LONG = "x" * (3 * MB)  # spans more than two of Arrow's 1 MiB parse blocks


def long_csv_records() -> dict[str, bytes]:
    rows = [("1", "2", "a"), ("1", "3", LONG), ("2", "2", "b")]
    first = [("1", "3", LONG), ("2", "2.5", "b")]
    quoted = [("1", "2", "a"), ("1", "3", "ab\n" * MB), ("2", "2", "b")]
    return {
        name: (
            "y,model,note\n" + "".join(",".join(f'"{v}"' if "\n" in v else v for v in row) + "\n" for row in rows)
        ).encode()
        for name, rows in (("in the middle", rows), ("first", first), ("quoted, with line breaks", quoted))
    }


@pytest.mark.parametrize("case", ["in the middle", "first", "quoted, with line breaks"])
def test_a_csv_record_over_2_mib_is_read(smoothl1_command, tmp_path, case) -> None:
    """Found: 'straddling object straddles two block boundaries', even for a long unused column;
    and a long first record left the sample for type inference with no whole record, so no
    column was numeric and the default pred was not found."""
    data = long_csv_records()[case]
    path = tmp_path / "long.csv"
    path.write_bytes(data)
    expected = csv_reference(data, pred="model")
    for pred in (["-p", "model"], []):  # [] : the default pred, by type inference
        value = quiet_value(run_command(smoothl1_command, "eval", path, "-t", "y", *pred, "-q"))
        assert value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("long_row", [0, 1])
def test_a_json_lines_record_over_1_mib_is_read(smoothl1_command, tmp_path, long_row) -> None:
    """Found: a first line over 1 MiB was 'not valid JSON' (the schema sample cut it), a later one
    'straddling object'."""
    records = [{"y": 1, "model": 2, "note": "a"}, {"y": 1, "model": 3.5, "note": "b"}]
    records[long_row]["note"] = LONG
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    expected = reference_mean([float(r["model"]) for r in records], [float(r["y"]) for r in records])
    for pred in (["-p", "model"], []):
        value = quiet_value(run_command(smoothl1_command, "eval", path, "-t", "y", *pred, "-q"))
        assert value == pytest.approx(expected, rel=1e-12)


def test_more_inputs_than_open_files_allowed(smoothl1_command, tmp_path) -> None:
    """Found: more than about 1,000 inputs failed with 'Too many open files' (all were opened up
    front and held); now each is opened for its header and again while it is read."""
    pred, target = [float(i % 5) for i in range(1200)], [float(i % 3) for i in range(1200)]
    for i, (p, t) in enumerate(zip(pred, target, strict=True)):
        (tmp_path / f"part{i:04d}.csv").write_text(f"y,model\n{t},{p}\n")

    def few_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    for inputs in ([str(tmp_path)], [str(tmp_path / "part*.csv")]):
        result = subprocess.run(
            [*smoothl1_command, "eval", *inputs, "-t", "y", "-q"],
            capture_output=True,
            preexec_fn=few_descriptors,
            timeout=120,
            check=False,
        )
        assert quiet_value(result) == pytest.approx(reference_mean(pred, target), rel=1e-12)


# --- 13.7: recursive globs and symbolic links -----------------------------------------------------


@pytest.mark.parametrize("links", [["sub/l1"], ["l1", "l2"]])
def test_a_recursive_glob_reads_each_file_once_through_link_loops(smoothl1_command, tmp_path, links) -> None:
    """Found: 'd/**/*.csv' with d/sub/l1 -> . read one file 41 times (exit 0, wrong sum); two such
    links never ended. `**` does not descend into links to directories."""
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.csv").write_text("y,model\n1,2\n")
    (tmp_path / "d" / "sub" / "b.csv").write_text("y,model\n1,4\n3,3\n")
    for link in links:
        (tmp_path / "d" / link).symlink_to(".")
    pattern = str(tmp_path / "d" / "**" / "*.csv")
    result = run_command(smoothl1_command, "eval", pattern, "-t", "y", "-f", "json", "--reduction", "sum", timeout=20)
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert [entry["path"] for entry in report["inputs"]] == [
        str(tmp_path / "d" / "a.csv"),
        str(tmp_path / "d" / "sub" / "b.csv"),
    ]
    assert report["results"][0]["value"] == math.fsum([0.5, 2.5, 0.0])


# --- 13.10 / 8.3: formats that disagreed -----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_an_all_empty_column_is_not_a_default_prediction(smoothl1_command, write_table, fmt) -> None:
    """Found: an all-empty CSV column counted as numeric, was picked as a prediction and failed the
    run as NaN; its Parquet copy (an all-null column) was left out."""
    path = write_table(fmt, y=[1.0, 1.0], model=[2.0, 3.0], empty=pa.nulls(2))
    result = run_command(smoothl1_command, "eval", path, "-t", "y", "-f", "json")
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert [r["pred"] for r in report["results"]] == ["model"]
    assert report["results"][0]["value"] == reference_mean([2.0, 3.0], [1.0, 1.0])


BEYOND = 2**53 + 1


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "csv.gz", "parquet"])
@pytest.mark.parametrize("column", ["y", "model"])
def test_integers_beyond_2_53_are_reported_on_every_format(smoothl1_command, write_table, fmt, column) -> None:
    """Found: CSV and JSON Lines rounded them silently, while int64 Parquet warned."""
    columns = {"y": pa.array([1, 2, 3], pa.int64()), "model": pa.array([2, 2, 2], pa.int64())}
    columns[column] = pa.array([3, -BEYOND, 5], pa.int64())
    path = write_table(fmt, **columns)
    result = run_command(smoothl1_command, "eval", path, "-t", "y", "-p", "model", "-f", "json")
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["warnings"] == [
        f"{path}: column '{column}' holds integers beyond 2**53, which float64 (and so PyTorch's float64) rounds; "
        "the losses are of the rounded values"
    ]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_large_decimals_and_exact_integers_in_text_are_not_reported(smoothl1_command, write_table, fmt) -> None:
    """Only an integer written beyond 2**53 warns: 2**53 itself, 1e17 and 9007199254740993.0 are
    decimals like any other (or exact)."""
    path = write_table(fmt, y=pa.array([2.0**53, 1e17, 9007199254740993.0]), model=[2.0**53, 1.0, 2.0])
    if fmt == "csv":
        path.write_text("y,model\n9007199254740992,9007199254740992\n1e17,1\n9007199254740993.0,2\n")
    result = run_command(smoothl1_command, "eval", path, "-t", "y", "-p", "model", "-f", "json")
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout).get("warnings", []) == []


# --- 13.5 / 8.3: a numeric column that is also a label ------------------------------------------


@pytest.mark.parametrize("option", [["--group-by", "y"], ["--group-by", "model"]])
def test_a_padded_numeric_column_can_also_be_the_group_key(smoothl1_command, tmp_path, option) -> None:
    """Found: exit 3 ("Failed to parse string: ' 1' as a scalar of type double"): a column named by
    --group-by is read as text, and text was cast to float64 without the trimming that Arrow's CSV
    reader gives numbers. (A target or pred cannot also be the --id: one role per column.)"""
    data = b"y,model\n 1,2\n1 ,3\n\t2,2.5\n"
    path = tmp_path / "padded.csv"
    path.write_bytes(data)
    result = run_command(smoothl1_command, "eval", path, "-t", "y", "-p", "model", *option, "-f", "json")
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["results"][0]["value"] == reference_mean([2.0, 3.0, 2.5], [1.0, 1.0, 2.0])


def late_key_lines() -> tuple[str, list[dict[str, object]]]:
    """Over 1 MiB of lines with keys y and model, then lines that add key 'late' (a number)."""
    early = [{"y": i % 3, "model": i % 5, "note": "x" * 40} for i in range(25_000)]
    late = [{"y": 1, "model": 100, "late": 4.5, "note": "a"}, {"y": 2, "late": 2}]  # model 100: the worst row
    records = early + late
    return "".join(json.dumps(record) + "\n" for record in records), records


def test_a_json_lines_key_first_seen_after_1_mib_is_found_when_named(smoothl1_command, tmp_path) -> None:
    """Found: 'not found' (the columns were the keys of the first MiB only). A named column that
    the sample lacks is now looked for in the rest of the file; rows without it are missing."""
    text, records = late_key_lines()
    path = tmp_path / "late.jsonl"
    path.write_text(text)
    assert len(text) > 1.5 * MB
    result = run_command(smoothl1_command, "eval", path, "-t", "y", "-p", "late", "--nan-policy", "omit", "-f", "json")
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    with_late = [r for r in records if "late" in r]
    expected = reference_mean([float(r["late"]) for r in with_late], [float(r["y"]) for r in with_late])
    assert report["results"][0]["value"] == expected
    assert report["results"][0]["omitted"] == len(records) - 2
    missing = run_command(smoothl1_command, "eval", path, "-t", "y", "-p", "late")
    assert "column 'late'" in exit_2_line(missing)  # the early rows lack it: missing values, by row


def test_a_json_lines_key_first_seen_after_1_mib_can_be_the_id(smoothl1_command, tmp_path) -> None:
    text, records = late_key_lines()
    path = tmp_path / "late.jsonl"
    path.write_text(text)
    result = run_command(
        smoothl1_command, "eval", path, "-t", "y", "-p", "model", "--id", "late", "--nan-policy", "omit", "-f", "json"
    )  # (the last line has no 'model')
    assert result.returncode == 0, result.stderr.decode()
    worst = json.loads(result.stdout)["worst_rows"]
    assert (worst[0]["row"], worst[0]["id"]) == (len(records) - 2, 4.5)
    assert all(row["id"] is None for row in worst[1:])  # early rows have no 'late'


def test_on_standard_input_only_the_first_mib_gives_columns(smoothl1_command) -> None:
    """A stream cannot be read again to look for a key: the README says so, and so does the error."""
    text, _ = late_key_lines()
    result = run_command(smoothl1_command, "eval", "-", "-t", "y", "-p", "late", stdin=text.encode())
    assert "pred column 'late' not found" in exit_2_line(result)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("first.csv", b"y,model\n1," + b"2" * RECORD + b"\n", "line 2 is longer than 64 MiB"),
        (
            "first.jsonl",
            b'{"y": 1, "model": "' + b"2" * RECORD + b'"}\n',
            "line 1 is longer than 64 MiB without a line break; is this really JSON Lines?",
        ),
    ],
)
def test_a_first_record_over_64_mib_is_refused_while_sampling(smoothl1_command, tmp_path, name, data, message) -> None:
    """The sample for type inference (CSV) and the JSON Lines schema grows with a long first record;
    past 64 MiB it is refused as the reader would (found: 920 MB to refuse 200 MiB in CSV, and
    'not valid JSON' for JSON Lines), with no more memory than a plain long line."""
    _, plain = refused(smoothl1_command, tmp_path, b"y,pred\n1," + b"2" * RECORD)
    line, rss = refused(smoothl1_command, tmp_path, data, name, "--loss", "smooth_l1")  # the default pred: inferred
    assert message in line
    assert rss < 1.3 * plain, (rss, plain)


@pytest.mark.parametrize("on", [[], ["--on", "id"]])
def test_text_integers_beyond_2_53_are_reported_with_labels_too(smoothl1_command, tmp_path, on) -> None:
    (tmp_path / "preds.csv").write_text("id,p\n1,9007199254740993\n2,1\n")
    (tmp_path / "labels.csv").write_text("id,y\n1,0\n2,0\n")
    args = ["eval", tmp_path / "preds.csv", "-p", "p", "--labels", tmp_path / "labels.csv", *on, "-t", "y", "-q"]
    result = run_command(smoothl1_command, *args)
    assert result.returncode == 0, result.stderr.decode()
    assert "column 'p' holds integers beyond 2**53" in result.stderr.decode()

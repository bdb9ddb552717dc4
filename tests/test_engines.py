"""The local engine: pieces on a pool of worker processes give the report of one process, byte for
byte, with every option; row numbers stay global; errors, Ctrl-C and per-row output behave as with one."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smoothl1_cli import api, plan
from tests.conftest import invoke, reference_mean, run_command, table_bytes, within_1e12

ROWS = 1200


def _columns(rows: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=rows)
    a = y + rng.standard_cauchy(size=rows)
    a[rng.random(rows) < 0.02] = np.nan
    return {
        "y": y,
        "a": a,
        "b": y + rng.normal(size=rows),
        "z": 2 * y,
        "c": 2 * y + rng.laplace(size=rows),
        "w": rng.integers(1, 4, size=rows).astype(np.float64),
        "g": rng.integers(0, 9, size=rows),
        "key": [f"k{seed}-{i}" for i in range(rows)],
    }


@pytest.fixture(scope="module")
def partitions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of Parquet, CSV, gzip CSV and JSON Lines parts: one table of ROWS rows."""
    folder = tmp_path_factory.mktemp("parts")
    for index, fmt in enumerate(("parquet", "csv", "jsonl", "csv.gz", "parquet")):
        table = pa.table(_columns(ROWS // 5, index))
        (folder / f"part-{index}.{fmt}").write_bytes(table_bytes(table, fmt))
    return folder


CASES = [
    ["-p", "a,b", "--nan-policy", "omit", "--group-by", "g", "-w", "w", "--id", "key", "--loss", "huber"],
    ["-t", "y,z", "-p", "a,c", "--nan-policy", "propagate", "--multioutput", "row-sum", "--reduction", "sum"],
    ["-p", "b", "--ci", "0.9", "--bootstrap", "40", "--exact-quantiles", "--top", "3"],
]


@pytest.mark.parametrize("args", CASES, ids=[" ".join(case) for case in CASES])
def test_two_workers_give_the_bytes_of_one(smoothl1_command, partitions, args) -> None:
    targets = [] if "-t" in args else ["-t", "y"]
    reports = []
    for workers in ("1", "2"):
        done = run_command(smoothl1_command, "eval", partitions, *targets, *args, "--workers", workers, "-f", "json")
        assert done.returncode == 0, done.stderr.decode()
        assert done.stderr == b""
        reports.append(done.stdout)
    assert reports[0] == reports[1]
    report = json.loads(reports[0])
    assert report["engine"] == "local"
    assert [entry["rows"] for entry in report["inputs"]] == [ROWS // 5] * 5


def test_pieces_of_one_parquet_file_are_runs_of_its_row_groups(tmp_path, monkeypatch) -> None:
    """A large file is cut into runs of row groups; worst rows and errors keep their rows in the file."""
    data = _columns(3000, 7)
    data["a"] = np.where(np.isnan(data["a"]), 0.0, data["a"])
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table(data), path, row_group_size=400)  # 8 row groups
    monkeypatch.setattr(plan, "PIECE_ROWS", 1000)
    source = api.open_all([str(path)], None)[0]
    pieces = plan.cut_pieces([source])
    source.close()
    assert [(p.groups, p.input_row, p.rows) for p in pieces] == [
        (range(0, 3), 0, 1200), (range(3, 6), 1200, 1200), (range(6, 8), 2400, 600),
    ]  # fmt: skip
    cut = [api.evaluate(path, "y", "a", workers=workers, id="key", top=4).to_dict() for workers in (1, 2)]
    monkeypatch.setattr(plan, "PIECE_ROWS", 10**9)
    whole = api.evaluate(path, "y", "a", id="key", top=4).to_dict()
    assert cut[0] == cut[1]
    assert cut[0]["results"] == within_1e12(whole["results"])
    assert cut[0]["worst_rows"] == whole["worst_rows"]
    assert cut[0]["results"][0]["value"] == pytest.approx(reference_mean(data["a"], data["y"]), rel=1e-12)
    data["b"][2500] = np.nan  # in the last piece: its row within the file
    pq.write_table(pa.table(data), path, row_group_size=400)
    monkeypatch.setattr(plan, "PIECE_ROWS", 1000)
    with pytest.raises(api.InputError, match=r"big.parquet: 1 row with a missing, NaN .*\(first: row 2500,"):
        api.evaluate(path, "y", "b", workers=2)


def test_a_bad_value_names_the_file_and_row_whoever_reads_it(tmp_path, smoothl1_command) -> None:
    for index in range(3):
        rows = [f"{i},{i + 0.5}" for i in range(50)]
        if index == 1:
            rows[17] = "17,oops"
        (tmp_path / f"p{index}.csv").write_text("y,pred\n" + "\n".join(rows) + "\n")
    messages = []
    for workers in ("1", "2"):
        done = run_command(smoothl1_command, "eval", tmp_path, "-t", "y", "--workers", workers)
        assert done.returncode == 2
        messages.append(done.stderr.decode())
    assert messages[0] == messages[1]
    assert "p1.csv" in messages[0]
    assert "row 17" in messages[0]
    assert "'oops'" in messages[0]
    assert messages[0].startswith("Error: ")
    assert messages[0].count("\n") == 1


def test_per_row_output_with_workers_numbers_rows_over_all_inputs(smoothl1_command, partitions, tmp_path) -> None:
    out = tmp_path / "rows.csv"
    done = run_command(
        smoothl1_command, "eval", partitions, "-t", "y", "-p", "b", "--per-row", out, "--workers", "2", "-q"
    )
    assert done.returncode == 0, done.stderr.decode()
    lines = out.read_text().splitlines()
    assert lines[0] == "row,loss"
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(ROWS))


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            todo += children - found
            found |= children
    return found


def test_ctrl_c_stops_the_workers_and_exits_130(smoothl1_command, tmp_path) -> None:
    """Ctrl-C reaches the whole process group: the command stops its pool, says so once, exits 130."""
    for index in range(2):
        (tmp_path / f"p{index}.csv").write_bytes(table_bytes(pa.table(_columns(40_000, index)), "csv"))
    process = subprocess.Popen(
        [*smoothl1_command, "eval", tmp_path, "-t", "y", "-p", "b", "--workers", "2", "--chunk-rows", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while len(_descendants(process.pid)) < 3 and time.monotonic() < deadline:  # the fork server and two workers
        time.sleep(0.05)
    workers = _descendants(process.pid)
    assert len(workers) >= 3, "the pool did not start"
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)  # a row at a time, the run itself would take minutes
    assert process.returncode == 130
    assert err == b"Interrupted.\n"
    assert out == b""
    deadline = time.monotonic() + 10
    while _in_group(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _in_group(process.pid)  # no worker left behind, not even one that was still starting


def _in_group(group: int) -> list[int]:
    """The processes of process group `group` that are still there (zombies aside)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            found.append(int(stat.parent.name))
    return found


def test_a_script_without_a_main_guard_runs_on_the_pool(partitions, tmp_path) -> None:
    """multiprocessing would run the calling script again in each worker; the pool's workers never do."""
    script = tmp_path / "evaluate_parts.py"
    script.write_text(
        "from smoothl1_cli import evaluate\n"
        f"report = evaluate({str(partitions)!r}, 'y', 'b', workers=2)\n"
        "print(report.rows, report.results[0].value)\n"
    )
    done = subprocess.run([sys.executable, script], capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    expected = api.evaluate(partitions, "y", "b", workers=1)
    assert done.stdout.decode().split() == [str(ROWS), repr(expected.results[0].value)]
    assert done.stderr == b""


def test_the_progress_bar_counts_pieces_done_on_the_pool_to_its_total(smoothl1_command, tmp_path) -> None:
    for index, fmt in enumerate(("parquet", "csv", "jsonl")):  # uncompressed: the bar has a total in bytes
        (tmp_path / f"part-{index}.{fmt}").write_bytes(table_bytes(pa.table(_columns(300, index)), fmt))
    done = run_command(smoothl1_command, "eval", tmp_path, "-t", "y", "-p", "b", "--workers", "2", "--progress", "-q")
    assert done.returncode == 0, done.stderr.decode()
    counts = re.findall(r"([\d.,]+)/([\d.,]+) (kB|MB|rows)", done.stderr.decode())
    assert counts, done.stderr.decode()
    assert counts[-1][0] == counts[-1][1]  # the last frame: everything read


def test_where_no_worker_process_can_start_one_process_does_the_work(partitions, monkeypatch) -> None:
    """A sandbox without POSIX semaphores (no /dev/shm): unasked, the pool gives way to this process;
    asked for with --workers N, it is an input error that says what to do."""
    from smoothl1_cli.engines import local

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise OSError(38, "Function not implemented")

    expected = api.evaluate(partitions, "y", "b", workers=1, ci=0.9, bootstrap=20).to_dict()
    monkeypatch.setattr(local, "ProcessPoolExecutor", unavailable)
    assert api.evaluate(partitions, "y", "b", ci=0.9, bootstrap=20).to_dict() == expected  # --ci: the pool pays
    with pytest.raises(api.InputError, match=r"--workers 2: this system cannot start worker processes .*--workers 1"):
        api.evaluate(partitions, "y", "b", workers=2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scheduler", "tcp://127.0.0.1:8786"], "Error: --scheduler names a Dask scheduler: add --engine dask"),
        (["--workers", "0"], "Invalid value for '--workers': 0 is not in the range x>=1"),
        (["--engine", "spark"], "Invalid value for '--engine': 'spark' is not one of 'local', 'dask'"),
        (["--per-row", "losses/"], "(a directory of Parquet parts, one per piece, is for --engine dask)"),
    ],
)
def test_execution_options_are_checked_before_anything_runs(partitions, args, message) -> None:
    result = invoke(["eval", partitions, "-t", "y", "-p", "b", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_the_api_checks_workers_as_the_command_does(partitions) -> None:
    with pytest.raises(api.InputError, match="--workers must be at least 1, not 0"):
        api.evaluate(partitions, "y", "b", workers=0)

"""Resource bounds: pathological inputs are refused, or processed within a stated memory bound.

Each run is a real process whose peak resident memory comes from the kernel (os.wait4's rusage
of that one child). Bounds, stated here once:

- a line longer than 64 MiB (readers.text.MAX_RECORD_BYTES) arriving on a pipe: refused with exit 2,
  peak RSS under LINE_RSS_MB, having read well short of the whole stream;
- a 100,000-column header with a few rows: done, peak RSS under WIDE_RSS_MB;
- a Parquet row group whose needed columns decode to more than 256 MiB: streamed, so peak RSS
  stays under the RSS of a trivial run plus half the decoded size of those columns.

Time is not measured (it depends on the machine's load): a run is killed after SAFETY_SECONDS,
a safety net far above the second these take, and below the minutes the quadratic costs that
were found took. The two Parquet tests write 17M-row files (one of 272 MB) and are marked `slow`
(run them with --run-slow).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

MB = 1 << 20
LINE_RSS_MB = 600
WIDE_RSS_MB = 1024
SAFETY_SECONDS = 90
STREAM_BYTES = 200 * MB


@dataclass
class Measured:
    code: int  # -9 if it was killed by the safety net
    stdout: bytes
    stderr: bytes
    rss_mb: float
    fed: int  # bytes the feeder got into the pipe before it was closed


def measure(command: list[str], feed: tuple[bytes, bytes, int] | None = None) -> Measured:
    """Run `command` (stdin fed with prefix + filler byte * count if `feed`), kill it after
    SAFETY_SECONDS, and return its status, output and peak RSS."""
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE if feed else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    fed = [0]
    outputs: dict[str, bytes] = {}

    def feeder() -> None:
        assert feed is not None
        assert process.stdin is not None
        prefix, filler, count = feed
        piece = filler * MB
        try:
            process.stdin.write(prefix)
            fed[0] += len(prefix)
            while fed[0] < count:
                process.stdin.write(piece)
                fed[0] += len(piece)
        except (BrokenPipeError, ValueError, OSError):
            pass
        finally:
            with contextlib.suppress(BrokenPipeError, OSError):
                process.stdin.close()

    def drain(name: str) -> None:
        with getattr(process, name) as stream:
            outputs[name] = stream.read()

    threads = [threading.Thread(target=drain, args=(name,), daemon=True) for name in ("stdout", "stderr")]
    if feed:
        threads.append(threading.Thread(target=feeder, daemon=True))
    for thread in threads:
        thread.start()
    killer = threading.Timer(SAFETY_SECONDS, process.kill)
    killer.start()
    _, status, usage = os.wait4(process.pid, 0)
    killer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    for thread in threads:
        thread.join(timeout=10)
    return Measured(
        process.returncode,
        outputs.get("stdout", b""),
        outputs.get("stderr", b""),
        usage.ru_maxrss / 1024,
        fed[0],
    )


def one_error_line(stderr: bytes) -> str:
    lines = stderr.decode().rstrip("\n").split("\n")
    assert len(lines) == 1, stderr.decode()
    assert lines[0].startswith("Error: "), stderr.decode()
    return lines[0]


# --- one enormous line -------------------------------------------------------------------------


def test_a_data_line_longer_than_64_mib_is_refused_quickly_in_bounded_memory(smoothl1_command) -> None:
    """200 MB of 'x' with no line break after a header, through a pipe: refused once 64 MiB are
    buffered, without reading the rest of the stream."""
    run = measure([*smoothl1_command, "eval", "-", "-t", "y"], (b"y,pred\n", b"x", STREAM_BYTES))
    assert run.code == 2, run.stderr.decode()
    line = one_error_line(run.stderr)
    assert "longer than 64 MiB" in line
    assert run.rss_mb < LINE_RSS_MB, run.rss_mb
    assert run.fed < STREAM_BYTES, "read the whole stream before refusing"


def test_a_first_line_longer_than_64_mib_is_refused_quickly(smoothl1_command) -> None:
    """The same 200 MB line, as the header. Found: 133 s to refuse (_split_header grew
    `head += 64 KiB` and rescanned it for a newline each time); fixed: well under a second."""
    run = measure([*smoothl1_command, "eval", "-", "-t", "y"], (b"", b"x", STREAM_BYTES))
    assert run.code == 2, (run.code, run.stderr[-300:])
    assert "longer than 64 MiB" in one_error_line(run.stderr)
    assert run.rss_mb < LINE_RSS_MB
    assert run.fed < STREAM_BYTES, "read the whole stream before refusing"


# --- a very wide header ------------------------------------------------------------------------


def test_a_100000_column_header_is_evaluated_within_bounds(smoothl1_command, tmp_path) -> None:
    """Found: 254 s and 1,039 MB peak (O(n**2) list membership comparing a file's columns with
    itself, and Arrow type inference over every column); fixed: under a second, ~110 MB."""
    columns = 100_000
    names = ["y", "pred"] + [f"c{i}" for i in range(columns - 2)]
    row = ",".join(["1", "1.5"] + ["0"] * (columns - 2))
    path = tmp_path / "wide.csv"
    path.write_text(",".join(names) + "\n" + (row + "\n") * 5)
    run = measure([*smoothl1_command, "eval", str(path), "-t", "y", "-p", "pred", "-q"])
    assert (run.code, run.stdout) == (0, b"0.125\n"), (run.code, run.stderr[-300:])
    assert run.rss_mb < WIDE_RSS_MB, run.rss_mb


# --- a huge Parquet row group ------------------------------------------------------------------

HUGE_ROWS = 17_000_000  # two float64 columns: 272 MB decoded, above the 256 MiB streaming threshold


def baseline_rss(smoothl1_command: list[str], tmp_path: Path) -> float:
    tiny = tmp_path / "tiny.parquet"
    pq.write_table(pa.table({"y": [0.0], "pred": [3.0]}), tiny)
    run = measure([*smoothl1_command, "eval", str(tiny), "-t", "y", "-q"])
    assert run.code == 0
    return run.rss_mb


def check_streamed(smoothl1_command: list[str], tmp_path: Path, path: Path) -> None:
    decoded_mb = HUGE_ROWS * 2 * 8 / MB
    assert pq.ParquetFile(path).metadata.num_row_groups == 1
    base = baseline_rss(smoothl1_command, tmp_path)
    run = measure([*smoothl1_command, "eval", str(path), "-t", "y", "-q"])
    assert (run.code, run.stdout) == (0, b"2.5\n"), run.stderr.decode()[-500:]
    assert run.rss_mb < base + decoded_mb / 2, (
        f"peak {run.rss_mb:.0f} MB, trivial run {base:.0f} MB, decoded {decoded_mb:.0f} MB"
    )


@pytest.mark.slow
def test_a_huge_row_group_of_incompressible_numbers_is_streamed(smoothl1_command, tmp_path) -> None:
    rng = np.random.default_rng(0)
    target = rng.random(HUGE_ROWS)
    path = tmp_path / "huge.parquet"
    pq.write_table(pa.table({"y": target, "pred": target + 3.0}), path, row_group_size=HUGE_ROWS, compression="none")
    del target
    check_streamed(smoothl1_command, tmp_path, path)


@pytest.mark.slow
def test_a_huge_row_group_of_repetitive_numbers_is_streamed(smoothl1_command, tmp_path) -> None:
    """A Parquet 'bomb': constant columns encode to a few hundred KB (RLE/dictionary), yet decode
    to 272 MB. Found: the 256 MiB rule read Parquet's encoded size, so the row group was decoded
    whole (677 MB peak for 30M rows in a 240 KB file); fixed: streamed by decoded size."""
    path = tmp_path / "bomb.parquet"
    pq.write_table(
        pa.table({"y": np.zeros(HUGE_ROWS), "pred": np.full(HUGE_ROWS, 3.0)}), path, row_group_size=HUGE_ROWS
    )
    assert path.stat().st_size < MB
    check_streamed(smoothl1_command, tmp_path, path)

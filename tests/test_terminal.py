"""The terminal view on a real pseudo-terminal, JSON when piped, and the progress bar on stderr."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import pty
import re
import select
import shlex
import shutil
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import reference_loss, reference_mean, run_command

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "regression.csv"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
BOX = ("┏", "┃", "┡", "│", "└")
COLUMNS, LINES = 120, 40


def _sample() -> tuple[list[float], list[float]]:
    rows = list(csv.DictReader(SAMPLE.read_text().splitlines()))
    return [float(r["pred"]) for r in rows], [float(r["y"]) for r in rows]


PRED, TARGET = _sample()
LOSSES = [reference_loss(p, t) for p, t in zip(PRED, TARGET, strict=True)]


def _env(columns: int = COLUMNS) -> dict[str, str]:
    """A plain terminal: nothing that forces or forbids colour, a known width."""
    unset = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(TERM="xterm-256color", COLUMNS=str(columns), LINES=str(LINES))
    return env


def plain(data: bytes) -> str:
    """Terminal output as text: escape sequences and carriage returns removed."""
    return ANSI.sub("", data.decode("utf-8", "replace")).replace("\r", "")


def run_on_pty(
    command: list[str], *args: Any, stdout_tty: bool, stderr_tty: bool, timeout: float = 60, columns: int = COLUMNS
) -> tuple[bytes, bytes]:
    """Run with stdout and/or stderr on a fresh pseudo-terminal (the rest piped); returns (stdout, stderr).

    What the terminal shows comes back as the stream(s) attached to it.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, columns, 0, 0))
    process = subprocess.Popen(
        [*command, *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=slave if stdout_tty else subprocess.PIPE,
        stderr=slave if stderr_tty else subprocess.PIPE,
        env=_env(columns),
    )
    os.close(slave)
    shown = bytearray()
    deadline = time.monotonic() + timeout  # a safety net: the loop ends when the child closes the terminal
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child exited and everything it wrote has been read
                    break
                if not data:
                    break
                shown += data
        piped_out = process.stdout.read() if process.stdout else b""
        piped_err = process.stderr.read() if process.stderr else b""
        assert process.wait(timeout=max(deadline - time.monotonic(), 1)) == 0, (shown, piped_err)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()
    return (bytes(shown) if stdout_tty else piped_out), (bytes(shown) if stderr_tty else piped_err)


def check_table_view(text: str) -> None:
    """The rich view of the sample: results table, histogram, worst rows, and no JSON."""
    assert all(char in text for char in BOX), text
    assert '"schema_version"' not in text
    assert not text.lstrip().startswith("{")
    lines = text.splitlines()
    value_row = next(line for line in lines if line.startswith("│ value "))
    assert float(value_row.split("│")[2]) == pytest.approx(reference_mean(PRED, TARGET), rel=1e-12)
    assert repr(max(LOSSES)) in next(line for line in lines if line.startswith("│ max "))
    start = next(i for i, line in enumerate(lines) if "loss distribution: pred" in line)
    end = next(i for i, line in enumerate(lines) if "worst rows" in line)
    bins = [line.split() for line in lines[start + 1 : end] if "█" in line or "▏" in line or "·" in line]
    assert sum("█" in line for line in lines[start + 1 : end]) >= 3
    assert sum(int(row[-1]) for row in bins) == len(LOSSES)  # every row in one bin
    worst = max(range(len(LOSSES)), key=LOSSES.__getitem__)
    assert any(line.startswith(f"│ {worst:>3} │") for line in lines[end:])  # the worst row is listed


@pytest.mark.skipif(shutil.which("script") is None, reason="util-linux `script` is not installed")
def test_the_table_view_on_a_terminal_made_by_script(smoothl1_command):
    command = shlex.join([*smoothl1_command, "eval", str(SAMPLE), "-t", "y"])
    done = subprocess.run(["script", "-q", "-e", "-c", command, "/dev/null"], capture_output=True, timeout=60,
                          env=_env(), stdin=subprocess.DEVNULL, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    check_table_view(plain(done.stdout))


def test_the_table_view_on_a_pty(smoothl1_command):
    shown, _ = run_on_pty(smoothl1_command, "eval", SAMPLE, "-t", "y", stdout_tty=True, stderr_tty=False)
    check_table_view(plain(shown))


def test_piped_output_is_json_by_default(smoothl1_command):
    done = run_command(smoothl1_command, "eval", SAMPLE, "-t", "y")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["results"][0]["value"] == pytest.approx(reference_mean(PRED, TARGET), rel=1e-12)
    assert not any(char in done.stdout.decode() for char in BOX)
    assert done.stderr == b""


def test_stdout_piped_with_stderr_on_a_terminal_is_still_json(smoothl1_command):
    """The view follows stdout alone: a terminal on stderr does not turn the output into a table."""
    out, err = run_on_pty(smoothl1_command, "eval", SAMPLE, "-t", "y", stdout_tty=False, stderr_tty=True)
    assert json.loads(out)["rows"] == len(LOSSES)
    assert plain(err).strip() == ""  # a small file: no progress bar by default


def test_progress_forces_a_bar_on_a_terminal_for_a_small_file(smoothl1_command):
    out, err = run_on_pty(smoothl1_command, "eval", SAMPLE, "-t", "y", "--progress", stdout_tty=False, stderr_tty=True)
    assert "reading" in plain(err)
    assert json.loads(out)["rows"] == len(LOSSES)  # stdout untouched by the bar


def test_no_progress_shows_no_bar_on_a_terminal(smoothl1_command):
    args = ["eval", SAMPLE, "-t", "y", "--no-progress"]
    out, err = run_on_pty(smoothl1_command, *args, stdout_tty=False, stderr_tty=True)
    assert err == b""
    assert json.loads(out)["rows"] == len(LOSSES)


def test_a_piped_stderr_gets_no_bar_by_default_or_with_no_progress(smoothl1_command):
    for flags in ([], ["--no-progress"]):
        done = run_command(smoothl1_command, "eval", SAMPLE, "-t", "y", *flags)
        assert done.returncode == 0
        assert done.stderr == b"", flags


def test_progress_forces_a_bar_even_when_stderr_is_piped(smoothl1_command):
    done = run_command(smoothl1_command, "eval", SAMPLE, "-t", "y", "--progress")
    assert done.returncode == 0
    assert "reading" in plain(done.stderr)


def _bar_counts(err: bytes, unit: str) -> list[tuple[str, str]]:
    """Every 'done/total UNIT' the bar showed."""
    return re.findall(rf"(\S+)/(\S+) {unit}\b", plain(err))


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_progress_on_a_file_with_a_footer_counts_rows_up_to_its_rows(smoothl1_command, write_table, fmt):
    rows = 3000
    path = write_table(fmt, y=[float(i) for i in range(rows)], pred=[i + 0.5 for i in range(rows)], unused=[0.0] * rows)
    out, err = run_on_pty(smoothl1_command, "eval", path, "-t", "y", "-p", "pred", "--progress", "--chunk-rows", "500",
                          stdout_tty=False, stderr_tty=True)  # fmt: skip
    assert json.loads(out)["rows"] == rows
    counts = _bar_counts(err, "rows")
    assert counts, plain(err)
    assert all(total == str(rows) and int(done) <= rows for done, total in counts)
    assert counts[-1] == (str(rows), str(rows))
    assert "rows/s" in plain(err)


def test_progress_on_compressed_text_claims_no_compressed_total(smoothl1_command, write_table):
    """The bar counts decompressed bytes: the file's (compressed) size is no total for them."""
    rows = 3000
    path = write_table("csv.gz", y=[float(i) for i in range(rows)], pred=[i + 0.5 for i in range(rows)])
    out, err = run_on_pty(smoothl1_command, "eval", path, "-t", "y", "--progress", stdout_tty=False, stderr_tty=True)
    assert json.loads(out)["rows"] == rows
    counts = _bar_counts(err, "(?:bytes|kB|MB|GB)")
    assert counts, plain(err)
    assert all(total == "?" for _, total in counts)
    assert re.search(r"\b[1-9][\d,]* rows/s", plain(err))  # the rows parsed, as a rate

"""The command's edge (issues 8 and 13): outputs that would destroy data, gates that must not miss or
invent a regression, signals, and stdout shared by per-row losses and the report.

Every test runs the installed `smoothl1` in a subprocess, as a user (or a CI job) does.
"""

from __future__ import annotations

import json
import math
import os
import select
import signal
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import reference_loss, reference_mean, run_command
from tests.test_faults import clean_outcome, finish, leftovers, one_error_line
from tests.test_faults import mid_run as mid_run  # the fixture: a run stalled mid-write (re-exported for pytest)

PRED = [0.5, 1.5, 2.5, 4.0]
TARGET = [1.0, 2.0, 3.0, 0.0]
VALUE = reference_mean(PRED, TARGET)  # 0.125 three times and 3.5: 0.96875


@pytest.fixture
def data(write_table: Callable[..., Path]) -> Path:
    return write_table("csv", name="data", y=TARGET, pred=PRED)


def _error(done: subprocess.CompletedProcess[bytes]) -> str:
    assert done.returncode == 2, done.stderr.decode()
    assert done.stdout == b""
    return one_error_line(done.stderr)


def _report(done: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


# ---------------------------------------------------------------- 13.1: an output that is an input


@pytest.mark.parametrize("option", ["-o", "--per-row"])
@pytest.mark.parametrize("given", ["data.csv", "./data.csv", "sub/../data.csv", "link.csv", "hard.csv"])
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(smoothl1_command, data, tmp_path, option, given):
    """Also through a symlink or a hard link to it: the same file by device and inode."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.csv").symlink_to(data)
    os.link(data, tmp_path / "hard.csv")
    before = data.read_bytes()
    done = run_command(smoothl1_command, "eval", "data.csv", "-t", "y", option, given, "-q", cwd=tmp_path)
    assert _error(done) == (
        f"Error: {option} {given} is the same file as input data.csv: it would be overwritten; name another file"
    )
    assert data.read_bytes() == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("inputs", [["{dir}"], ["{dir}/*.csv"], ["{dir}/**/*.csv"]], ids=["directory", "glob", "**"])
def test_an_output_among_the_expanded_inputs_is_refused(smoothl1_command, write_table, tmp_path, inputs):
    folder = tmp_path / "in"
    folder.mkdir()
    write_table("csv", name="in/a", y=TARGET, pred=PRED)
    second = write_table("csv", name="in/b", y=TARGET, pred=PRED)
    before = second.read_bytes()
    args = [spec.format(dir=folder) for spec in inputs]
    done = run_command(smoothl1_command, "eval", *args, "-t", "y", "--per-row", second, "-q")
    assert _error(done).startswith(f"Error: --per-row {second} is the same file as input {second}: ")
    assert second.read_bytes() == before


def test_the_labels_file_as_output_is_refused(smoothl1_command, write_table):
    preds = write_table("csv", name="preds", pred=PRED)
    labels = write_table("csv", name="labels", y=TARGET)
    before = labels.read_bytes()
    done = run_command(smoothl1_command, "eval", preds, "-t", "y", "--labels", labels, "-o", labels, "-q")
    assert _error(done).startswith(f"Error: -o {labels} is the same file as --labels {labels}: ")
    assert labels.read_bytes() == before


def test_standard_input_redirected_from_the_output_file_is_refused(smoothl1_command, data):
    before = data.read_bytes()
    with data.open("rb") as stdin:
        done = subprocess.run(
            [*smoothl1_command, "eval", "-", "-t", "y", "-o", str(data)],
            stdin=stdin,
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert _error(done).startswith(f"Error: -o {data} is the same file as input -: ")
    assert data.read_bytes() == before


@pytest.mark.parametrize("second", ["report.csv", "./report.csv"])
def test_two_outputs_to_one_file_are_refused(smoothl1_command, data, tmp_path, second):
    """Neither exists yet: told apart by resolved path. Before, one silently replaced the other."""
    done = run_command(
        smoothl1_command, "eval", data, "-t", "y", "-o", "report.csv", "--per-row", second, "-q", cwd=tmp_path
    )
    assert _error(done) == (
        f"Error: --per-row {second} is the same file as -o report.csv: it would be overwritten; name another file"
    )
    assert not (tmp_path / "report.csv").exists()


def test_the_overlap_is_refused_before_any_input_is_opened(smoothl1_command, data, tmp_path):
    """A FIFO among the inputs that no one writes: opening it would block, so exit 2 proves it was not opened."""
    fifo = tmp_path / "more.csv"
    os.mkfifo(fifo)
    done = run_command(smoothl1_command, "eval", data, fifo, "-t", "y", "-o", data, timeout=20)
    assert _error(done).startswith(f"Error: -o {data} is the same file as input {data}: ")


# ---------------------------------------------------------------- 13.2: devices, FIFOs, permissions


@pytest.mark.parametrize(("option", "name"), [("-o", "report.json"), ("--per-row", "rows.csv")])
def test_a_fifo_as_output_is_written_in_place(smoothl1_command, data, tmp_path, option, name):
    """The FIFO stays a FIFO and its reader gets the output (before: renamed over, the reader got nothing)."""
    fifo = tmp_path / name
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader is there, so the writer's open does not block
    try:
        done = run_command(smoothl1_command, "eval", data, "-t", "y", option, fifo, "-q")
        assert (done.returncode, done.stdout) == (0, f"{VALUE!r}\n".encode()), done.stderr.decode()
        received = os.read(reader, 1 << 16).decode()  # a small output: all of it in the pipe's buffer
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    if option == "-o":
        assert json.loads(received)["results"][0]["value"] == VALUE
    else:
        losses = [float(line.split(",")[1]) for line in received.splitlines()[1:]]
        assert losses == [reference_loss(p, t) for p, t in zip(PRED, TARGET, strict=True)]
    assert leftovers(tmp_path) == []


def test_a_character_device_as_output_stays_a_device(smoothl1_command, data, tmp_path):
    """A private node of /dev/null's device (root only), for both outputs (a device holds nothing to lose):
    before, the report replaced the node with a regular file."""
    node = tmp_path / "null.csv"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "-o", node, "--per-row", node, "-q")
    assert (done.returncode, done.stdout) == (0, f"{VALUE!r}\n".encode()), done.stderr.decode()
    assert stat.S_ISCHR(os.lstat(node).st_mode)
    assert leftovers(tmp_path) == []


def test_a_fifo_whose_reader_leaves_is_an_error_not_a_closed_stdout(smoothl1_command, tmp_path):
    """Per-row losses far beyond a pipe's buffer, the reader gone after the first byte: exit 2 naming
    the file (before: taken for `| head` on stdout, exit 0 with the report silenced)."""
    data = tmp_path / "many.csv"
    data.write_text("y,pred\n" + "0,3\n" * 100_000)
    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDWR)  # Linux: opens at once, and reads see no end while it is open
    process = subprocess.Popen(
        [*smoothl1_command, "eval", data, "-t", "y", "--per-row", fifo, "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert select.select([reader], [], [], 60)[0], "no per-row output came"
        assert os.read(reader, 1) == b"r"  # the header's first byte: the run is writing the FIFO
    finally:
        os.close(reader)
    returncode, out, err = finish(process)
    assert (returncode, out) == (2, b""), err.decode()
    assert one_error_line(err) == f"Error: cannot write --per-row {fifo}: Broken pipe"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_block_device_as_output_is_refused(smoothl1_command, data, tmp_path):
    """Neither replaced nor written: a node of an unassigned (experimental) device number, root only."""
    node = tmp_path / "disk.json"
    try:
        os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(254, 254))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    assert _error(run_command(smoothl1_command, "eval", data, "-t", "y", "-o", node, "-q")) == (
        f"Error: cannot write -o {node}: it is a block device; name a file"
    )
    assert stat.S_ISBLK(os.lstat(node).st_mode)


def test_a_private_report_stays_private_when_rewritten(smoothl1_command, data, tmp_path):
    report = tmp_path / "report.json"
    report.write_text("{}\n")
    report.chmod(0o600)
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "-o", report, "-q")
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(report.read_text())["results"][0]["value"] == VALUE
    assert stat.S_IMODE(report.stat().st_mode) == 0o600


# ---------------------------------------------------------------- 8.4: numerical noise is no regression


def _saved(smoothl1_command: list[str], data: Path, path: Path, *args: Any) -> dict[str, Any]:
    done = run_command(smoothl1_command, "eval", data, "-t", "y", *args, "-o", path, "-q")
    assert done.returncode == 0, done.stderr.decode()
    saved: dict[str, Any] = json.loads(path.read_text())
    return saved


def _with_value(report: dict[str, Any], value: float | None, path: Path) -> Path:
    changed = json.loads(json.dumps(report))
    changed["results"][0]["value"] = value
    path.write_text(json.dumps(changed))
    return path


@pytest.mark.parametrize("command", ["eval", "compare"])
def test_an_increase_of_one_ulp_is_noise_not_a_regression(smoothl1_command, data, tmp_path, command):
    """The README's promise: results agree across chunkings to a relative 1e-12, so an increase that
    small (here one unit in the last place) passes at the default --max-increase 0, shown as noise."""
    current = _saved(smoothl1_command, data, tmp_path / "current.json")
    lower = math.nextafter(VALUE, 0.0)
    baseline = _with_value(current, lower, tmp_path / "base.json")
    if command == "eval":
        done = run_command(smoothl1_command, "eval", data, "-t", "y", "--baseline", baseline, "-f", "json")
        changes = _report(done)["baseline"]["results"]
    else:
        done = run_command(smoothl1_command, "compare", baseline, tmp_path / "current.json", "-f", "json")
        changes = _report(done)["results"]
    assert done.returncode == 0, done.stderr.decode()
    assert changes == [
        {
            "pred": "pred",
            "target": "y",
            "baseline": lower,
            "current": VALUE,
            "change": VALUE - lower,
            "relative_change": (VALUE - lower) / lower,
            "verdict": "noise",
        }
    ]
    markdown = run_command(smoothl1_command, "compare", baseline, tmp_path / "current.json", "-f", "markdown")
    assert markdown.returncode == 0
    assert "within numerical noise" in markdown.stdout.decode()


def test_an_increase_beyond_the_noise_still_fails(smoothl1_command, data, tmp_path):
    current = _saved(smoothl1_command, data, tmp_path / "current.json")
    lower = VALUE * (1 - 1e-10)  # 100 times the noise
    baseline = _with_value(current, lower, tmp_path / "base.json")
    done = run_command(smoothl1_command, "compare", baseline, tmp_path / "current.json", "-f", "json")
    assert done.returncode == 1, done.stderr.decode()
    assert [c["verdict"] for c in _report(done)["results"]] == ["regressed"]


# ---------------------------------------------------------------- 13.9: matched by (pred, target)


def test_one_pred_against_two_targets_is_matched_by_target(smoothl1_command, write_table, tmp_path):
    """(p, y1) went from 0 to 1.0 and (p, y2) from 1.0 to 0: overall is unchanged, and matching by pred
    alone compared (p, y2) with (p, y2) only. The regression of (p, y1) must fail the gate."""
    zeros, far = [0.0, 0.0], [1.5, 1.5]  # |d| = 1.5: loss 1.0
    old = write_table("csv", name="old", p=zeros, y1=zeros, y2=far)
    new = write_table("csv", name="new", p=zeros, y1=far, y2=zeros)
    assert (reference_mean(zeros, zeros), reference_mean(zeros, far)) == (0.0, 1.0)
    args = ["-t", "y1,y2", "-p", "p,p"]
    saved = tmp_path / "base.json"
    assert run_command(smoothl1_command, "eval", old, *args, "-o", saved, "-q").returncode == 0
    done = run_command(smoothl1_command, "eval", new, *args, "--baseline", saved, "-f", "json")
    assert done.returncode == 1, done.stderr.decode()
    report = _report(done)
    verdicts = [
        (c["pred"], c["target"], c["baseline"], c["current"], c["verdict"]) for c in report["baseline"]["results"]
    ]
    assert verdicts == [
        ("p", "y1", 0.0, 1.0, "regressed"),
        ("p", "y2", 1.0, 0.0, "ok"),
        ("overall", "overall", 0.5, 0.5, "ok"),
    ]
    assert report["gate"]["failures"] == ["p (target y1): 0.0 -> 1.0 (+1, +inf%) exceeds the allowed increase of 0"]


@pytest.mark.parametrize("command", ["eval", "compare"])
def test_results_that_cannot_be_told_apart_are_refused(smoothl1_command, data, tmp_path, command):
    current = _saved(smoothl1_command, data, tmp_path / "current.json")
    twice = dict(current, results=current["results"] * 2)
    baseline = tmp_path / "twice.json"
    baseline.write_text(json.dumps(twice))
    if command == "eval":
        done = run_command(smoothl1_command, "eval", data, "-t", "y", "--baseline", baseline)
    else:
        done = run_command(smoothl1_command, "compare", baseline, tmp_path / "current.json")
    assert _error(done) == (
        f"Error: {baseline}: two results of pred 'pred' against target 'y'; "
        "results are matched by pred and target, so these cannot be told apart"
    )


# ---------------------------------------------------------------- 13.12: NaN limits and baselines


@pytest.mark.parametrize(
    ("option", "says"),
    [("--fail-above", "Error: --fail-above must be a number, not nan"), ("--max-increase", "Error: --max-increase")],
)
@pytest.mark.parametrize("spelling", ["nan", "NaN", "-nan"])
def test_a_nan_limit_is_refused(smoothl1_command, data, tmp_path, option, says, spelling):
    base = _saved(smoothl1_command, data, tmp_path / "base.json")
    assert base["results"][0]["value"] == VALUE
    gate = ["--baseline", tmp_path / "base.json"] if option == "--max-increase" else []
    done = run_command(smoothl1_command, "eval", data, "-t", "y", *gate, option, spelling)
    assert _error(done).startswith(says)


@pytest.mark.parametrize("command", ["eval", "compare"])
def test_a_null_baseline_value_fails_the_gate_with_its_reason(smoothl1_command, data, tmp_path, command):
    current = _saved(smoothl1_command, data, tmp_path / "current.json")
    baseline = _with_value(current, None, tmp_path / "base.json")
    if command == "eval":
        done = run_command(smoothl1_command, "eval", data, "-t", "y", "--baseline", baseline, "-f", "json")
    else:
        done = run_command(smoothl1_command, "compare", baseline, tmp_path / "current.json", "-f", "json")
    assert done.returncode == 1, done.stderr.decode()
    assert _report(done)["gate"] == {
        "passed": False,
        "failures": ["pred: the baseline value is null (NaN or infinite), so nothing can be checked against it"],
    }


# ---------------------------------------------------------------- 13.5: a deeply nested baseline


@pytest.mark.parametrize("where", ["baseline", "current"])
def test_a_deeply_nested_report_is_one_error(smoothl1_command, data, tmp_path, where):
    deep = tmp_path / "deep.json"
    deep.write_text('{"signature": "x", "results": ' + "[" * 100_000 + "]" * 100_000 + "}")
    other = tmp_path / "ok.json"
    _saved(smoothl1_command, data, other)
    expected = f"Error: {deep}: not a smoothl1 JSON report (nested too deeply to read)"
    pair = (deep, other) if where == "baseline" else (other, deep)
    assert _error(run_command(smoothl1_command, "compare", *pair)) == expected
    if where == "baseline":
        assert _error(run_command(smoothl1_command, "eval", data, "-t", "y", "--baseline", deep)) == expected


# ---------------------------------------------------------------- 13.12: signals that end the process


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM])
def test_a_terminating_signal_mid_run_cleans_up_and_exits_128_plus_its_number(mid_run, signum) -> None:
    """Before, SIGHUP and the rest ended the process at once: the per-row temporary file stayed."""
    process, directory = mid_run
    assert leftovers(directory), "the run should be mid-write"
    process.send_signal(signum)
    returncode, out, err = finish(process, timeout=30)
    assert returncode == 128 + signum, err.decode()
    assert err.decode() == f"{signal.strsignal(signum)}.\n"
    assert out == b""
    assert leftovers(directory) == []
    assert not (directory / "rows.csv").exists()
    assert (directory / "report.json").read_text() == '{"old": true}\n'


# ---------------------------------------------------------------- 8.5: --per-row - shares stdout


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--per-row", "-", "-q"], "--per-row - writes the per-row losses to stdout, so the report (-q)"),
        (["--per-row", "-", "-f", "json"], "--per-row - writes the per-row losses to stdout, so the report (-f json)"),
        (["--per-row", "-", "-f", "csv"], "--per-row - writes the per-row losses to stdout, so the report (-f csv)"),
        (["--reduction", "none", "-q"], "--reduction none writes the per-row losses to stdout, so the report (-q)"),
    ],
)
def test_a_report_asked_for_on_stdout_shared_with_per_row_losses_is_refused(smoothl1_command, data, args, shown):
    assert _error(run_command(smoothl1_command, "eval", data, "-t", "y", *args)).startswith(f"Error: {shown}")


def test_per_row_on_stdout_with_the_report_in_a_file_is_fine(smoothl1_command, data, tmp_path):
    report = tmp_path / "report.json"
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "--per-row", "-", "-f", "json", "-o", report)
    code, out, _ = clean_outcome(done)
    assert code == 0
    assert out.decode().splitlines()[0] == "row,loss"
    assert len(out.decode().splitlines()) == 1 + len(PRED)
    assert json.loads(report.read_text())["results"][0]["value"] == VALUE

"""The command's edge (issues 8 and 13): outputs that would destroy data, gates that must not miss or
invent a regression, signals, and stdout shared by per-row losses and the report.

Every test runs the installed `smoothl1` in a subprocess, as a user (or a CI job) does.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import reference_mean, run_command
from tests.test_faults import one_error_line

PRED = [0.5, 1.5, 2.5, 4.0]
TARGET = [1.0, 2.0, 3.0, 0.0]
VALUE = reference_mean(PRED, TARGET)  # 0.125 three times and 3.5: 0.96875


def _csv(path: Path, **columns: list[float]) -> Path:
    lines = [",".join(columns)] + [",".join(map(repr, row)) for row in zip(*columns.values(), strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return _csv(tmp_path / "data.csv", y=TARGET, pred=PRED)


def _error(done: subprocess.CompletedProcess[bytes]) -> str:
    assert done.returncode == 2, done.stderr.decode()
    assert done.stdout == b""
    return one_error_line(done.stderr)


def _report(done: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


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


def test_one_pred_against_two_targets_is_matched_by_target(smoothl1_command, tmp_path):
    """(p, y1) went from 0 to 1.0 and (p, y2) from 1.0 to 0: overall is unchanged, and matching by pred
    alone compared (p, y2) with (p, y2) only. The regression of (p, y1) must fail the gate."""
    zeros, far = [0.0, 0.0], [1.5, 1.5]  # |d| = 1.5: loss 1.0
    old = _csv(tmp_path / "old.csv", p=zeros, y1=zeros, y2=far)
    new = _csv(tmp_path / "new.csv", p=zeros, y1=far, y2=zeros)
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

"""The table view on a pseudo-terminal at 50 to 200 columns: never a cut digit or name, whatever the width."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import reference_loss, reference_mean
from tests.test_terminal import plain, run_on_pty

WIDTHS = (50, 80, 120, 200)
NAMES = [f"resnet50_finetune_lr1e-{k}" for k in range(8)]
TARGET = [0.25 * i - 3.0 for i in range(40)]
PREDS = {
    # model k misses by about (k + 1) / 4, and row 7 of model 0 by 1e-4 only: a min with an exponent
    name: [t + (0.0001 if (k, i) == (0, 7) else (k + 1) * (0.25 + 0.0137 * ((i * 7919 + k) % 13))) * (-1) ** i
           for i, t in enumerate(TARGET)]
    for k, name in enumerate(NAMES)
}  # fmt: skip
IDS = [f"house-{i:04d}-north-wing" for i in range(len(TARGET))]
RESULT_NUMBERS = ("value", "mean", "sum", "std", "min", "max", "linear_fraction", "mae", "rmse")


def eight_models(tmp_path: Path) -> Path:
    """A CSV with 8 predictions with long names, and long ids."""
    lines = ["id,y," + ",".join(NAMES)]
    lines += [",".join([IDS[i], repr(t), *(repr(PREDS[name][i]) for name in NAMES)]) for i, t in enumerate(TARGET)]
    path = tmp_path / "eight.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def screen(smoothl1_command: list[str], columns: int, *args: Any) -> str:
    shown, _ = run_on_pty(smoothl1_command, "eval", *args, stdout_tty=True, stderr_tty=False, columns=columns)
    return plain(shown)


def numbers(result: dict[str, Any]) -> list[float]:
    """Every float of a JSON result, quantiles included."""
    return [result[key] for key in RESULT_NUMBERS] + list(result["quantiles"].values())


@pytest.mark.parametrize("columns", WIDTHS)
def test_every_digit_and_name_of_the_json_is_on_the_screen(smoothl1_command, tmp_path, columns):
    path = eight_models(tmp_path)
    saved = tmp_path / "report.json"
    text = screen(smoothl1_command, columns, path, "-t", "y", *(f"-p{n}" for n in NAMES), "--id", "id", "-o", saved)
    report = json.loads(saved.read_text())
    for result in report["results"]:  # the JSON is right (an independent reference) ...
        assert result["value"] == pytest.approx(reference_mean(PREDS[result["pred"]], TARGET), rel=1e-12)
    assert min(r["min"] for r in report["results"]) == pytest.approx(reference_loss(TARGET[7] + 0.0001, TARGET[7]))
    assert "e-09" in repr(report["results"][0]["min"])
    assert "…" not in text  # ... and the screen shows all of it
    assert all(len(line) <= columns for line in text.splitlines()), text
    assert "smooth_l1 (beta=1, reduction=mean)" in text.splitlines()  # the title on one line
    for result in report["results"]:
        assert result["pred"] in text
        for number in numbers(result):
            assert repr(number) in text, (result["pred"], number)
    for row in report["worst_rows"]:
        assert row["id"] in text
        for key in ("prediction", "actual", "loss"):
            assert repr(row[key]) in text


def test_a_table_that_fits_stays_side_by_side(smoothl1_command, tmp_path):
    """Two short names at 120 columns: the results are columns, a line holding both values."""
    path = eight_models(tmp_path)
    saved = tmp_path / "report.json"
    text = screen(smoothl1_command, 120, path, "-t", "y", "-p", NAMES[0], "-p", NAMES[1], "-o", saved)
    first, second = json.loads(saved.read_text())["results"]
    header = next(line for line in text.splitlines() if NAMES[0] in line)
    assert NAMES[1] in header
    value = next(line for line in text.splitlines() if line.startswith("│ value "))
    assert repr(first["value"]) in value
    assert repr(second["value"]) in value


def test_the_summary_shows_omitted_rows_and_p95(smoothl1_command, tmp_path):
    path = tmp_path / "omit.csv"
    path.write_text("y,pred\n1,1.5\n2,\n3,nan\n4,4.25\n")
    text = screen(smoothl1_command, 80, path, "-t", "y", "--nan-policy", "omit")
    assert "4 rows, 2 omitted (--nan-policy omit) from" in text
    omitted = next(line for line in text.splitlines() if line.startswith("│ omitted "))
    assert omitted.split("│")[2].strip() == "2"
    count = next(line for line in text.splitlines() if line.startswith("│ count "))
    assert count.split("│")[2].strip() == "2"
    p95 = next(line for line in text.splitlines() if line.startswith("│ p95 "))
    losses = sorted([reference_loss(1.5, 1.0), reference_loss(4.25, 4.0)])
    expected = losses[0] + 0.95 * (losses[1] - losses[0])  # NumPy's linear interpolation
    assert math.isclose(float(p95.split("│")[2]), expected, rel_tol=1e-15)


def test_a_gate_that_was_asked_for_says_it_passed(smoothl1_command, tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("y,pred\n1,1.5\n2,2.5\n")
    text = screen(smoothl1_command, 80, path, "-t", "y", "--fail-above", "0.125")  # the mean is 0.125: passes
    assert text.splitlines()[-1] == "gate passed"


def test_no_gate_no_gate_line(smoothl1_command, tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("y,pred\n1,1.5\n2,2.5\n")
    text = screen(smoothl1_command, 80, path, "-t", "y")
    assert "gate passed" not in text

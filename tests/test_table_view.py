"""The table view on a pseudo-terminal at 50 to 200 columns: never a cut digit or name, whatever the width."""

from __future__ import annotations

import json
import math
import re
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


# --- the histogram -------------------------------------------------------------------------------------------


def histograms(text: str) -> dict[str, list[tuple[str, int]]]:
    """Each pred's histogram on the screen as (label, count) rows, the beta line as ("|d| = beta", -1)."""
    shown: dict[str, list[tuple[str, int]]] = {}
    rows: list[tuple[str, int]] = []
    for line in text.splitlines():
        if line.strip().startswith("loss distribution: "):
            rows = shown.setdefault(line.strip().removeprefix("loss distribution: "), [])
        elif "┄┄" in line:
            rows.append((line.split("┄")[0].strip(), -1))
        elif any(mark in line for mark in "█▏·"):
            label, count = re.split(r"\s+[█▏·]+\s+", line.strip())
            rows.append((label, int(count)))  # a count that is not an integer fails here
        elif not line.strip() or "worst rows" in line or "┏" in line:
            rows = []
    return shown


def spread_out(tmp_path: Path, rows: int, nan_rows: int = 0) -> tuple[Path, dict[str, list[float]]]:
    """Two preds whose |d| spans 1e-8 .. 1e2 (and 0 for a few rows), in a CSV; NaN in pred `b`'s first rows."""
    columns: dict[str, list[float]] = {"y": [], "a": [], "b": []}
    for i in range(rows):
        target = (i % 17) * 0.5
        exponent = -8 + 10 * ((i * 7919) % rows) / rows
        d = 0.0 if i % 101 == 0 else 10.0**exponent
        columns["y"].append(target)
        columns["a"].append(target + d * (-1) ** i)
        columns["b"].append(math.nan if i < nan_rows else target + 3 * d)
    path = tmp_path / "spread.csv"
    lines = ["y,a,b", *(",".join(repr(columns[c][i]) for c in ("y", "a", "b")) for i in range(rows))]
    path.write_text("\n".join(lines).replace("nan", "") + "\n")
    return path, columns


def bounds(label: str) -> list[float]:
    return [float(part) for part in label.split(" – ")]


@pytest.mark.parametrize("rows", [400, 6000])  # exact values, and the sketch (more than 4,096 rows)
def test_histograms_share_bins_inside_min_max_with_exact_counts(smoothl1_command, tmp_path, rows):
    path, columns = spread_out(tmp_path, rows)
    saved = tmp_path / "report.json"
    text = screen(smoothl1_command, 80, path, "-t", "y", "-p", "a", "-p", "b", "--top", "0", "-o", saved)
    shown = histograms(text)
    results = {r["pred"]: r for r in json.loads(saved.read_text())["results"]}
    assert [label for label, _ in shown["a"]] == [label for label, _ in shown["b"]]  # the same bins
    lowest = min(r["min"] for r in results.values())
    highest = max(r["max"] for r in results.values())
    for pred in ("a", "b"):
        counts = [count for _, count in shown[pred] if count >= 0]
        assert sum(counts) == rows  # every row in exactly one bin
        zeros = sum(1 for p, t in zip(columns[pred], columns["y"], strict=True) if p == t)
        assert shown[pred][0] == ("0", zeros)  # a bin of exact zeros, as one value
        for label, count in shown[pred]:
            if count >= 0:
                assert all(float(f"{lowest:.6g}") <= edge <= float(f"{highest:.6g}") for edge in bounds(label))
    assert any(count == 0 for _, count in shown["a"] + shown["b"])  # b's losses start higher: an empty bin shows 0


def test_the_beta_line_splits_quadratic_from_linear_rows(smoothl1_command, tmp_path):
    path, columns = spread_out(tmp_path, 400)
    text = screen(smoothl1_command, 80, path, "-t", "y", "-p", "a", "--top", "0")
    rows = histograms(text)["a"]
    line = rows.index(("|d| = beta", -1))
    quadratic = sum(1 for p, t in zip(columns["a"], columns["y"], strict=True) if abs(p - t) < 1)
    assert sum(count for _, count in rows[:line]) == quadratic
    assert sum(count for _, count in rows[line + 1 :]) == len(columns["a"]) - quadratic
    assert bounds(rows[line - 1][0])[-1] == 0.5  # the loss at |d| = beta


def test_a_narrow_terminal_keeps_bars_and_labels_on_one_line(smoothl1_command, tmp_path):
    path, _ = spread_out(tmp_path, 400)
    text = screen(smoothl1_command, 50, path, "-t", "y", "-p", "a", "--top", "0")
    assert "…" not in text
    assert all(len(line) <= 50 for line in text.splitlines())
    rows = histograms(text)["a"]
    assert sum(count for _, count in rows if count >= 0) == 400
    bars = {line.count("█") for line in text.splitlines() if "█" in line}
    assert max(bars) >= 8  # the peak still has a bar to compare against


def test_small_bins_get_a_mark_and_nan_rows_a_bin_under_propagate(smoothl1_command, tmp_path):
    path, _ = spread_out(tmp_path, 400, nan_rows=3)
    text = screen(smoothl1_command, 80, path, "-t", "y", "-p", "b", "--top", "0", "--nan-policy", "propagate")
    rows = histograms(text)["b"]
    assert rows[-1] == ("nan", 3)
    assert sum(count for _, count in rows if count >= 0) == 400
    for line in text.splitlines():
        if re.search(r"\s[1-9]\d*\s*$", line) and " – " in line:
            assert "█" in line or "▏" in line  # a non-empty bin always draws something


def test_equal_losses_make_one_single_value_bin(smoothl1_command, tmp_path):
    path = tmp_path / "worked.csv"
    path.write_text("pred,target\n0.5,1\n1.5,2\n2.5,3\n")
    rows = histograms(screen(smoothl1_command, 80, path, "-t", "target"))["pred"]
    assert rows == [("0.125", 3)]


# --- the Python API's frames ---------------------------------------------------------------------------------


def test_frames_are_flat_and_a_dataframe_index_is_the_id():
    import pandas as pd

    from smoothl1_cli import evaluate

    houses = [f"house-{i}" for i in range(12)]
    target = [0.5 * i for i in range(12)]
    preds = {"a": [t + 0.3 * (-1) ** i for i, t in enumerate(target)], "b": [t + 0.2 * i for i, t in enumerate(target)]}
    frame = pd.DataFrame({"y": target, **preds, "g": ["x", "y", "z"] * 4}, index=pd.Index(houses, name="house"))
    report = evaluate(frame, "y", pred=["a", "b"], group_by="g", id="house", ci=0.9, bootstrap=50, top=3)
    results = report.to_frame()
    assert not any(isinstance(cell, dict) for cell in results.to_numpy().ravel())
    for column in ("p50", "p95", "ci_low", "ci_high", "paired_difference", "paired_p_value"):
        assert column in results.columns, column
    expected = {pred: reference_mean(values, target) for pred, values in preds.items()}
    assert dict(zip(results["pred"], results["value"], strict=True)) == pytest.approx(expected, rel=1e-12)
    difference = results.set_index("pred").loc["b", "paired_difference"]
    assert difference == pytest.approx(expected["b"] - expected["a"], rel=1e-9)

    groups = report.to_frame("groups")
    assert len(groups) == 3 * 2
    for row in groups.itertuples():
        rows = [i for i in range(12) if "xyz"[i % 3] == row.group]
        reference = math.fsum(reference_loss(preds[row.pred][i], target[i]) for i in rows) / len(rows)
        assert row.value == pytest.approx(reference, rel=1e-12)
        assert row.count == len(rows)

    worst = report.to_frame("worst_rows")
    assert len(worst) == 3 * 2
    for row in worst.itertuples():
        assert row.id == houses[row.row]  # the index's labels, not row numbers
        assert row.loss == pytest.approx(reference_loss(preds[row.pred][row.row], target[row.row]), rel=1e-15)
    with pytest.raises(ValueError, match="'results', 'groups' or 'worst_rows'"):
        report.to_frame("rows")


def test_the_table_shows_the_reports_warnings(smoothl1_command, tmp_path):
    path = tmp_path / "huge.csv"
    path.write_text("y,pred\n-1e308,1e308\n1,1.5\n")  # d = 2e308 overflows float64: the loss is inf
    saved = tmp_path / "report.json"
    text = screen(smoothl1_command, 200, path, "-t", "y", "-o", saved)
    (warning,) = json.loads(saved.read_text())["warnings"]
    assert "overflows float64" in warning
    assert f"warning: {warning}" in " ".join(text.split())  # wrapped lines joined


def test_a_bin_whose_edges_print_alike_at_six_digits_shows_all_their_digits() -> None:
    from smoothl1_cli.render import _span

    assert _span(0.004999999999999982, 0.005) == "0.004999999999999982 – 0.005"
    assert _span(0.0466, 0.142) == "0.0466 – 0.142"

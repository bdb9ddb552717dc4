"""Pictures: the Mermaid xychart-beta charts in `-f markdown`, and `--plot FILE.svg`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import reference_loss, reference_mean, run_command

TARGET = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
GOOD = [1.1, 2.0, 2.9, 4.2, 5.0, 6.1, 7.3, 8.0]
BAD = [2.0, 0.0, 3.5, 4.0, 8.0, 6.0, 7.5, 12.0]


def mermaid_charts(markdown: str) -> list[dict[str, Any]]:
    """Each ```mermaid block's title, x-axis labels and bar/line series."""
    charts = []
    for block in re.findall(r"```mermaid\n(.*?)```", markdown, re.S):
        lines = block.strip().splitlines()
        assert lines[0] == "xychart-beta"
        chart: dict[str, Any] = {}
        for line in lines[1:]:
            key, _, rest = line.strip().partition(" ")
            if key == "title":
                chart["title"] = json.loads(rest)
            elif key == "x-axis":
                chart["x"] = json.loads(rest)
            else:
                assert re.fullmatch(r"\[[-0-9., ]*\]", rest), rest  # positional numbers: Mermaid reads no exponent
                chart[key] = json.loads(rest)
        charts.append(chart)
    return charts


@pytest.fixture
def data(write_table) -> Path:
    return write_table("csv", y=TARGET, good=GOOD, bad=BAD)


def test_markdown_charts_value_per_pred_against_the_baseline_and_the_distribution(smoothl1_command, data, tmp_path):
    baseline = tmp_path / "main.json"
    made = run_command(smoothl1_command, "eval", data, "-t", "y", "-p", "bad,good", "-o", baseline, "-f", "json")
    assert made.returncode == 0
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "-p", "good,bad", "--baseline", baseline,
                       "-f", "markdown")  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    value, *distributions = mermaid_charts(text)
    assert value["title"] == "smooth_l1 mean per pred (bars: current, line: baseline)"
    assert value["x"] == ["good", "bad"]
    expected = [reference_mean(GOOD, TARGET), reference_mean(BAD, TARGET)]
    assert value["bar"] == pytest.approx(expected, rel=1e-5)
    assert value["line"] == pytest.approx(expected, rel=1e-5)  # the same data: the baseline's values
    assert [d["title"] for d in distributions] == ["loss distribution: good", "loss distribution: bad"]
    for chart, pred in zip(distributions, (GOOD, BAD), strict=True):
        assert sum(chart["bar"]) == len(TARGET)
        assert len(chart["x"]) == len(chart["bar"])
        zeros = sum(reference_loss(p, t) == 0 for p, t in zip(pred, TARGET, strict=True))
        assert (chart["x"][0] == "0") == (zeros > 0)
        if zeros:
            assert chart["bar"][0] == zeros
    assert "| pred | target | count | value |" in text  # the tables are kept


def test_markdown_chart_without_a_baseline_has_no_line_and_no_chart_of_nan(smoothl1_command, write_table):
    data = write_table("csv", y=TARGET, good=GOOD, gap=[None, *BAD[1:]])
    plain = run_command(smoothl1_command, "eval", data, "-t", "y", "-p", "good", "-f", "markdown")
    (value, _) = mermaid_charts(plain.stdout.decode())
    assert value["title"] == "smooth_l1 mean per pred"
    assert "line" not in value
    nan = run_command(smoothl1_command, "eval", data, "-t", "y", "-p", "good,gap", "--nan-policy", "propagate",
                      "-f", "markdown")  # fmt: skip
    assert nan.returncode == 0, nan.stderr
    assert mermaid_charts(nan.stdout.decode()) == []


def test_markdown_chart_labels_cannot_break_out_of_their_quotes(smoothl1_command, write_table):
    data = write_table("parquet", **{"y": TARGET, 'a"]\nbar [1': GOOD})
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "-f", "markdown")
    text = done.stdout.decode()
    assert "    x-axis [\"a']\\nbar [1\"]\n" in text  # one line: the newline shown as \n, the quote as '
    assert "\nbar [1" not in text

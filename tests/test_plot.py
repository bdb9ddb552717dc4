"""Pictures: the Mermaid xychart-beta charts in `-f markdown`, and `--plot FILE.svg`."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
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
    assert "| pred | target | count | omitted | value |" in text  # the tables are kept


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
    assert '    x-axis ["a\']\\nbar [1"]\n' in text  # one line: the newline shown as \n, the quote as '
    assert "\nbar [1" not in text


# ---------------------------------------------------------------- --plot FILE.svg

SVG = "{http://www.w3.org/2000/svg}"


def _plot(smoothl1_command, tmp_path: Path, *args: Any, name: str = "plot.svg") -> bytes:
    out = tmp_path / name
    done = run_command(smoothl1_command, "eval", *args, "--plot", out, "-q")
    assert done.returncode in (0, 1), done.stderr
    return out.read_bytes()


def _panels(document: bytes) -> list[ET.Element]:
    root = ET.fromstring(document)
    assert root.tag == f"{SVG}svg"
    return root.findall(f"{SVG}g")


def _title(panel: ET.Element) -> str:
    return next(t.text or "" for t in panel.iter(f"{SVG}text") if t.get("font-weight") == "bold")


def _bars(panel: ET.Element) -> list[tuple[ET.Element, str]]:
    return [(rect, rect.findtext(f"{SVG}title") or "") for rect in panel.iter(f"{SVG}rect")]


def test_plot_is_the_same_bytes_for_the_same_data_in_any_format(smoothl1_command, write_table, tmp_path):
    csv = write_table("csv", y=TARGET, good=GOOD, bad=BAD)
    parquet = write_table("parquet", y=TARGET, good=GOOD, bad=BAD)
    first = _plot(smoothl1_command, tmp_path, csv, "-t", "y", name="a.svg")
    assert _plot(smoothl1_command, tmp_path, csv, "-t", "y", name="b.svg") == first
    assert _plot(smoothl1_command, tmp_path, parquet, "-t", "y", name="c.svg") == first


@pytest.mark.parametrize(("options", "split"), [(["--beta", "2"], 1.0), (["--loss", "huber", "--delta", "2"], 2.0)])
def test_plot_has_a_distribution_per_pred_split_where_the_loss_turns_linear(
    smoothl1_command, data, tmp_path, options, split
):
    panels = _panels(_plot(smoothl1_command, tmp_path, data, "-t", "y", "-p", "good,bad", *options))
    assert [_title(p) for p in panels] == ["loss distribution: good (target y)", "loss distribution: bad (target y)"]
    parameter = float(options[-1])
    placed = 0
    for panel, pred in zip(panels, (GOOD, BAD), strict=True):
        losses = [reference_loss(p, t, parameter, options[1] if options[0] == "--loss" else "smooth_l1")
                  for p, t in zip(pred, TARGET, strict=True)]  # fmt: skip
        bars = _bars(panel)
        counted = [(rect, tip) for rect, tip in bars if tip.endswith(" rows")]
        assert sum(float(tip.rpartition(": ")[2].removesuffix(" rows")) for _, tip in counted) == len(losses)
        for rect, tip in counted:  # colour by the bin's middle: linear from the split on
            low, high = _range(tip)
            middle = (low * high) ** 0.5 if low > 0 else low
            assert rect.get("fill") == ("#e45756" if middle >= split else "#4c78a8"), tip
        (line,) = [e for e in panel.iter(f"{SVG}line") if e.get("class") == "split"]
        label = f"|d| = {'delta' if split == 2.0 else 'beta'}: loss {split:g}"
        assert any((t.text or "").startswith(label) for t in panel.iter(f"{SVG}text"))
        straddled = [rect for rect, tip in counted if _range(tip)[0] <= split <= _range(tip)[1]]
        if max(losses) > split > min(x for x in losses if x > 0):  # the line within the bin holding the split
            x, rect = float(line.get("x1", "")), straddled[0]
            assert float(rect.get("x", "")) - 1 <= x <= float(rect.get("x", "")) + float(rect.get("width", "")) + 1
            placed += 1
    assert placed >= 1


def _range(tip: str) -> tuple[float, float]:
    edges = tip.rpartition(": ")[0].split(" – ")
    return float(edges[0]), float(edges[-1])


def test_plot_with_a_baseline_shows_both_values(smoothl1_command, write_table, tmp_path):
    before = write_table("csv", name="before", y=TARGET, good=GOOD, bad=GOOD)
    after = write_table("csv", name="after", y=TARGET, good=GOOD, bad=BAD)
    baseline = tmp_path / "main.json"
    assert run_command(smoothl1_command, "eval", before, "-t", "y", "-o", baseline, "-f", "json").returncode == 0
    panels = _panels(_plot(smoothl1_command, tmp_path, after, "-t", "y", "--baseline", baseline))
    assert len(panels) == 3
    assert _title(panels[0]) == "smooth_l1 mean per pred: baseline (grey) and current"
    good, bad = reference_mean(GOOD, TARGET), reference_mean(BAD, TARGET)
    tips = {tip: rect.get("fill") for rect, tip in _bars(panels[0]) if tip}
    assert tips == {f"good baseline: {good!r}": "#a0a0a0", f"good current: {good!r}": "#4c78a8",
                    f"bad baseline: {good!r}": "#a0a0a0", f"bad current: {bad!r}": "#e45756"}  # fmt: skip


def test_plot_must_be_svg_and_is_refused_before_reading(smoothl1_command, data, tmp_path):
    out = tmp_path / "plot.png"
    done = run_command(smoothl1_command, "eval", tmp_path / "missing.csv", "-t", "y", "--plot", out)
    assert done.returncode == 2
    assert done.stderr.decode() == f"Error: --plot {out}: name a .svg file (the plot is SVG)\n"
    assert not out.exists()

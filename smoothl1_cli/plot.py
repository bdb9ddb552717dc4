"""--plot FILE.svg: a deterministic SVG (no plotting library): the same report gives the same bytes.

With a baseline, a panel of each pred's value, baseline beside current; then, for the first results,
the loss distribution over the sketch's log-spaced bins (finer than the table view's), the bins of the
quadratic part (|d| < beta) and of the linear part in two colours, split by a dashed line at the
loss where |d| = beta (0.5 * beta for Smooth L1, 0.5 * delta**2 for Huber).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

from smoothl1_cli.errors import InputError, printable
from smoothl1_cli.gate import Comparison
from smoothl1_cli.render import short, split_loss
from smoothl1_cli.report import Report, Result, result_names

WIDTH, PANEL, LEFT, RIGHT, TOP, BOTTOM = 760, 250, 72, 24, 50, 46
PLOT_RESULTS = 8  # distribution panels at most
PLOT_PREDS = 30  # preds in the baseline panel at most
BINS = 20
QUADRATIC, LINEAR, BASELINE, TEXT, GRID = "#4c78a8", "#e45756", "#a0a0a0", "#222222", "#dddddd"


def check_path(path: str) -> None:
    """--plot writes SVG only: refuse another extension before anything is read."""
    from smoothl1_cli.readers.fs import name_of, redact

    if not name_of(path).lower().endswith(".svg"):
        raise InputError(f"--plot {redact(path)}: name a .svg file (the plot is SVG)")


def svg(report: Report) -> bytes:
    """The report's pictures as one SVG document."""
    panels: list[list[str]] = []
    if report.comparison is not None:
        panels.append(_values_panel(report, report.comparison))
    panels += [_distribution_panel(report, result) for result in report.all_results[:PLOT_RESULTS]]
    height = PANEL * len(panels)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    for index, panel in enumerate(panels):
        parts += [f'<g transform="translate(0,{index * PANEL})">', *panel, "</g>"]
    return ("\n".join([*parts, "</svg>"]) + "\n").encode()


def _text(x: float, y: float, content: str, anchor: str = "start", size: int = 11, weight: str = "normal",
          fill: str = TEXT) -> str:  # fmt: skip
    return (f'<text x="{x:.2f}" y="{y:.2f}" text-anchor="{anchor}" font-size="{size}" font-weight="{weight}" '
            f'fill="{fill}">{escape(printable(content))}</text>')  # fmt: skip


def _bar(x: float, y: float, width: float, height: float, colour: str, tip: str) -> str:
    return (f'<rect x="{x:.2f}" y="{y:.2f}" width="{width:.2f}" height="{height:.2f}" fill="{colour}">'
            f"<title>{escape(printable(tip))}</title></rect>")  # fmt: skip


def _axes(peak: float, label: str) -> list[str]:
    """The y axis from 0 to `peak` (three gridlines) and the baseline of the bars."""
    bottom, inner = PANEL - BOTTOM, PANEL - TOP - BOTTOM
    parts = []
    for step in range(3):
        y = bottom - inner * step / 2
        parts.append(f'<line x1="{LEFT}" y1="{y:.2f}" x2="{WIDTH - RIGHT}" y2="{y:.2f}" stroke="{GRID}"/>')
        parts.append(_text(LEFT - 6, y + 4, f"{peak * step / 2:.3g}", "end"))
    parts.append(f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="{TEXT}"/>')
    parts.append(f'<text x="16" y="{TOP + inner / 2:.2f}" transform="rotate(-90 16 {TOP + inner / 2:.2f})" '
                 f'text-anchor="middle" fill="{TEXT}">{escape(label)}</text>')  # fmt: skip
    return parts


def _height(value: float, peak: float) -> float:
    return (PANEL - TOP - BOTTOM) * value / peak if peak > 0 else 0.0


def _values_panel(report: Report, comparison: Comparison) -> list[str]:
    """Each pred's value: the baseline's (grey) beside the current one (red where it regressed)."""
    changes = comparison.changes[:PLOT_PREDS]
    known = [v for c in changes for v in (c.baseline, c.current) if v is not None and math.isfinite(v)]
    peak = max(known, default=0.0) * 1.1 or 1.0
    parts = [_text(LEFT, 20, f"{report.loss} {report.reduction} per pred: baseline (grey) and current", size=13,
                   weight="bold"), *_axes(peak, report.reduction)]  # fmt: skip
    slot = (WIDTH - LEFT - RIGHT) / max(len(changes), 1)
    width = min(slot * 0.38, 40.0)
    for index, (change, name) in enumerate(
        zip(changes, result_names([(c.pred, c.target) for c in changes]), strict=True)
    ):
        middle = LEFT + slot * (index + 0.5)
        bars = (
            (change.baseline, BASELINE, "baseline", -width),
            (change.current, _colour(change.verdict), "current", 0),
        )
        for value, colour, what, offset in bars:
            if value is None or not math.isfinite(value):
                parts.append(_text(middle + offset + width / 2, PANEL - BOTTOM - 4, "n/a", "middle", 9))
                continue
            height = _height(value, peak)
            parts.append(_bar(middle + offset, PANEL - BOTTOM - height, width, height, colour,
                              f"{name} {what}: {value!r}"))  # fmt: skip
        parts.append(_text(middle, PANEL - BOTTOM + 14, _clip(name), "middle"))
        parts.append(_text(middle, PANEL - BOTTOM + 28, change.verdict, "middle", 9))
    return parts


def _colour(verdict: str) -> str:
    return LINEAR if verdict in ("regressed", "missing") else QUADRATIC


def _clip(name: str, most: int = 16) -> str:
    return name if len(name) <= most else name[: most - 1] + "…"


def _distribution_panel(report: Report, result: Result) -> list[str]:
    """One result's per-row losses over log-spaced bins, quadratic and linear parts coloured apart."""
    bins = result.summary.distribution.histogram(BINS) if result.summary.distribution is not None else []
    split = split_loss(report) or 0.0  # L1 (beta 0): every loss is linear
    name = result.pred if result.pred == "overall" else f"{result.pred} (target {result.target})"
    parts = [_text(LEFT, 20, f"loss distribution: {name}", size=13, weight="bold"),
             _text(WIDTH - RIGHT, 14, f"■ quadratic (|d| < {report.parameter_name})", "end", fill=QUADRATIC),
             _text(WIDTH - RIGHT, 27, f"■ linear (|d| ≥ {report.parameter_name})", "end", fill=LINEAR)]  # fmt: skip
    peak = max((weight for _, _, weight in bins), default=0.0) or 1.0
    parts += _axes(peak, "rows")
    if not bins:
        return [*parts, _text(WIDTH / 2, PANEL / 2, "no rows", "middle")]
    slot = (WIDTH - LEFT - RIGHT) / len(bins)
    for index, (low, high, weight) in enumerate(bins):
        linear = math.sqrt(low * high) >= split if low > 0 else low >= split  # a bin by its middle
        height = _height(weight, peak)
        x = LEFT + slot * index
        label = short(low) if low == high else f"{low:.3g} – {high:.3g}"
        parts.append(_bar(x + 1, PANEL - BOTTOM - height, slot - 2, height, LINEAR if linear else QUADRATIC,
                          f"{label}: {short(weight).removesuffix('.0')} rows"))  # fmt: skip
    parts += _ticks(bins, slot)
    parts += _split_line(bins, slot, split, report)
    return parts


def _ticks(bins: Sequence[tuple[float, float, float]], slot: float) -> list[str]:
    """Bin edges under the axis (the zeros and infinities under their own bar), none closer than 60px to
    the one before, so the labels never overlap."""
    ticks = [(LEFT + slot * (i + 0.5), short(low)) if low == high else (LEFT + slot * i, f"{low:.3g}")
             for i, (low, high, _) in enumerate(bins)]  # fmt: skip
    last = next(((i, high) for i, (low, high, _) in reversed(list(enumerate(bins))) if low != high), None)
    if last is not None:
        ticks.append((LEFT + slot * (last[0] + 1), f"{last[1]:.3g}"))
    kept: list[tuple[float, str]] = []
    for x, label in ticks:
        if kept and x - kept[-1][0] < 60:
            if (x, label) != ticks[-1]:
                continue
            kept.pop()  # the top edge is always shown
        kept.append((x, label))
    parts = [_text(x, PANEL - BOTTOM + 14, label, "middle") for x, label in kept]
    return [*parts, _text((WIDTH + LEFT - RIGHT) / 2, PANEL - 8, "loss (log-spaced bins)", "middle")]


def _split_line(bins: Sequence[tuple[float, float, float]], slot: float, split: float, report: Report) -> list[str]:
    """A dashed line where the loss turns linear, placed within its bin on the log scale."""
    ranged = [(i, low, high) for i, (low, high, _) in enumerate(bins) if 0 < low < high < math.inf]
    if split <= 0 or not ranged:
        return []
    first, last = ranged[0], ranged[-1]
    if split <= first[1]:
        x = LEFT + slot * first[0]
    elif split >= last[2]:
        x = LEFT + slot * (last[0] + 1)
    else:
        index, low, high = next(r for r in ranged if r[1] <= split <= r[2])
        x = LEFT + slot * (index + math.log(split / low) / math.log(high / low))
    parameter = f"{report.parameter_name} = {short(report.parameter)}"
    return [f'<line x1="{x:.2f}" y1="{TOP - 4}" x2="{x:.2f}" y2="{PANEL - BOTTOM}" stroke="{TEXT}" '
            'stroke-dasharray="4 3" class="split"/>',
            _text(x + 4 if x < WIDTH / 2 else x - 4, TOP - 8, f"|d| = {report.parameter_name}: loss {short(split)} "
                  f"({parameter})", "start" if x < WIDTH / 2 else "end")]  # fmt: skip

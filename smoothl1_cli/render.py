"""RENDERERS: table | json | markdown | csv | quiet, each a function of a Report onto a text stream.

COMPARISON_RENDERERS do the same for `smoothl1 compare`. The only module that imports rich.
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from types import GeneratorType
from typing import Any, TextIO

import numpy as np

from smoothl1_cli.errors import printable
from smoothl1_cli.gate import Change, Comparison
from smoothl1_cli.report import Gate, Report, Result, strict_json_value
from smoothl1_cli.stats import QUANTILES

GROUP_COLUMNS = ("count", "value", "mean", "std", "min", "max", "linear_fraction", "mae", "rmse")
TABLE_GROUP_COLUMNS = ("count", "value", "std", "max", "mae", "rmse")  # what fits a terminal
TABLE_GROUPS = 50  # the terminal shows this many group rows; JSON, CSV and markdown carry them all
TABLE_COLUMNS = ("count", "omitted", "value", "mean", "sum", "std", "min", "p50", "p90", "p95", "p99", "max",
                 "linear_fraction", "mae", "rmse")  # fmt: skip  # the table's and the markdown's
CSV_COLUMNS = (
    "count",
    "value",
    "mean",
    "sum",
    "std",
    "min",
    "p50",
    "p90",
    "p95",
    "p99",
    "max",
    "linear_fraction",
    "mae",
    "rmse",
)
MARKDOWN_LIMIT = 512 * 1024  # GitHub's job summary takes 1 MiB; stay well under it
COMMENT_LIMIT = 59_500  # bytes of lines: with the note, a compact report stays below 60,000 characters
BAR_WIDTH = 30
HISTOGRAM_BINS = 8  # log-spaced, over the losses above the 1st percentile (those below get a bin of their own)
TABLE_HISTOGRAMS = 4  # loss distributions shown, in the table and as the markdown's charts
CHART_RESULTS = 30  # bars in the markdown's value chart


def _rich(value: Any) -> str:
    """A cell of a rich table: numbers at full precision, text from the data (names, ids, paths) shown as
    it is, never read as markup."""
    from rich.markup import escape

    return escape(_full(value))


def _cell(value: Any) -> Any:
    """A table cell: styled text as it is, anything else as _rich writes it."""
    from rich.text import Text

    return value if isinstance(value, Text) else _rich(value)


def short(value: Any) -> str:
    """A number for people: six significant digits; NaN and infinities as nan, inf, -inf; text printable."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.6g}"
    return "" if value is None else printable(str(value))


def _full(value: Any) -> str:
    return repr(value) if isinstance(value, float) and math.isfinite(value) else short(value)


def _stat(result: Result, name: str) -> Any:
    """A statistic by its report name; None for quantiles a group result does not keep."""
    if name in QUANTILES:
        return result.summary.quantiles.get(name)
    if name in ("value", "omitted"):
        return getattr(result, name)
    return getattr(result.summary, name)


def _title(report: Report) -> str:
    return f"{report.loss} ({report.parameter_name}={short(report.parameter)}, reduction={report.reduction})"


def _inputs(report: Report, note: str = "") -> str:
    return f"{report.rows} rows{note} from {', '.join(printable(i.path) for i in report.inputs)}"


def render_json(report: Report, out: TextIO) -> None:
    """The report as strict JSON: NaN and infinities become null, floats keep every digit."""
    data = report.to_dict(groups=False)
    if report.group_by is not None:
        data["groups"] = (group.to_dict() for group in report.groups)  # never all held as dicts at once
    _dump_json(data, out)


def _dump_json(data: dict[str, Any], out: TextIO) -> None:
    """Strict JSON data (no NaN, no infinities) as json.dump(indent=2, ensure_ascii=False) writes it,
    and the controls json leaves as they are (DEL, C1, U+2028/U+2029) as \\u escapes too."""
    texts = _json_texts(data, 0)
    while pieces := list(itertools.islice(texts, 1024)):  # a million groups: neither a write each nor one string
        out.write(_JSON_CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", "".join(pieces)))
    out.write("\n")


_JSON_CONTROL = re.compile(r"[\x7f-\x9f\u2028\u2029]")  # only ever inside strings: the rest is ASCII


_CONTAINERS = (dict, list, tuple, GeneratorType)


def _json_texts(value: Any, depth: int) -> Iterator[str]:
    """The indented JSON of `value` (a generator is a list made as it is written) in pieces, byte for
    byte json.dump(indent=2)'s.

    json's indenting encoder is pure Python, a call per value: a container of plain values (a group,
    say) goes through its C encoder in one call instead, with the indentation as the item separator.
    """
    if not isinstance(value, _CONTAINERS):
        yield _encoder(depth).encode(value)
        return
    inner = "\n" + "  " * (depth + 1)
    is_dict = isinstance(value, dict)
    items = value.values() if isinstance(value, dict) else value
    if not isinstance(value, GeneratorType) and not any(isinstance(item, _CONTAINERS) for item in items):
        text = _encoder(depth).encode(value)  # {} and [] too
        yield f"{text[0]}{inner}{text[1:-1]}\n{'  ' * depth}{text[-1]}" if value else text
        return
    opening, closing = "{}" if is_dict else "[]"
    index = -1
    for index, (key, item) in enumerate(value.items() if isinstance(value, dict) else enumerate(value)):
        yield (opening if index == 0 else ",") + inner + (f"{_encoder(depth).encode(key)}: " if is_dict else "")
        yield from _json_texts(item, depth + 1)
    yield opening + closing if index < 0 else "\n" + "  " * depth + closing


@functools.cache
def _encoder(depth: int) -> json.JSONEncoder:
    """json's C encoder, separating the items of a container at `depth` as indent=2 does."""
    return json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",\n" + "  " * (depth + 1), ": "))


def render_quiet(report: Report, out: TextIO) -> None:
    """Only the values at full precision; with several results, `pred<TAB>value` lines."""
    results = report.all_results
    for result in results:
        value = _full(result.value)
        out.write(f"{printable(result.pred)}\t{value}\n" if len(results) > 1 else f"{value}\n")


def render_csv(report: Report, out: TextIO) -> None:
    """A line per result, `overall` and group, each saying which (`kind`); every statistic at full precision."""
    writer = csv.writer(out, lineterminator="\n")
    key = ["group"] if report.group_by is not None else []
    writer.writerow(["kind", *key, "pred", "target", "omitted", *CSV_COLUMNS])
    lines: list[tuple[str, Any, Result, int | None]] = [
        ("overall" if r is report.overall else "result", None, r, r.omitted) for r in report.all_results
    ]
    lines += [("group", group.group, group.result, None) for group in report.groups]  # omitted: not kept per group
    for kind, group, r, omitted in lines:
        writer.writerow(
            [kind, *([_full(group)] if key else []), short(r.pred), short(r.target), short(omitted),
             *(_full(_stat(r, n)) for n in CSV_COLUMNS)]
        )  # fmt: skip


def _md(text: Any) -> str:
    return short(text).replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric_from: int) -> list[str]:
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(_md(cell) for cell in header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
    return lines


def _md_gate(gate: Gate) -> list[str]:
    if gate.passed:
        return ["**✅ smoothl1 gate passed**", ""]
    return ["**❌ smoothl1 gate failed**", "", *(f"- {_md(failure)}" for failure in gate.failures), ""]


def _change_rows(changes: Sequence[Change], verdict: Callable[[str], Any]) -> tuple[list[str], list[list[Any]]]:
    """The comparison's header and rows; with a `target` column where a pred is scored against several targets."""
    preds = [c.pred for c in changes]
    names = ["pred", "target"] if len(set(preds)) < len(preds) else ["pred"]
    rows = [
        [c.pred, *([c.target] if len(names) == 2 else []), c.baseline, c.current, c.change]
        + [_percent(c.relative_change), verdict(c.verdict)]
        for c in changes
    ]
    return [*names, "baseline", "current", "change", "change %", "verdict"], rows


def _md_changes(changes: Sequence[Change]) -> list[str]:
    header, rows = _change_rows(changes, _verdict)
    return _md_table(header, rows, numeric_from=header.index("baseline"))


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:+.3g}%"


def _verdict(verdict: str) -> str:
    return {
        "ok": "✅ ok",
        "noise": "✅ within numerical noise",
        "regressed": "❌ regressed",
        "missing": "❌ missing",
        "new": "🆕 new",
    }[verdict]


def render_markdown(report: Report, out: TextIO) -> None:
    """GitHub-flavoured markdown for a PR comment or the job summary: the gate's verdict first."""
    lines = _md_gate(report.gate) + [f"> ⚠️ {_md(warning)}" for warning in report.warnings]
    if report.warnings:
        lines.append("")
    if report.comparison is not None:
        lines += [f"Against the baseline (allowed increase {report.comparison.tolerance}):", ""]
        lines += _md_changes(report.comparison.changes) + [""]
    lines += [f"### {_title(report)}", "", _inputs(report), ""]
    rows = [[r.pred, r.target, *(_stat(r, n) for n in TABLE_COLUMNS)] for r in report.all_results]
    lines += _md_table(["pred", "target", *TABLE_COLUMNS], rows, numeric_from=2)
    uncertainty = _uncertainty_rows(report)
    if uncertainty:
        header = ["", *(r.pred for r in report.all_results)]
        lines += ["", *_md_table(header, [[label, *cells] for label, cells in uncertainty], numeric_from=1)]
    lines += _mermaid_charts(report)
    names = _names(report)
    if report.worst_rows:
        with_id = ["id"] if report.id_column else []
        header = ["row", *with_id, *names, "prediction", "actual", "loss"]
        worst = [
            [w.row, *([w.id] if report.id_column else []), *[w.pred, w.target][: len(names)], w.prediction, w.actual,
             w.loss]
            for w in report.worst_rows
        ]  # fmt: skip
        lines += ["", "Worst rows:", "", *_md_table(header, worst, numeric_from=len(header) - 3)]
    if report.groups:
        rows = [
            [g.group, *[g.result.pred, g.result.target][: len(names)], *(_stat(g.result, n) for n in GROUP_COLUMNS)]
            for g in report.groups
        ]
        lines += [
            "",
            f"By {_md(report.group_by)}:",
            "",
            *_md_table([report.group_by or "group", *names, *GROUP_COLUMNS], rows, 1 + len(names)),
        ]
    _write_capped(lines, out)


def render_markdown_compact(report: Report, out: TextIO) -> None:
    """The compact markdown of a PR comment (see compact_markdown), from the report itself, so that an
    infinite value reads inf (its JSON has null)."""
    comparison = report.comparison
    changes = None if comparison is None else (str(comparison.tolerance), comparison.changes)
    values = [(r.pred, r.target, r.value, r.summary.count) for r in report.all_results]
    _compact(report.gate, changes, values, report.signature, out)


def compact_markdown(report: dict[str, Any], out: TextIO) -> None:
    """A JSON report (a dict, as -o writes it) as a PR comment: the verdict, the comparison with the
    baseline (or the values, without one) and the signature, below 60,000 characters (GitHub takes
    65,536), pointing to the full report for the rest. JSON's null (NaN or an infinity) reads nan."""
    gate = Gate(report["gate"]["passed"], tuple(report["gate"]["failures"]))
    comparison = report.get("baseline")
    changes = None
    if comparison is not None:
        changes = (
            comparison["max_increase"],
            [
                Change(c["pred"], c.get("target"), c["baseline"], c["current"], c["verdict"])
                for c in comparison["results"]
            ],
        )
    results = [] if changes else report["results"] + ([report["overall"]] if report.get("overall") else [])
    values = [(r["pred"], r["target"], math.nan if r["value"] is None else r["value"], r["count"]) for r in results]
    _compact(gate, changes, values, report["signature"], out)


def _compact(
    gate: Gate,
    changes: tuple[str, Sequence[Change]] | None,
    values: list[tuple[str, str, float, int]],
    signature: str,
    out: TextIO,
) -> None:
    lines = _md_gate(gate)
    if changes is not None:
        lines += [f"Against the baseline (allowed increase {_md(changes[0])}):", "", *_md_changes(changes[1])]
    else:
        lines += _md_table(["pred", "target", "value", "count"], [list(v) for v in values], numeric_from=2)
    lines += ["", f"``{printable(signature)}`` · the full report (every statistic, worst rows, groups) "
              "is the JSON report (-o) and the job summary (-f markdown)."]  # fmt: skip
    _write_capped(lines, out, COMMENT_LIMIT, "GitHub's 65,536-character comment limit")


def _mermaid_charts(report: Report) -> list[str]:
    """Mermaid xychart-beta charts, which GitHub draws in job summaries and comments (the tables stay):
    the value per result (bars; the baseline's values as a line where every result has one), then the
    loss distribution of the first results over the histogram's log-spaced bins."""
    results = report.all_results[:CHART_RESULTS]
    if not all(math.isfinite(r.value) for r in results):
        return []
    baseline = {(c.pred, c.target): c.baseline for c in report.comparison.changes} if report.comparison else {}
    old = [baseline.get((r.pred, r.target)) for r in results]
    shown = "bars: current, line: baseline" if old and all(v is not None and math.isfinite(v) for v in old) else ""
    names = [f"{r.pred} ({r.target})" if len(_names(report)) > 1 else r.pred for r in results]
    lines = _xychart(f"{report.loss} {report.reduction} per pred" + (f" ({shown})" if shown else ""), names,
                     [r.value for r in results], [v or 0.0 for v in old] if shown else None)  # fmt: skip
    for name, result in zip(names, results[:TABLE_HISTOGRAMS], strict=False):
        bins = result.summary.distribution.histogram() if result.summary.distribution is not None else []
        labels = [short(low) if low == high else f"{low:.3g}–{high:.3g}" for low, high, _ in bins]
        lines += _xychart(f"loss distribution: {name}", labels, [weight for _, _, weight in bins], None) if bins else []
    return lines


def _xychart(title: str, labels: Sequence[str], bars: Sequence[float], line: Sequence[float] | None) -> list[str]:
    def text(value: str) -> str:
        return '"' + printable(value).replace('"', "'") + '"'

    def numbers(values: Sequence[float]) -> str:  # positional: Mermaid reads no exponents
        return "[" + ", ".join(np.format_float_positional(v, precision=6, unique=False, fractional=False, trim="-")
                               for v in values) + "]"  # fmt: skip

    chart = ["", "```mermaid", "xychart-beta", f"    title {text(title)}",
             f"    x-axis [{', '.join(text(label) for label in labels)}]", f"    bar {numbers(bars)}"]  # fmt: skip
    return chart + ([f"    line {numbers(line)}"] if line is not None else []) + ["```"]


def _names(report: Report) -> list[str]:
    """The columns naming a result in the worst rows and groups: `pred`, and `target` too where a pred
    is scored against several targets (`-t y1,y2 -p p,p`)."""
    preds = [result.pred for result in report.results]
    return ["pred", "target"] if len(set(preds)) < len(preds) else ["pred"]


def _write_capped(
    lines: list[str], out: TextIO, limit: int = MARKDOWN_LIMIT, why: str = "GitHub's 1 MiB summary limit"
) -> None:
    """Write lines, stopping with a note before `limit` bytes."""
    size = 0
    for index, line in enumerate(lines):
        size += len(line.encode()) + 1
        if size > limit:
            out.write(f"\n_… {len(lines) - index} more lines left out to stay under {why}; "
                      "see the JSON report (-o) for everything._\n")  # fmt: skip
            return
        out.write(line + "\n")


def render_table(report: Report, out: TextIO) -> None:
    """Rich tables for a terminal: the gate, results, the loss distribution and the worst rows. Every
    number at full precision (as the JSON has it): a table too wide for the terminal becomes blocks."""
    from rich.console import Console
    from rich.text import Text

    console = Console(file=out, highlight=False)
    console.print(Text(_title(report), style="bold"))  # a table's own title would wrap at the table's width
    console.print(Text(_summary(report)))
    results = report.all_results
    rows = [["target", *(r.target for r in results)], *([n, *(_stat(r, n) for r in results)] for n in TABLE_COLUMNS)]
    rows += [[label, *cells] for label, cells in _uncertainty_rows(report)]
    console.print(_view(console, None, ["pred", *(r.pred for r in results)], rows, by_column=True))
    names = _names(report)
    shown = report.results[:TABLE_HISTOGRAMS]
    bins = _bins(report, shown)
    counts = [_counts(result, bins) for result in shown]
    peak = max((float(c.max()) for c in counts if c.size), default=0.0) or 1.0  # one scale: bars compare
    for result, weights in zip(shown, counts, strict=True):
        console.print(_histogram(console, report, result, bins, weights, peak, with_target=len(names) > 1))
    if report.worst_rows:
        header = ["row", *(["id"] if report.id_column else []), *names, "prediction", "actual", "loss"]
        worst = [
            [row.row, *([row.id] if report.id_column else []), *[row.pred, row.target][: len(names)], row.prediction,
             row.actual, row.loss]
            for row in report.worst_rows
        ]  # fmt: skip
        console.print(_view(console, "worst rows", header, worst))
    if report.groups:
        console.print(_groups_table(console, report))
    if report.comparison is not None:
        console.print(_changes_table(console, report.comparison))
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {_rich(warning)}")
    _print_gate(console, report.gate)


def _summary(report: Report) -> str:
    """What was read, and what was left out of it (--nan-policy omit)."""
    omitted = max((r.omitted for r in report.all_results), default=0)
    return _inputs(report, f", {omitted} omitted (--nan-policy {report.nan_policy})" if omitted else "")


def _view(console: Any, title: str | None, header: list[Any], rows: list[list[Any]], by_column: bool = False) -> Any:
    """A table of rows (each record a column where `by_column`: the results side by side) if it fits the
    terminal, else one block per record (as psql's expanded display): the layout changes, never a digit."""
    from rich.measure import Measurement
    from rich.table import Table

    table = Table(title=None if title is None else _rich(title))
    for index, name in enumerate(header):
        numeric = index > 0 if by_column else any(isinstance(row[index], int | float) for row in rows)
        table.add_column(_rich(name), justify="right" if numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(_cell(cell) for cell in row))
    if Measurement.get(console, console.options.update_width(1 << 20), table).maximum <= console.width:
        return table
    records = [[header[i], *(row[i] for row in rows)] for i in range(1, len(header))] if by_column else rows
    fields = [header[0], *(row[0] for row in rows)] if by_column else header
    blocks = Table(title=table.title, show_header=False)
    blocks.add_column(no_wrap=True)
    blocks.add_column(overflow="fold")  # a name longer than the terminal goes on, on the next line
    for record in records:
        for index, (name, cell) in enumerate(zip(fields, record, strict=True)):
            blocks.add_row(_rich(name), _cell(cell), end_section=index == len(fields) - 1)
    return blocks


def _groups_table(console: Any, report: Report) -> Any:
    shown = report.groups[:TABLE_GROUPS]
    names = _names(report)
    rows = [
        [g.group, *[g.result.pred, g.result.target][: len(names)], *(_stat(g.result, n) for n in TABLE_GROUP_COLUMNS)]
        for g in shown
    ]
    view = _view(console, f"by {report.group_by}", [report.group_by or "group", *names, *TABLE_GROUP_COLUMNS], rows)
    if len(shown) < len(report.groups):
        view.caption = f"{len(shown)} of {len(report.groups)} rows shown; -f json or -f csv for all"
    return view


def _uncertainty_rows(report: Report) -> list[tuple[str, list[Any]]]:
    """With --ci: the interval of each value, and each pred against the first (paired)."""
    if report.results[0].ci is None:
        return []
    level = f"{report.results[0].ci['level'] * 100:g}%"
    results = report.all_results

    def field(part: str, key: str) -> list[Any]:
        return [(getattr(r, part) or {}).get(key) for r in results]

    return [
        (f"{level} ci low", field("ci", "low")),
        (f"{level} ci high", field("ci", "high")),
        (f"Δ vs {results[0].pred}", field("paired", "difference")),
        (f"Δ {level} ci low", field("paired", "low")),
        (f"Δ {level} ci high", field("paired", "high")),
        ("Δ p-value", field("paired", "p_value")),
    ][: 2 if len(report.results) == 1 else None]


def split_loss(report: Report) -> float | None:
    """The loss at |d| = beta (or delta), where the loss turns from quadratic to linear; None for L1."""
    if report.parameter == 0:
        return None
    return 0.5 * report.parameter * (report.parameter if report.loss == "huber" else 1.0)


def _points(result: Result) -> tuple[Any, Any]:
    """A result's losses (estimates once sketched, kept inside the exact [min, max]) and their weights."""
    if result.summary.distribution is None:
        return np.zeros(0), np.zeros(0)
    values, weights = result.summary.distribution.points()
    inside = np.fmin(np.fmax(values, result.summary.min), result.summary.max)  # a NaN bound (propagate): none
    return np.where(np.isfinite(values), inside, values), weights  # a new array: the sketch's values stay


def _bins(report: Report, results: Sequence[Result]) -> list[tuple[float, float]]:
    """The bins shared by the histograms of `results`, as (low, high): [low, high), the last one closed;
    (v, v) holds the value v alone (0, inf, or every loss when they are all equal)."""
    parts = [_points(r) for r in results]
    values = np.concatenate([np.zeros(0), *(v for v, _ in parts)])
    weights = np.concatenate([np.zeros(0), *(w for _, w in parts)])
    positive = (values > 0) & (values < math.inf) & (weights > 0)
    bins = [(0.0, 0.0)] if np.any((values == 0) & (weights > 0)) else []
    if positive.any():
        low, high = float(values[positive].min()), float(values[positive].max())
        if low == high:
            bins.append((low, high))
        else:
            ordered = np.argsort(values[positive], kind="stable")
            ranked, cumulative = values[positive][ordered], np.cumsum(weights[positive][ordered])
            floor = float(ranked[np.searchsorted(cumulative, 0.01 * cumulative[-1])])
            inner = np.geomspace(max(floor, low), high, HISTOGRAM_BINS + 1)[:-1]  # floor: the 1st percentile
            edges = {low, high, split_loss(report), *(float(f"{edge:.3g}") for edge in inner)}  # round for people
            bins += list(itertools.pairwise(sorted(e for e in edges if e is not None and low <= e <= high)))
    if np.any((values == math.inf) & (weights > 0)):
        bins.append((math.inf, math.inf))
    return bins


def _span(low: float, high: float) -> str:
    """A bin's edges, with all their digits where six would print two different numbers alike."""
    shown = short(low), short(high)
    return f"{low!r} – {high!r}" if shown[0] == shown[1] else f"{shown[0]} – {shown[1]}"


def _counts(result: Result, bins: list[tuple[float, float]]) -> Any:
    """The weight of `result`'s losses in each bin (NaN last, under --nan-policy propagate)."""
    values, weights = _points(result)
    counts = np.zeros(len(bins) + 1)
    for index, (low, high) in enumerate(bins):
        last = index == len(bins) - 1 or bins[index + 1][0] != high  # closed where no bin starts at `high`
        inside = (values == low) if low == high else (values >= low) & ((values <= high) if last else (values < high))
        counts[index] = float(weights[inside].sum())
    counts[-1] = result.summary.distribution.nan if result.summary.distribution is not None else 0.0
    return counts


def _histogram(
    console: Any, report: Report, result: Result, bins: list[tuple[float, float]], counts: Any, peak: float,
    with_target: bool,
) -> Any:  # fmt: skip
    """The losses of one result as horizontal bars over the report's shared bins, with exact counts."""
    from rich.table import Table

    name = f"{result.pred} (target {result.target})" if with_target else result.pred
    split = split_loss(report)
    rows = [
        (short(low) if low == high else _span(low, high), count, low < high == split)
        for (low, high), count in zip(bins, counts, strict=False)
    ]  # the last count, NaN's, has no bin
    if counts[-1]:
        rows.append(("nan", counts[-1], False))
    texts = [_count(count) for _, count, _ in rows]
    label_width = max((len(label) for label, _, _ in rows), default=0)
    width = max(8, min(BAR_WIDTH, console.width - label_width - max(map(len, texts), default=0) - 7))
    table = Table(title=f"loss distribution: {_rich(name)}", show_header=False, box=None, padding=(0, 1))
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    for (label, count, at_split), text in zip(rows, texts, strict=True):
        length = round(width * count / peak)
        bar = "█" * length if length else ("▏" if count else "[dim]·[/]")  # a small bin still shows; 0 reads 0
        table.add_row(label, f"[cyan]{bar}[/]", text)
        if at_split:
            table.add_row(f"[dim]|d| = {report.parameter_name}[/]", f"[dim]{'┄' * width}[/]", "")
            table.caption = f"above ┄: quadratic (|d| < {report.parameter_name}); below: linear"
    return table


def _count(weight: float) -> str:
    """A bin's count as an integer (a weighted one at full precision)."""
    return str(int(weight)) if float(weight).is_integer() else _full(float(weight))


def _changes_table(console: Any, comparison: Comparison) -> Any:
    from rich.text import Text

    style = {"ok": "green", "noise": "green", "regressed": "bold red", "missing": "bold red", "new": "yellow"}
    header, rows = _change_rows(comparison.changes, lambda verdict: Text(verdict, style[verdict]))
    return _view(console, f"against the baseline (allowed increase {comparison.tolerance})", header, rows)


def _print_gate(console: Any, gate: Gate) -> None:
    if gate.passed:
        if gate.checked:
            console.print("[bold green]gate passed[/]")
        return
    console.print("[bold red]gate failed[/]")
    for failure in gate.failures:
        console.print(f"  {printable(failure)}", markup=False)


RENDERERS: dict[str, Callable[[Report, TextIO], None]] = {
    "table": render_table,
    "json": render_json,
    "markdown": render_markdown,
    "markdown-compact": render_markdown_compact,
    "csv": render_csv,
    "quiet": render_quiet,
}


def compare_table(comparison: Comparison, out: TextIO) -> None:
    from rich.console import Console

    console = Console(file=out, highlight=False)
    console.print(_changes_table(console, comparison))
    _print_gate(console, comparison.gate)


def compare_markdown(comparison: Comparison, out: TextIO) -> None:
    lines = _md_gate(comparison.gate) + [f"Allowed increase: {comparison.tolerance}", ""]
    _write_capped(lines + _md_changes(comparison.changes), out)


def compare_json(comparison: Comparison, out: TextIO) -> None:
    _dump_json(strict_json_value(comparison.to_dict()), out)


COMPARISON_RENDERERS: dict[str, Callable[[Comparison, TextIO], None]] = {
    "table": compare_table,
    "json": compare_json,
    "markdown": compare_markdown,
}

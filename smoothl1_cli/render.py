"""RENDERERS: table | json | markdown | csv | quiet, each a function of a Report onto a text stream.

The only module that imports rich.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from typing import Any, TextIO

from smoothl1_cli.report import Report, Result, strict_json_value

STAT_COLUMNS = ("count", "value", "mean", "std", "min", "p50", "p90", "p99", "max", "linear_fraction", "mae", "rmse")
CSV_COLUMNS = ("count", "value", "mean", "sum", "std", "min", "p50", "p90", "p95", "p99", "max", "linear_fraction", "mae", "rmse")


def short(value: Any) -> str:
    """A number for people: six significant digits; NaN and infinities as nan, inf, -inf."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.6g}"
    return str(value)


def _stat(result: Result, name: str) -> Any:
    if name in result.summary.quantiles:
        return result.summary.quantiles[name]
    if name == "value":
        return result.value
    return getattr(result.summary, name)


def _title(report: Report) -> str:
    return f"{report.loss} ({report.parameter_name}={short(report.parameter)}, reduction={report.reduction})"


def render_json(report: Report, out: TextIO) -> None:
    """The report as strict JSON: NaN and infinities become null, floats keep every digit."""
    json.dump(strict_json_value(report.to_dict()), out, indent=2, ensure_ascii=False, allow_nan=False)
    out.write("\n")


def render_quiet(report: Report, out: TextIO) -> None:
    """Only the values at full precision; with several results, `pred<TAB>value` lines."""
    results = report.all_results
    for result in results:
        value = repr(result.value) if math.isfinite(result.value) else short(result.value)
        out.write(f"{result.pred}\t{value}\n" if len(results) > 1 else f"{value}\n")


def render_csv(report: Report, out: TextIO) -> None:
    """One line per result (and `overall`), every statistic at full precision."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["pred", "target", "omitted", *CSV_COLUMNS])
    for result in report.all_results:
        stats = [_stat(result, name) for name in CSV_COLUMNS]
        writer.writerow([result.pred, result.target, result.omitted, *(_full(v) for v in stats)])


def _full(value: Any) -> str:
    return repr(value) if isinstance(value, float) and math.isfinite(value) else short(value)


def render_markdown(report: Report, out: TextIO) -> None:
    """GitHub-flavoured markdown: the gate's verdict first, then results and worst rows."""
    lines = []
    if report.gate.failures:
        lines += ["**Gate: failed**", ""] + [f"- {failure}" for failure in report.gate.failures] + [""]
    lines += [f"### smoothl1: {_title(report)}", "", f"{report.rows} rows from {', '.join(i.path for i in report.inputs)}", ""]
    header = ["pred", "target", *STAT_COLUMNS]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---"] + ["---:"] * len(STAT_COLUMNS)) + "|"]
    for result in report.all_results:
        cells = [_md(result.pred), _md(result.target), *(short(_stat(result, name)) for name in STAT_COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    if report.worst_rows:
        lines += ["", "Worst rows:", "", "| row | pred | prediction | actual | loss |", "|---:|---|---:|---:|---:|"]
        for worst in report.worst_rows:
            row = f"{worst.row} ({_md(str(worst.id))})" if report.id_column else str(worst.row)
            lines.append(f"| {row} | {_md(worst.pred)} | {short(worst.prediction)} | {short(worst.actual)} | {short(worst.loss)} |")
    out.write("\n".join(lines) + "\n")


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_table(report: Report, out: TextIO) -> None:
    """Rich tables for a terminal: results, worst rows, and the gate's verdict."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, highlight=False)
    table = Table(title=_title(report), caption=f"{report.rows} rows from {', '.join(i.path for i in report.inputs)}")
    table.add_column("pred", style="bold")
    table.add_column("target")
    for name in STAT_COLUMNS:
        table.add_column(name.replace("linear_fraction", "linear"), justify="right")
    for result in report.all_results:
        table.add_row(result.pred, result.target, *(short(_stat(result, name)) for name in STAT_COLUMNS))
    console.print(table)
    if report.worst_rows:
        worst = Table(title="worst rows")
        for name in ["row", *(["id"] if report.id_column else []), "pred", "prediction", "actual", "loss"]:
            worst.add_column(name, justify="left" if name in ("id", "pred") else "right")
        for row in report.worst_rows:
            ident = [short(row.id)] if report.id_column else []
            worst.add_row(str(row.row), *ident, row.pred, short(row.prediction), short(row.actual), short(row.loss))
        console.print(worst)
    if report.gate.failures:
        console.print("[bold red]gate failed[/]")
        for failure in report.gate.failures:
            console.print(f"  {failure}", markup=False)


RENDERERS: dict[str, Callable[[Report, TextIO], None]] = {
    "table": render_table,
    "json": render_json,
    "markdown": render_markdown,
    "csv": render_csv,
    "quiet": render_quiet,
}

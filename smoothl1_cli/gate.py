"""Gates: a Report in, the texts of what failed out."""

from __future__ import annotations

import math

from smoothl1_cli.report import Gate, Report, format_number


def fail_above(report: Report, limit: float) -> Gate:
    """Fail every result (and `overall`) whose value exceeds `limit`; a NaN value cannot pass."""
    failures = tuple(
        f"{result.pred}: {result.value!r} > {format_number(limit)}"
        if not math.isnan(result.value)
        else f"{result.pred}: the value is NaN, so it cannot be checked against {format_number(limit)}"
        for result in report.all_results
        if math.isnan(result.value) or result.value > limit
    )
    return Gate(passed=not failures, failures=failures)

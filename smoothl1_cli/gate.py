"""Gates: reports in, verdicts and the texts of what failed out.

A baseline is a saved JSON report, so comparisons work on report dicts: the current run's
`Report.to_dict()` and the loaded baseline alike.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smoothl1_cli.errors import InputError
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


@dataclass(frozen=True)
class Tolerance:
    """How much worse a value may get: an absolute amount, or a percentage of the baseline."""

    amount: float
    relative: bool

    @staticmethod
    def parse(text: str) -> Tolerance:
        """'2%' -> 2 percent of the baseline value; '0.01' -> 0.01 absolute."""
        stripped = text.strip()
        relative = stripped.endswith("%")
        try:
            amount = float(stripped.removesuffix("%"))
        except ValueError:
            raise InputError(
                f"--max-increase takes a number or a percentage such as 0.01 or 2%, not {text!r}"
            ) from None
        if not (amount >= 0 and math.isfinite(amount)):
            raise InputError(f"--max-increase must be a finite amount of 0 or more, not {text!r}")
        return Tolerance(amount / 100 if relative else amount, relative)

    def __str__(self) -> str:
        return f"{format_number(self.amount * 100)}%" if self.relative else format_number(self.amount)

    def allowed(self, baseline: float) -> float:
        """The largest increase over `baseline` that still passes."""
        return self.amount * abs(baseline) if self.relative else self.amount


@dataclass(frozen=True)
class Change:
    """One result's old and new value and the verdict: ok, regressed, missing (from current), new."""

    pred: str
    baseline: float | None
    current: float | None
    verdict: str

    @property
    def change(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline

    @property
    def relative_change(self) -> float | None:
        change = self.change
        if change is None or self.baseline is None:
            return None
        if self.baseline == 0:
            return 0.0 if change == 0 else math.copysign(math.inf, change)
        return change / abs(self.baseline)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pred": self.pred,
            "baseline": self.baseline,
            "current": self.current,
            "change": self.change,
            "relative_change": self.relative_change,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class Comparison:
    """Every result of two reports side by side, and the gate they give."""

    baseline_signature: str
    current_signature: str
    tolerance: Tolerance
    changes: tuple[Change, ...]

    @property
    def gate(self) -> Gate:
        failures = tuple(_failure(c, self.tolerance) for c in self.changes if c.verdict in ("regressed", "missing"))
        return Gate(passed=not failures, failures=failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "baseline": self.baseline_signature,
            "current": self.current_signature,
            "max_increase": str(self.tolerance),
            "results": [c.to_dict() for c in self.changes],
            "gate": self.gate.to_dict(),
        }


def _failure(change: Change, tolerance: Tolerance) -> str:
    if change.verdict == "missing":
        return f"{change.pred}: in the baseline but not in the current report"
    if change.current is None or change.baseline is None or math.isnan(change.current):
        return f"{change.pred}: the current value is NaN, so it cannot be checked against the baseline"
    relative = change.relative_change
    percent = "" if relative is None else f", {relative * 100:+.4g}%"
    return (
        f"{change.pred}: {change.baseline!r} -> {change.current!r} "
        f"(+{format_number(change.current - change.baseline)}{percent}) exceeds the allowed increase of {tolerance}"
    )


def load_report(path: str) -> dict[str, Any]:
    """A saved JSON report, checked to be one of ours."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such report file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the report ({exc})") from None
    try:
        report = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{path}: not a JSON report ({exc})") from None
    results = report.get("results") if isinstance(report, dict) else None
    overall = [report["overall"]] if isinstance(report, dict) and report.get("overall") is not None else []
    if not isinstance(report, dict) or not isinstance(report.get("signature"), str) or not isinstance(results, list):
        raise InputError(f"{path}: not a smoothl1 JSON report (no signature or results); make one with -o FILE")
    for result in results + overall:
        value = result.get("value") if isinstance(result, dict) else None
        if (
            not (isinstance(result, dict) and isinstance(result.get("pred"), str))
            or isinstance(value, bool)
            or not (value is None or isinstance(value, int | float))
            or (isinstance(value, int) and abs(value) > 2**1023)  # beyond float64
        ):
            raise InputError(f"{path}: a result without a 'pred' name and a numeric 'value': {str(result)[:80]}")
    return report


def _settings(signature: str) -> str:
    """The signature without the tool's version: reports of two versions still compare."""
    return "|".join(part for part in signature.split("|") if not part.startswith("v:"))


def _values(report: dict[str, Any]) -> dict[str, float]:
    results = list(report["results"]) + ([report["overall"]] if report.get("overall") else [])
    return {r["pred"]: math.nan if r.get("value") is None else float(r["value"]) for r in results}


def compare(baseline: dict[str, Any], current: dict[str, Any], tolerance: Tolerance, baseline_label: str) -> Comparison:
    """Each current result against the same pred in the baseline; refuses reports of other settings."""
    if _settings(baseline["signature"]) != _settings(current["signature"]):
        raise InputError(
            f"{baseline_label} was made with other settings, so its values do not compare: "
            f"baseline {baseline['signature']!r}, current {current['signature']!r}"
        )
    old, new = _values(baseline), _values(current)
    changes = []
    for pred, value in new.items():
        if pred not in old:
            changes.append(Change(pred, None, value, "new"))
            continue
        regressed = math.isnan(value) or value - old[pred] > tolerance.allowed(old[pred])
        changes.append(Change(pred, old[pred], value, "regressed" if regressed else "ok"))
    changes += [Change(pred, value, None, "missing") for pred, value in old.items() if pred not in new]
    return Comparison(baseline["signature"], current["signature"], tolerance, tuple(changes))

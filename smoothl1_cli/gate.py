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
from smoothl1_cli.report import Gate, Report, format_number, result_names

# Relative to the baseline value: an increase this small is rounding (another --chunk-rows, another
# summation order; README: results agree to a relative 1e-12), not a regression.
NOISE = 1e-12


def check_limit(limit: float) -> None:
    """--fail-above takes a number: no value is ever above NaN, so that gate would always pass."""
    if math.isnan(limit):
        raise InputError("--fail-above must be a number, not nan: no value is above NaN, so the gate could never fail")


def fail_above(report: Report, limit: float) -> Gate:
    """Fail every result (and `overall`) whose value exceeds `limit`; a NaN value cannot pass."""
    results = report.all_results
    failures = tuple(
        f"{name}: {result.value!r} > {format_number(limit)}"
        if not math.isnan(result.value)
        else f"{name}: the value is NaN, so it cannot be checked against {format_number(limit)}"
        for name, result in zip(result_names([(r.pred, r.target) for r in results]), results, strict=True)
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
    """One result's old and new value and the verdict: ok, noise (an increase within rounding), regressed,
    missing (from current), new."""

    pred: str
    target: str | None
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
            "target": self.target,
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
        names = result_names([(c.pred, c.target) for c in self.changes])
        failures = tuple(
            _failure(c, name, self.tolerance)
            for name, c in zip(names, self.changes, strict=True)
            if c.verdict in ("regressed", "missing")
        )
        return Gate(passed=not failures, failures=failures, checked=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "baseline": self.baseline_signature,
            "current": self.current_signature,
            "max_increase": str(self.tolerance),
            "results": [c.to_dict() for c in self.changes],
            "gate": self.gate.to_dict(),
        }


def _failure(change: Change, name: str, tolerance: Tolerance) -> str:
    if change.verdict == "missing":
        return f"{name}: in the baseline but not in the current report"
    if change.baseline is None or math.isnan(change.baseline):
        return f"{name}: the baseline value is null (NaN or infinite), so nothing can be checked against it"
    if change.current is None or math.isnan(change.current):
        return f"{name}: the current value is NaN, so it cannot be checked against the baseline"
    relative = change.relative_change
    percent = "" if relative is None else f", {relative * 100:+.4g}%"
    return (
        f"{name}: {change.baseline!r} -> {change.current!r} "
        f"(+{format_number(change.current - change.baseline)}{percent}) exceeds the allowed increase of {tolerance}"
    )


def load_report(path: str) -> dict[str, Any]:
    """A saved JSON report, checked against the report's JSON Schema."""
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
    except RecursionError:
        raise InputError(f"{path}: not a smoothl1 JSON report (nested too deeply to read)") from None
    from smoothl1_cli.schema import first_error

    problem = first_error(report)
    if problem is not None:
        raise InputError(f"{path}: not a smoothl1 JSON report ({problem}); make one with -o FILE (see smoothl1 schema)")
    checked: dict[str, Any] = report
    return checked


def _settings(signature: str) -> str:
    """The signature without the tool's version: reports of two versions still compare."""
    return "|".join(part for part in signature.split("|") if not part.startswith("v:"))


def _values(report: dict[str, Any], label: str) -> dict[tuple[str, str | None], float]:
    """Each result's value by (pred, target): one pred scored against several targets stays apart."""
    values: dict[tuple[str, str | None], float] = {}
    for result in list(report["results"]) + ([report["overall"]] if report.get("overall") else []):
        key = (result["pred"], result.get("target"))
        if key in values:
            raise InputError(
                f"{label}: two results of pred {key[0]!r} against target {key[1]!r}; "
                "results are matched by pred and target, so these cannot be told apart"
            )
        values[key] = math.nan if result.get("value") is None else float(result["value"])
    return values


def _verdict(old: float, new: float, tolerance: Tolerance) -> str:
    if math.isnan(old) or math.isnan(new):
        return "regressed"
    increase = new - old
    if increase <= tolerance.allowed(old):
        return "ok"
    return "noise" if increase <= NOISE * abs(old) else "regressed"


def compare(
    baseline: dict[str, Any],
    current: dict[str, Any],
    tolerance: Tolerance,
    baseline_label: str,
    current_label: str = "the current report",
) -> Comparison:
    """Each current result against the same (pred, target) in the baseline; refuses reports of other
    settings and results that cannot be told apart."""
    if _settings(baseline["signature"]) != _settings(current["signature"]):
        raise InputError(
            f"{baseline_label} was made with other settings, so its values do not compare: "
            f"baseline {baseline['signature']!r}, current {current['signature']!r}"
        )
    old, new = _values(baseline, baseline_label), _values(current, current_label)
    changes = []
    for (pred, target), value in new.items():
        if (pred, target) not in old:
            changes.append(Change(pred, target, None, value, "new"))
            continue
        before = old[pred, target]
        changes.append(Change(pred, target, before, value, _verdict(before, value, tolerance)))
    changes += [
        Change(pred, target, value, None, "missing")
        for (pred, target), value in old.items()
        if (pred, target) not in new
    ]
    return Comparison(baseline["signature"], current["signature"], tolerance, tuple(changes))

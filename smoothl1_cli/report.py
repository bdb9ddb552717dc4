"""The report: one dataclass tree, rendered by `render`, compared by `gate`, returned by the API."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from smoothl1_cli import __version__
from smoothl1_cli.stats import Summary

if TYPE_CHECKING:
    import pandas as pd

    from smoothl1_cli.gate import Comparison

SCHEMA_VERSION = 1


def result_names(pairs: Sequence[tuple[str, str | None]]) -> list[str]:
    """Each (pred, target) as people read it: the pred, with its target where the pred is scored
    against several targets (`-t y1,y2 -p p,p`), so that two results never share a name."""
    times = Counter(pred for pred, _ in pairs)
    return [f"{pred} (target {target})" if times[pred] > 1 else pred for pred, target in pairs]


def format_number(value: float) -> str:
    """Shortest round-trip text of a number, without a trailing '.0' (1.0 -> '1', 0.1 -> '0.1')."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True, slots=True)
class InputInfo:
    path: str
    format: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "rows": self.rows}


@dataclass(frozen=True, slots=True)
class Result:
    """One evaluated pairing of a prediction column with a target column (or `overall`)."""

    pred: str
    target: str
    omitted: int
    value: float
    summary: Summary
    ci: dict[str, Any] | None = None  # --ci: the bootstrap interval of `value`
    paired: dict[str, Any] | None = None  # --ci with several preds: this one against the first

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        out: dict[str, Any] = {
            "pred": self.pred,
            "target": self.target,
            "count": s.count,
            "omitted": self.omitted,
            "value": self.value,
            "mean": s.mean,
            "sum": s.sum,
            "std": s.std,
            "min": s.min,
            "max": s.max,
            "quantiles": dict(s.quantiles),
            "linear_fraction": s.linear_fraction,
            "mae": s.mae,
            "rmse": s.rmse,
        }
        if s.weight != s.count:
            out["weight_sum"] = s.weight
        if self.ci is not None:
            out["ci"] = self.ci
        if self.paired is not None:
            out["paired"] = self.paired
        return out


@dataclass(frozen=True, slots=True)
class GroupResult:
    """One pred's result within one value of the --group-by column (quantiles are not kept per group)."""

    group: Any
    result: Result

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON values already (NaN and infinities as None): a report's groups are not copied again."""
        out = {"group": strict_json_value(self.group)}
        out.update(
            (k, strict_json_value(v)) for k, v in self.result.to_dict().items() if k not in ("omitted", "quantiles")
        )
        return out


@dataclass(frozen=True, slots=True)
class WorstRow:
    row: int
    pred: str
    target: str
    prediction: float
    actual: float
    loss: float
    id: Any = None

    def to_dict(self, with_id: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row}
        if with_id:
            out["id"] = self.id
        out.update(pred=self.pred, target=self.target, prediction=self.prediction, actual=self.actual, loss=self.loss)
        return out


@dataclass(frozen=True, slots=True)
class Gate:
    passed: bool = True
    failures: tuple[str, ...] = ()
    checked: bool = False  # a gate was asked for (--fail-above, --baseline, compare): its pass is news

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failures": list(self.failures)}


@dataclass(frozen=True, slots=True)
class Report:
    """Everything one evaluation found, with the settings its values depend on."""

    loss: str
    parameter: float  # beta for smooth_l1, delta for huber
    reduction: str
    nan_policy: str
    multioutput: str
    weight: str | None
    id_column: str | None
    inputs: tuple[InputInfo, ...]
    rows: int
    results: tuple[Result, ...]
    overall: Result | None = None
    group_by: str | None = None
    groups: tuple[GroupResult, ...] = ()
    worst_rows: tuple[WorstRow, ...] = ()
    gate: Gate = field(default_factory=Gate)
    comparison: Comparison | None = None  # against --baseline
    warnings: tuple[str, ...] = ()  # what the values cannot show (float64 overflow, rounded integers)
    engine: str = "local"  # where the pieces were reduced: the one key that differs between engines
    version: str = __version__

    @property
    def parameter_name(self) -> str:
        return "delta" if self.loss == "huber" else "beta"

    @property
    def signature(self) -> str:
        """One line pinning everything a value depends on; reports compare only when these agree."""
        return "|".join(
            [
                self.loss,
                f"{self.parameter_name}:{format_number(self.parameter)}",
                f"reduction:{self.reduction}",
                f"weights:{self.weight or 'none'}",
                f"nan:{self.nan_policy}",
                f"multioutput:{self.multioutput}",
                f"v:{self.version}",
            ]
        )

    @property
    def all_results(self) -> tuple[Result, ...]:
        """The results, then `overall` where there is one: everything a gate checks."""
        return self.results + ((self.overall,) if self.overall else ())

    def with_gate(self, gate: Gate, comparison: Comparison | None = None) -> Report:
        """This report with `gate` added to its gate (failures of both count)."""
        merged = Gate(self.gate.passed and gate.passed, self.gate.failures + gate.failures, checked=True)
        return replace(self, gate=merged, comparison=comparison or self.comparison)

    def to_dict(self, groups: bool = True) -> dict[str, Any]:
        """The JSON report of SPEC.md, equal to the command's JSON output: keys in a fixed order,
        NaN and infinities as None (strict JSON's null). `groups=False` leaves the groups list empty,
        for a writer that makes each group's dict as it writes it."""
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "version": self.version,
            "signature": self.signature,
            "loss": self.loss,
            self.parameter_name: self.parameter,
            "reduction": self.reduction,
            "nan_policy": self.nan_policy,
            "multioutput": self.multioutput,
            "weight": self.weight,
            "engine": self.engine,
            "inputs": [i.to_dict() for i in self.inputs],
            "rows": self.rows,
            "results": [r.to_dict() for r in self.results],
        }
        if self.overall is not None:
            out["overall"] = self.overall.to_dict()
        if self.group_by is not None:
            out["group_by"] = self.group_by
            out["groups"] = []  # its place among the keys; the groups, strict already, come in below
        out["worst_rows"] = [w.to_dict(self.id_column is not None) for w in self.worst_rows]
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.comparison is not None:
            out["baseline"] = {
                k: v for k, v in self.comparison.to_dict().items() if k not in ("schema_version", "gate")
            }
        out["gate"] = self.gate.to_dict()
        strict: dict[str, Any] = strict_json_value(out)
        if self.group_by is not None and groups:
            strict["groups"] = [g.to_dict() for g in self.groups]
        return strict

    def to_frame(self, kind: str = "results") -> pd.DataFrame:
        """The report as a flat pandas table (NaN stays NaN here): `results`, a row per result (and
        `overall`) with p50..p99 and ci_*/paired_* columns; `groups`, a row per group and pred;
        `worst_rows`, a row per worst row."""
        import pandas as pd

        if kind == "results":
            rows = [_flat(result.to_dict()) for result in self.all_results]
        elif kind == "groups":
            rows = [
                {"group": g.group, **_flat(g.result.to_dict(), leave=("omitted", "quantiles"))} for g in self.groups
            ]
        elif kind == "worst_rows":
            rows = [w.to_dict(self.id_column is not None) for w in self.worst_rows]
        else:
            raise ValueError(f"to_frame() makes 'results', 'groups' or 'worst_rows', not {kind!r}")
        return pd.DataFrame(rows)


def _flat(result: dict[str, Any], leave: tuple[str, ...] = ()) -> dict[str, Any]:
    """A result's dict with no dict-valued entries: quantiles as p50..p99, ci and paired as ci_low, paired_p_value..."""
    flat = {key: value for key, value in result.items() if key not in leave and not isinstance(value, dict)}
    flat.update(result["quantiles"] if "quantiles" not in leave else {})
    for part in ("ci", "paired"):
        flat.update((f"{part}_{key}", value) for key, value in result.get(part, {}).items())
    return flat


def strict_json_value(value: Any) -> Any:
    """The value with every NaN and infinity replaced by None, as strict JSON requires."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json_value(v) for v in value]
    return value

"""Extreme values: the mathematically right number, or the number reported as what it is.

The reference here is exact: every loss and aggregate is computed in rational arithmetic
(`fractions.Fraction` of the float64 inputs) and rounded once to float64; a value beyond
float64's range is inf. So the tests say which answers are *right*, not which ones PyTorch's
float64 gives (the README documents where smoothl1 deliberately departs from PyTorch to be right:
beta < 1 or beta > 1e150).

Covered: pred - target overflowing to inf; sums, squares and weight products that overflow
although the statistic is finite; beta and delta from subnormal to 1e300; float16 and float32
Parquet columns; integer columns beyond 2**53 (Parquet int64 and uint64, CSV, JSON Lines);
all-equal columns; a single row.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import invoke, run_command

F = Fraction


def exact_loss(pred: float, target: float, parameter: float = 1.0, loss: str = "smooth_l1") -> Fraction:
    """The loss of the float64 inputs in exact rational arithmetic."""
    d = abs(F(pred) - F(target))
    p = F(parameter)
    if loss == "huber":
        return d * d / 2 if d < p else p * (d - p / 2)
    if p == 0:
        return d
    return d * d / (2 * p) if d < p else d - p / 2


def rounded(value: Fraction) -> float:
    """Correctly rounded to float64; beyond its range, inf (what 'reported as what it is' means)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def exact_stats(pred: Sequence[float], target: Sequence[float], parameter: float = 1.0, loss: str = "smooth_l1",
                weight: Sequence[float] | None = None) -> dict[str, float]:  # fmt: skip
    """value (mean), sum, std (population), mae, rmse: exact, rounded once. std and rmse take a
    square root of an exact rational: rounded to float first, then math.sqrt (error < 1 ulp, and
    the tests compare at 1e-12)."""
    losses = [exact_loss(p, t, parameter, loss) for p, t in zip(pred, target, strict=True)]
    diffs = [abs(F(p) - F(t)) for p, t in zip(pred, target, strict=True)]
    w = [F(1)] * len(losses) if weight is None else [F(x) for x in weight]
    total = sum(w)
    mean = sum(wi * li for wi, li in zip(w, losses, strict=True)) / total
    variance = sum(wi * (li - mean) ** 2 for wi, li in zip(w, losses, strict=True)) / total
    mean_square = sum(wi * d * d for wi, d in zip(w, diffs, strict=True)) / total
    return {
        "value": rounded(mean),
        "sum": rounded(sum(wi * li for wi, li in zip(w, losses, strict=True))),
        "std": _sqrt(variance),
        "mae": rounded(sum(wi * d for wi, d in zip(w, diffs, strict=True)) / total),
        "rmse": _sqrt(mean_square),
    }


def _sqrt(value: Fraction) -> float:
    """sqrt of an exact rational without overflowing on the way (value may exceed float64)."""
    if value == 0:
        return 0.0
    shift = (value.numerator.bit_length() - value.denominator.bit_length()) // 2
    scaled = value / F(4) ** shift  # sqrt(value) = 2**shift * sqrt(scaled)
    return rounded(F(math.sqrt(float(scaled))) * F(2) ** shift)


def close(actual: float | None, expected: float, rel: float = 1e-12) -> bool:
    """JSON's null stands for inf here (the run's warnings say which); NaN is never right."""
    if actual is None:
        return math.isinf(expected)
    return math.isclose(actual, expected, rel_tol=rel, abs_tol=1e-320)


def write_csv(path: Path, columns: dict[str, Sequence[Any]]) -> Path:
    """Exact text: floats by repr (round-trips), integers as written."""
    names = list(columns)
    lines = [",".join(names)]
    for row in zip(*columns.values(), strict=True):
        lines.append(",".join(repr(v) if isinstance(v, float) else str(v) for v in row))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_parquet(path: Path, columns: dict[str, pa.Array]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def evaluate(path: Path, *args: Any) -> tuple[dict[str, Any], list[str]]:
    """The JSON report of an in-process run (exit 0 asserted) and the Python warnings it raised
    (recorded, not turned into errors, so a value test fails only on its value: stray warnings on
    stderr have a test of their own)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = invoke(["eval", path, *args, "-f", "json"])
    assert result.exit_code == 0, (result.exit_code, result.stderr)
    return json.loads(result.stdout), [str(w.message) for w in caught]


def per_row_losses(path: Path, tmp_path: Path, *args: Any) -> list[float]:
    out = tmp_path / "losses.parquet"
    evaluate(path, *args, "--per-row", out)
    return pq.read_table(out).column("loss").to_pylist()


def check_stats(
    result: dict[str, Any], expected: dict[str, float], names: Sequence[str] = ("value", "sum", "std", "mae", "rmse")
) -> None:
    wrong = {name: (result[name], expected[name]) for name in names if not close(result[name], expected[name])}
    assert not wrong, f"(reported, exact): {wrong}"


# --- pred - target beyond float64 -------------------------------------------------------------


def test_a_difference_that_overflows_is_inf_and_named_as_such(tmp_path, smoothl1_command) -> None:
    """pred = 1e308, target = -1e308: d = 2e308 is beyond float64, so the loss is inf. JSON has no
    inf: the value is null, and the report's warnings (and stderr) say it is an overflow."""
    path = write_csv(tmp_path / "o.csv", {"y": [-1e308], "pred": [1e308]})
    assert rounded(exact_loss(1e308, -1e308)) == math.inf
    report, _ = evaluate(path, "-t", "y")
    result = report["results"][0]
    assert result["value"] is None
    assert result["sum"] is None
    assert result["max"] is None
    assert result["count"] == 1
    assert result["linear_fraction"] == 1.0
    assert report["worst_rows"][0]["loss"] is None
    assert any("overflows float64 to inf" in warning and "row 0" in warning for warning in report["warnings"])
    quiet = run_command(smoothl1_command, "eval", path, "-t", "y", "-q")
    assert (quiet.returncode, quiet.stdout) == (0, b"inf\n")
    assert b"overflows float64 to inf" in quiet.stderr
    table = run_command(smoothl1_command, "eval", path, "-t", "y", "-f", "table")
    assert table.returncode == 0
    assert " inf " in table.stdout.decode()


def test_one_overflowing_row_makes_the_mean_inf_and_is_counted(tmp_path) -> None:
    path = write_csv(tmp_path / "o.csv", {"y": [-1e308, 0.0, 1.0, -1e308], "pred": [1e308, 0.5, 1.0, 1e308]})
    report, _ = evaluate(path, "-t", "y")
    assert report["results"][0]["value"] is None
    assert report["results"][0]["min"] == 0.0
    assert any("in 2 rows (first: row 0)" in warning for warning in report["warnings"])


def test_the_mean_of_finite_losses_whose_sum_overflows_is_finite(tmp_path) -> None:
    """Two losses of 1.5e308: their mean is 1.5e308 (no larger than their max). Found: null (inf),
    a mean above the max; fixed (sums kept scaled)."""
    pred, target = [1.5e308, 1.5e308], [0.0, 0.0]
    path = write_csv(tmp_path / "big.csv", {"y": target, "pred": pred})
    report, _ = evaluate(path, "-t", "y")
    check_stats(report["results"][0], exact_stats(pred, target), ("value", "std", "mae"))


def test_a_sum_that_overflows_is_named_as_such(tmp_path) -> None:
    """The sum of two 1.5e308 losses really is beyond float64: null in JSON is right, but then the
    report must say it is an overflow (as it does for one row's overflow), not leave a bare null
    that reads like NaN. Found: a bare null; fixed."""
    path = write_csv(tmp_path / "big.csv", {"y": [0.0, 0.0], "pred": [1.5e308, 1.5e308]})
    report, _ = evaluate(path, "-t", "y", "--reduction", "sum")
    assert report["results"][0]["value"] is None
    assert any("overflow" in warning for warning in report.get("warnings", []))


def test_std_and_rmse_of_large_finite_differences(tmp_path) -> None:
    """|d| = 1e160 and 3e160: every statistic is finite (std 1e160, rmse 2.236e160), but their
    squares are beyond float64. Found: null for both; fixed."""
    pred, target = [1e160, 3e160], [0.0, 0.0]
    path = write_csv(tmp_path / "wide.csv", {"y": target, "pred": pred})
    report, _ = evaluate(path, "-t", "y")
    check_stats(report["results"][0], exact_stats(pred, target))


def test_statistics_just_below_the_square_overflow_are_right(tmp_path) -> None:
    """|d| up to 1e150: d**2 = 1e300 still fits, so every statistic must be exact."""
    pred, target = [1e150, -3e150, 2.5e149], [0.0, 1e149, -7e148]
    path = write_csv(tmp_path / "ok.csv", {"y": target, "pred": pred})
    report, _ = evaluate(path, "-t", "y")
    check_stats(report["results"][0], exact_stats(pred, target))


# --- beta and delta from subnormal to 1e300 ------------------------------------------------------

DIFFS = [0.0, 5e-324, 1e-310, 1e-200, 1e-160, 1e-100, 1e-30, 0.5, 1.0, 3.0, 1e30, 1e100, 1e150, 1e200, 1e300, 1.7e308]


@pytest.mark.parametrize("beta", [1e-320, 1e-300, 1e-160, 1e-100, 0.5, 1.0, 1e150, 1e151, 1e300, 1.7e308])
def test_smooth_l1_with_extreme_betas_is_exact_per_row(tmp_path, beta) -> None:
    """Every row's loss within a few ulps of the exact value (inf where the exact value is beyond
    float64: never a finite wrong number, never NaN)."""
    path = write_csv(tmp_path / "d.csv", {"y": [0.0] * len(DIFFS), "pred": DIFFS})
    losses = per_row_losses(path, tmp_path, "-t", "y", "--beta", repr(beta))
    wrong = {
        d: (got, rounded(exact_loss(d, 0.0, beta)))
        for d, got in zip(DIFFS, losses, strict=True)
        if not close(got, rounded(exact_loss(d, 0.0, beta)), rel=1e-15)
    }
    assert not wrong, f"d: (reported, exact) {wrong}"


@pytest.mark.parametrize("delta", [1e-300, 1e-100, 0.5, 1e150, 1e300])
def test_huber_with_extreme_deltas_is_exact_per_row(tmp_path, delta) -> None:
    path = write_csv(tmp_path / "d.csv", {"y": [0.0] * len(DIFFS), "pred": DIFFS})
    losses = per_row_losses(path, tmp_path, "-t", "y", "--loss", "huber", "--delta", repr(delta))
    wrong = {
        d: (got, rounded(exact_loss(d, 0.0, delta, "huber")))
        for d, got in zip(DIFFS, losses, strict=True)
        if not (math.isinf(rounded(exact_loss(d, 0.0, delta, "huber"))) and got == math.inf)
        and not close(got, rounded(exact_loss(d, 0.0, delta, "huber")), rel=1e-15)
    }
    assert not wrong, f"d: (reported, exact) {wrong}"


def test_huber_overflowing_for_a_huge_delta_is_inf_and_named(tmp_path) -> None:
    """delta = 1e300, |d| = 1e200: the loss is 5e399, beyond float64: inf, with the warning."""
    path = write_csv(tmp_path / "h.csv", {"y": [0.0], "pred": [1e200]})
    report, _ = evaluate(path, "-t", "y", "--loss", "huber", "--delta", "1e300")
    assert report["results"][0]["value"] is None
    assert any("overflows float64 to inf" in warning for warning in report["warnings"])


# --- narrow float inputs -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_narrow_float_columns_are_widened_exactly_and_computed_in_float64(tmp_path, dtype) -> None:
    """float32 3e38 - (-3e38) overflows float32 but not float64: the loss is finite. Every value is
    widened exactly (float32(0.1) is 0.100000001490116...), subnormals included."""
    info = np.finfo(dtype)
    pred = np.array([info.max, info.smallest_subnormal, 0.1, 1.0, -0.0], dtype=dtype)
    target = np.array([-info.max, 0.0, 0.2, 1.0 + info.eps, 0.0], dtype=dtype)
    path = write_parquet(tmp_path / "narrow.parquet", {"y": pa.array(target), "pred": pa.array(pred)})
    wide_pred, wide_target = [float(v) for v in pred], [float(v) for v in target]
    losses = per_row_losses(path, tmp_path, "-t", "y")
    assert losses == [rounded(exact_loss(p, t)) for p, t in zip(wide_pred, wide_target, strict=True)]
    assert math.isfinite(losses[0])
    report, _ = evaluate(path, "-t", "y")
    check_stats(report["results"][0], exact_stats(wide_pred, wide_target))


# --- integers beyond 2**53 ---------------------------------------------------------------------

BIG = [2**53 + 1, 2**62 + 1, -(2**63), 2**63 - 1, 3]
BIG_PRED = [2**53 + 3, 2**62 - 1, -(2**63) + 1025, 2**63 - 2, 4]


def float64_of(values: Sequence[int]) -> list[float]:
    """What the README says happens: each integer is rounded to the nearest float64 (as PyTorch's
    float64 would hold it), and the losses are of the rounded values."""
    return [float(v) for v in values]


def test_int64_beyond_2_53_in_parquet_rounds_to_float64_and_says_so(tmp_path) -> None:
    path = write_parquet(
        tmp_path / "ints.parquet", {"y": pa.array(BIG, pa.int64()), "pred": pa.array(BIG_PRED, pa.int64())}
    )
    report, _ = evaluate(path, "-t", "y")
    check_stats(report["results"][0], exact_stats(float64_of(BIG_PRED), float64_of(BIG)))
    assert any("2**53" in warning and "'y'" in warning for warning in report["warnings"])
    losses = per_row_losses(path, tmp_path, "-t", "y")
    assert losses == [rounded(exact_loss(p, t)) for p, t in zip(float64_of(BIG_PRED), float64_of(BIG), strict=True)]


def test_uint64_beyond_2_63_in_parquet(tmp_path) -> None:
    target, pred = [2**64 - 1, 0], [2**63, 1]
    path = write_parquet(
        tmp_path / "u.parquet", {"y": pa.array(target, pa.uint64()), "pred": pa.array(pred, pa.uint64())}
    )
    report, _ = evaluate(path, "-t", "y")
    check_stats(report["results"][0], exact_stats(float64_of(pred), float64_of(target)))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_integers_beyond_2_53_in_text_round_like_any_decimal(tmp_path, fmt) -> None:
    """In text a long integer is parsed to the nearest float64, with the same value as its Parquet
    copy, and the same warning (a decimal such as 0.1 is rounded too, but written as an integer the
    user may expect it exact)."""
    target, pred = BIG + [10**25], BIG_PRED + [10**25 + 1]
    if fmt == "csv":
        path = write_csv(tmp_path / "ints.csv", {"y": target, "pred": pred})
    else:
        path = tmp_path / "ints.jsonl"
        path.write_text("".join(f'{{"y": {t}, "pred": {p}}}\n' for t, p in zip(target, pred, strict=True)))
    report, _ = evaluate(path, "-t", "y", "-p", "pred")
    check_stats(report["results"][0], exact_stats(float64_of(pred), float64_of(target)))
    assert any("2**53" in warning and "'y'" in warning for warning in report["warnings"])


# --- degenerate shapes -------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [7, 65536])
def test_all_equal_columns_give_exact_zeros(tmp_path, chunk) -> None:
    path = write_csv(tmp_path / "eq.csv", {"y": [2.5] * 5000, "pred": [2.5] * 5000})
    result = evaluate(path, "-t", "y", "--chunk-rows", chunk)[0]["results"][0]
    for name in ("value", "mean", "sum", "std", "min", "max", "mae", "rmse", "linear_fraction"):
        assert result[name] == 0.0, name
    assert set(result["quantiles"].values()) == {0.0}


@pytest.mark.parametrize(
    ("chunk", "loss_of_each"),
    [
        *((chunk, loss) for chunk in (7, 65536) for loss in (0.005, 1e-300, 1e150)),
        # found null std at 65536 (the chunk's mean 2 ulps off, (loss - mean)**2 overflowing m2); fixed
        (7, 7.5e299),
        (65536, 7.5e299),
    ],
)
def test_all_equal_losses_have_zero_spread(tmp_path, chunk, loss_of_each) -> None:
    """Every row's loss the same: std must be 0 (or rounding noise far below the mean), never NaN
    from a negative variance; quantiles, min and max are that loss."""
    d = math.sqrt(2 * loss_of_each) if loss_of_each < 0.5 else loss_of_each + 0.5
    path = write_csv(tmp_path / "same.csv", {"y": [0.0] * 5000, "pred": [d] * 5000})
    loss = rounded(exact_loss(d, 0.0))
    result = evaluate(path, "-t", "y", "--chunk-rows", chunk, "--exact-quantiles")[0]["results"][0]
    assert result["min"] == result["max"] == loss
    assert set(result["quantiles"].values()) == {loss}
    assert close(result["value"], loss)
    assert result["std"] is not None
    assert 0.0 <= result["std"] <= 1e-12 * loss


@pytest.mark.parametrize(
    "d",
    [
        0.0,
        0.25,
        1.0,
        3.0,
        1e150,
        1e300,  # found: rmse null once d**2 exceeded float64; fixed
    ],
)
def test_a_single_row(tmp_path, d) -> None:
    path = write_csv(tmp_path / "one.csv", {"y": [1.0], "pred": [1.0 + d]})
    report, _ = evaluate(path, "-t", "y")
    result = report["results"][0]
    loss = rounded(exact_loss(1.0 + d, 1.0))
    assert report["rows"] == result["count"] == 1
    assert result["value"] == result["mean"] == result["sum"] == result["min"] == result["max"] == loss
    assert result["std"] == 0.0
    assert set(result["quantiles"].values()) == {loss}
    assert result["mae"] == result["rmse"] == abs((1.0 + d) - 1.0)
    assert result["linear_fraction"] == (1.0 if abs((1.0 + d) - 1.0) >= 1.0 else 0.0)


# --- weights at the edges ----------------------------------------------------------------------


def test_huge_weights_give_the_weighted_mean(tmp_path) -> None:
    """w = 1e308 on two rows of loss 0.5: the weighted mean is 0.5. Found: 0.0 (sum of weights
    overflowed), mae and rmse null; fixed."""
    pred, target, weight = [1.0, -1.0], [0.0, 0.0], [1e308, 1e308]
    path = write_csv(tmp_path / "w.csv", {"y": target, "pred": pred, "w": weight})
    report, _ = evaluate(path, "-t", "y", "-p", "pred", "-w", "w")
    check_stats(report["results"][0], exact_stats(pred, target, weight=weight), ("value", "std", "mae", "rmse"))


def test_weights_of_very_different_sizes(tmp_path) -> None:
    pred, target, weight = [1.0, 3.0, 0.25], [0.0, 0.0, 0.0], [1e300, 1e-300, 1.0]
    path = write_csv(tmp_path / "w.csv", {"y": target, "pred": pred, "w": weight})
    report, _ = evaluate(path, "-t", "y", "-p", "pred", "-w", "w")
    check_stats(report["results"][0], exact_stats(pred, target, weight=weight), ("value", "mae", "rmse"))


@pytest.mark.parametrize("rows", [4, 10_000], ids=["exact", "sketch"])
@pytest.mark.parametrize("scale", ["normalized", 1e-320])
def test_quantiles_do_not_depend_on_the_scale_of_the_weights(tmp_path, rows, scale) -> None:
    """Multiplying every weight by one constant changes no statistic (value, std, ... are ratios);
    the quantiles must not change either. Normalized weights (summing to 1) are the common case."""
    pred = [1.0 + i % 100 for i in range(rows)]
    small = 1.0 / rows if scale == "normalized" else scale
    reports = []
    for name, weight in (("unit", 1.0), ("scaled", small)):
        path = write_csv(tmp_path / f"{name}.csv", {"y": [0.0] * rows, "pred": pred, "w": [weight] * rows})
        reports.append(evaluate(path, "-t", "y", "-p", "pred", "-w", "w")[0]["results"][0])
    unit, scaled = reports
    assert math.isclose(scaled["value"], unit["value"], rel_tol=1e-12)
    assert math.isclose(scaled["std"], unit["std"], rel_tol=1e-9)
    for q in ("p50", "p90", "p95", "p99"):
        assert math.isclose(scaled["quantiles"][q], unit["quantiles"][q], rel_tol=1e-9), (
            q,
            scaled["quantiles"],
            unit["quantiles"],
        )


def test_overflow_inside_the_statistics_prints_no_python_warnings(tmp_path, smoothl1_command) -> None:
    """stderr carries smoothl1's own lines (Warning: / Error:), not NumPy's RuntimeWarning dumps.
    Found: 'RuntimeWarning: overflow encountered in accumulate' on stderr; fixed."""
    path = write_csv(tmp_path / "w.csv", {"y": [0.0, 0.0], "pred": [1.0, -1.0], "w": [1e308, 1e308]})
    done = run_command(smoothl1_command, "eval", path, "-t", "y", "-p", "pred", "-w", "w", "-q")
    assert done.returncode == 0
    assert b"RuntimeWarning" not in done.stderr, done.stderr.decode()
